//! 2-D max and average pooling, NCHW, forward and backward, with PyTorch's
//! output-size rules (padding at most half the kernel, ceil_mode dropping a
//! last window that would start in the right padding).
//!
//! CONTRACT: every function overwrites its whole output slice. Work is split
//! over N*C planes, each plane owned by one thread, so results do not depend on
//! the thread count.
//!
//! PLACEHOLDER: scalar loops; vectorised versions replace them.

use rayon::prelude::*;

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
pub fn pool_out_len(
    len: usize,
    k: usize,
    pad: usize,
    stride: usize,
    dilation: usize,
    ceil_mode: bool,
) -> Option<usize> {
    let padded = (len + 2 * pad) as i64;
    let span = (dilation * (k - 1) + 1) as i64;
    let stride_i = stride as i64;
    let numer = padded - span + if ceil_mode { stride_i - 1 } else { 0 };
    if numer < 0 {
        return None;
    }
    let mut out = numer / stride_i + 1;
    // The last window must start inside the input or the left padding.
    if ceil_mode && (out - 1) * stride_i >= (len + pad) as i64 {
        out -= 1;
    }
    (out >= 1).then_some(out as usize)
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
        let out_h = pool_out_len(h, kernel[0], padding[0], stride[0], dilation[0], ceil_mode);
        let out_w = pool_out_len(w, kernel[1], padding[1], stride[1], dilation[1], ceil_mode);
        let (Some(out_h), Some(out_w)) = (out_h, out_w) else {
            return Err(KernelError::Shape(format!(
                "{op}: kernel_size {kernel:?} (dilation {dilation:?}) is larger than the padded input: x {x_shape:?}, padding {padding:?}"
            )));
        };
        if h * w > i32::MAX as usize {
            return Err(KernelError::Overflow(format!(
                "{op}: input planes of {h}x{w} are too large for int32 argmax indices"
            )));
        }
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
}

/// Max pooling. `argmax` gets, per output, the flat index (y*W + x) of the
/// chosen input in its plane; backward needs nothing else. NaN wins, as in PyTorch.
pub fn max_pool2d_forward(p: &Pool2dParams, x: &[f32], y: &mut [f32], argmax: &mut [i32]) {
    let (in_plane, out_plane) = (p.h * p.w, p.out_h * p.out_w);
    threading::install(|| {
        y.par_chunks_mut(out_plane)
            .zip(argmax.par_chunks_mut(out_plane))
            .enumerate()
            .for_each(|(plane, (out, idx))| {
                let xs = &x[plane * in_plane..][..in_plane];
                for oy in 0..p.out_h {
                    for ox in 0..p.out_w {
                        let mut best = f32::NEG_INFINITY;
                        let mut best_i = -1i32;
                        for ky in 0..p.kernel[0] {
                            let iy = (oy * p.stride[0] + ky * p.dilation[0]) as isize
                                - p.padding[0] as isize;
                            if iy < 0 || iy >= p.h as isize {
                                continue;
                            }
                            for kx in 0..p.kernel[1] {
                                let ix = (ox * p.stride[1] + kx * p.dilation[1]) as isize
                                    - p.padding[1] as isize;
                                if ix < 0 || ix >= p.w as isize {
                                    continue;
                                }
                                let i = iy as usize * p.w + ix as usize;
                                let v = xs[i];
                                if v > best || v.is_nan() || best_i < 0 {
                                    best = v;
                                    best_i = i as i32;
                                }
                            }
                        }
                        out[oy * p.out_w + ox] = best;
                        idx[oy * p.out_w + ox] = best_i;
                    }
                }
            });
    });
}

pub fn max_pool2d_backward(p: &Pool2dParams, dy: &[f32], argmax: &[i32], dx: &mut [f32]) {
    let (in_plane, out_plane) = (p.h * p.w, p.out_h * p.out_w);
    threading::install(|| {
        dx.par_chunks_mut(in_plane)
            .enumerate()
            .for_each(|(plane, out)| {
                out.fill(0.0);
                let g = &dy[plane * out_plane..][..out_plane];
                let idx = &argmax[plane * out_plane..][..out_plane];
                for (&gv, &i) in g.iter().zip(idx) {
                    if i >= 0 {
                        out[i as usize] += gv;
                    }
                }
            });
    });
}

/// The clipped window of output (oy, ox) and PyTorch's divisor for it.
#[inline(always)]
fn avg_window(
    p: &Pool2dParams,
    oy: usize,
    ox: usize,
    count_include_pad: bool,
    divisor_override: Option<usize>,
) -> (usize, usize, usize, usize, f32) {
    let hs = (oy * p.stride[0]) as isize - p.padding[0] as isize;
    let ws = (ox * p.stride[1]) as isize - p.padding[1] as isize;
    let he = (hs + p.kernel[0] as isize).min((p.h + p.padding[0]) as isize);
    let we = (ws + p.kernel[1] as isize).min((p.w + p.padding[1]) as isize);
    let pool_size = ((he - hs) * (we - ws)) as usize;
    let (hs, ws) = (hs.max(0) as usize, ws.max(0) as usize);
    let (he, we) = (he.min(p.h as isize) as usize, we.min(p.w as isize) as usize);
    let (he, we) = (he.max(hs), we.max(ws));
    let divisor = match divisor_override {
        Some(d) => d,
        None if count_include_pad => pool_size,
        None => (he - hs) * (we - ws),
    };
    (hs, he, ws, we, divisor as f32)
}

pub fn avg_pool2d_forward(
    p: &Pool2dParams,
    count_include_pad: bool,
    divisor_override: Option<usize>,
    x: &[f32],
    y: &mut [f32],
) {
    let (in_plane, out_plane) = (p.h * p.w, p.out_h * p.out_w);
    threading::install(|| {
        y.par_chunks_mut(out_plane)
            .enumerate()
            .for_each(|(plane, out)| {
                let xs = &x[plane * in_plane..][..in_plane];
                for oy in 0..p.out_h {
                    for ox in 0..p.out_w {
                        let (hs, he, ws, we, div) =
                            avg_window(p, oy, ox, count_include_pad, divisor_override);
                        let mut s = 0.0f32;
                        for iy in hs..he {
                            for ix in ws..we {
                                s += xs[iy * p.w + ix];
                            }
                        }
                        out[oy * p.out_w + ox] = if he > hs && we > ws { s / div } else { 0.0 };
                    }
                }
            });
    });
}

pub fn avg_pool2d_backward(
    p: &Pool2dParams,
    count_include_pad: bool,
    divisor_override: Option<usize>,
    dy: &[f32],
    dx: &mut [f32],
) {
    let (in_plane, out_plane) = (p.h * p.w, p.out_h * p.out_w);
    threading::install(|| {
        dx.par_chunks_mut(in_plane)
            .enumerate()
            .for_each(|(plane, out)| {
                out.fill(0.0);
                let g = &dy[plane * out_plane..][..out_plane];
                for oy in 0..p.out_h {
                    for ox in 0..p.out_w {
                        let (hs, he, ws, we, div) =
                            avg_window(p, oy, ox, count_include_pad, divisor_override);
                        let gv = g[oy * p.out_w + ox] / div;
                        for iy in hs..he {
                            for ix in ws..we {
                                out[iy * p.w + ix] += gv;
                            }
                        }
                    }
                }
            });
    });
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
    }
}
