//! 2-D max and average pooling, NCHW, forward and backward, with PyTorch's
//! output-size rules (padding at most half the kernel, ceil_mode dropping a
//! last window that would start in the right padding).
//!
//! Pooling is memory-bound: the kernels walk each plane row by row so that
//! the inner loops run along W over contiguous memory (see `max.rs`, `avg.rs`),
//! and the common 2x2 stride-2 max pool has an AVX2 path (`max_avx2.rs`).
//!
//! CONTRACT: every function overwrites its whole output slice. Work is split
//! over N*C planes, each plane owned by one task, so results do not depend on
//! the thread count.

mod avg;
mod max;
#[cfg(target_arch = "x86_64")]
mod max_avx2;

pub use avg::{avg_pool2d_backward, avg_pool2d_forward};
pub use max::{max_pool2d_backward, max_pool2d_forward};

use crate::error::{checked_product, KernelError, Result};
use crate::threading;

/// Validated sizes of one pooling call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dParams {
    pub batch: usize,
    pub channels: usize,
    pub h: usize,
    pub w: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// (vertical, horizontal), the same on both sides as in PyTorch.
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub ceil_mode: bool,
    pub out_h: usize,
    pub out_w: usize,
}

/// PyTorch's `pooling_output_shape`: None when the output would be empty.
/// Checked arithmetic in i128, so that absurd sizes (from a backward's
/// `input_shape`) give None instead of wrapping around.
pub fn pool_out_len(
    len: usize,
    k: usize,
    pad: usize,
    stride: usize,
    dilation: usize,
    ceil_mode: bool,
) -> Option<usize> {
    let [len, k, pad, stride, dilation] = [len, k, pad, stride, dilation].map(|v| v as i128);
    if k < 1 || stride < 1 || dilation < 1 {
        return None;
    }
    let span = dilation.checked_mul(k - 1)? + 1; // each factor < 2^64: the sum cannot overflow
    let numer = len + 2 * pad - span + if ceil_mode { stride - 1 } else { 0 };
    if numer < 0 {
        return None;
    }
    let mut out = numer / stride + 1;
    // The last window must start inside the input or the left padding.
    if ceil_mode && (out - 1) * stride >= len + pad {
        out -= 1;
    }
    (out >= 1).then(|| usize::try_from(out).ok()).flatten()
}

impl Pool2dParams {
    pub fn new(
        op: &str,
        x_shape: [usize; 4],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        ceil_mode: bool,
    ) -> Result<Self> {
        let [batch, channels, h, w] = x_shape;
        let arg = |m: String| Err(KernelError::Argument(format!("{op}: {m}")));
        if kernel.contains(&0) {
            return arg(format!("kernel_size must be positive, got {kernel:?}"));
        }
        if stride.contains(&0) {
            return arg(format!("stride must be positive, got {stride:?}"));
        }
        if dilation.contains(&0) {
            return arg(format!("dilation must be positive, got {dilation:?}"));
        }
        if padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2 {
            return arg(format!(
                "padding {padding:?} must be at most half of kernel_size {kernel:?}"
            ));
        }
        if batch == 0 {
            return arg(format!("input x has an empty batch: shape {x_shape:?}"));
        }
        if channels == 0 || h == 0 || w == 0 {
            return Err(KernelError::Shape(format!(
                "{op}: input x has a zero-sized dimension: shape {x_shape:?}"
            )));
        }
        checked_product(op, "input x", &x_shape)?;
        if h.saturating_mul(w) > i32::MAX as usize {
            return Err(KernelError::Overflow(format!(
                "{op}: input planes of {h}x{w} (x {x_shape:?}) are too large for int32 argmax indices"
            )));
        }
        let out_h = pool_out_len(h, kernel[0], padding[0], stride[0], dilation[0], ceil_mode);
        let out_w = pool_out_len(w, kernel[1], padding[1], stride[1], dilation[1], ceil_mode);
        let (Some(out_h), Some(out_w)) = (out_h, out_w) else {
            return Err(KernelError::Shape(format!(
                "{op}: kernel_size {kernel:?} (dilation {dilation:?}) is larger than the padded input: x {x_shape:?}, padding {padding:?}"
            )));
        };
        Ok(Pool2dParams {
            batch,
            channels,
            h,
            w,
            kernel,
            stride,
            padding,
            dilation,
            ceil_mode,
            out_h,
            out_w,
        })
    }

    pub fn x_shape(&self) -> [usize; 4] {
        [self.batch, self.channels, self.h, self.w]
    }
    pub fn y_shape(&self) -> [usize; 4] {
        [self.batch, self.channels, self.out_h, self.out_w]
    }
    fn planes(&self) -> usize {
        self.batch * self.channels
    }
    fn in_plane(&self) -> usize {
        self.h * self.w
    }
    fn out_plane(&self) -> usize {
        self.out_h * self.out_w
    }
    /// The 2x2 stride-2 pool without padding or dilation (fast paths).
    fn is_2x2_stride_2(&self) -> bool {
        self.kernel == [2, 2]
            && self.stride == [2, 2]
            && self.padding == [0, 0]
            && self.dilation == [1, 1]
    }
    /// Elements read and written by one pass; decides serial vs parallel.
    fn traffic(&self) -> usize {
        self.planes() * (self.in_plane() + 2 * self.out_plane())
    }

    /// Valid input rows (or columns, `axis` 1) of output row `o`: the first
    /// tap inside the input, one past the last, and the tap step (dilation).
    /// Empty (`first >= end`) when every tap falls into the padding.
    #[inline]
    fn taps(&self, axis: usize, o: usize) -> (usize, usize, usize) {
        let (len, k, s, pad, d) = (
            if axis == 0 { self.h } else { self.w },
            self.kernel[axis],
            self.stride[axis],
            self.padding[axis],
            self.dilation[axis],
        );
        let start = o * s; // position in the padded input
        let mut first = start;
        while first < pad {
            first += d;
        }
        let end = (start + (k - 1) * d + 1).min(len + pad);
        if first >= end {
            return (0, 0, d);
        }
        (first - pad, end - pad, d)
    }
}

/// Below this many elements moved, a pooling call stays on the calling thread:
/// a rayon wake-up (several microseconds) costs more than such a pass.
const PARALLEL_MIN_ELEMS: usize = 1 << 15;
/// About this many elements per rayon task; planes are never split.
const TASK_ELEMS: usize = 1 << 14;

/// Calls `f(first_plane, group)` on groups of whole planes of `out` (planes of
/// `plane_len` elements): one group when `traffic` is small, else groups of
/// about TASK_ELEMS elements in parallel. Kernels keep per-group scratch buffers.
fn for_each_plane_group<T: Send>(
    out: &mut [T],
    plane_len: usize,
    traffic: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    if traffic < PARALLEL_MIN_ELEMS || threading::single_threaded() {
        return f(0, out);
    }
    let per_task = (TASK_ELEMS / plane_len.max(1)).max(1);
    threading::for_each_chunk_mut(
        out,
        per_task * plane_len,
        || (),
        |_, (g, group)| f(g * per_task, group),
    );
}

/// As [`for_each_plane_group`] for two outputs with planes of the same length.
fn for_each_plane_group2<T: Send, U: Send>(
    a: &mut [T],
    b: &mut [U],
    plane_len: usize,
    traffic: usize,
    f: impl Fn(usize, &mut [T], &mut [U]) + Sync,
) {
    if traffic < PARALLEL_MIN_ELEMS || threading::single_threaded() {
        return f(0, a, b);
    }
    let per_task = (TASK_ELEMS / plane_len.max(1)).max(1);
    let group = per_task * plane_len;
    threading::for_each_chunk_pair_mut(a, group, b, group, |g, ga, gb| f(g * per_task, ga, gb));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_follow_pytorch() {
        assert_eq!(pool_out_len(28, 2, 0, 2, 1, false), Some(14));
        assert_eq!(pool_out_len(5, 2, 0, 2, 1, false), Some(2));
        assert_eq!(pool_out_len(5, 2, 0, 2, 1, true), Some(3));
        // ceil_mode must not start a window in the right padding.
        assert_eq!(pool_out_len(4, 3, 1, 2, 1, true), Some(3));
        assert_eq!(pool_out_len(1, 3, 0, 1, 1, false), None);
        // Absurd sizes do not wrap around.
        assert_eq!(
            pool_out_len(usize::MAX, usize::MAX, 0, 1, usize::MAX, false),
            None
        );
        assert_eq!(
            pool_out_len(usize::MAX, 1, 0, 1, 1, false),
            Some(usize::MAX)
        );
    }

    #[test]
    fn taps_skip_padding() {
        let p =
            Pool2dParams::new("t", [1, 1, 5, 5], [3, 3], [2, 2], [1, 1], [1, 1], false).unwrap();
        assert_eq!(p.taps(0, 0), (0, 2, 1));
        assert_eq!(p.taps(0, 1), (1, 4, 1));
        assert_eq!(p.taps(1, 2), (3, 5, 1));
        // Every tap in the padding: k=2, pad=1, dilation=2 on a 1-wide input.
        let q =
            Pool2dParams::new("t", [1, 1, 1, 1], [2, 2], [1, 1], [1, 1], [2, 2], false).unwrap();
        assert_eq!(q.out_h, 1);
        let (a, b, _) = q.taps(0, 0);
        assert!(a >= b);
    }
}
