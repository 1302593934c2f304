//! Max pooling forward (value + int32 argmax per output) and backward (scatter
//! of the output gradient to the argmax), optionally fused with a ReLU.
//!
//! The forward walks one output row at a time. Outputs whose window lies
//! fully inside the input along W (the "interior" columns) are updated tap by
//! tap over the whole row, so the inner loop runs along W; the few border
//! columns take the scalar per-window path. Taps are visited in PyTorch's
//! order (rows, then columns) with PyTorch's rule `v > best || v is NaN`, so
//! values and argmax match PyTorch exactly, NaN included.

use super::{for_each_plane, for_each_plane2, Pool2dParams};
use crate::kernels::simd;

/// Max pooling. `argmax` gets, per output, the flat index (y*W + x) of the
/// chosen input in its plane, or -1 when no input contributes a gradient
/// (a window entirely in the padding, or an output clamped to 0 by `relu`).
///
/// With `relu`, computes `max_pool(relu(x))` as `max(max_pool(x), 0)`: the two
/// are equal, and the argmax of a clamped output is -1 because ReLU's gradient
/// is zero there (PyTorch's relu -> max_pool gradient). NaN stays NaN.
pub fn max_pool2d_forward(
    p: &Pool2dParams,
    relu: bool,
    x: &[f32],
    y: &mut [f32],
    argmax: &mut [i32],
) {
    let in_plane = p.in_plane();
    let fast_2x2 = simd::use_avx2_fma() && is_2x2_stride_2(p);
    for_each_plane2(y, argmax, p.out_plane(), p.traffic(), |plane, ys, is| {
        let xs = &x[plane * in_plane..][..in_plane];
        for oy in 0..p.out_h {
            let yrow = &mut ys[oy * p.out_w..][..p.out_w];
            let irow = &mut is[oy * p.out_w..][..p.out_w];
            let done = if fast_2x2 {
                max_row_2x2_simd(p, xs, oy, yrow, irow)
            } else {
                0
            };
            if done < p.out_w {
                max_row(p, xs, oy, done, yrow, irow);
            }
            if relu {
                clamp_at_zero(yrow, irow);
            }
        }
    });
}

fn is_2x2_stride_2(p: &Pool2dParams) -> bool {
    p.kernel == [2, 2] && p.stride == [2, 2] && p.padding == [0, 0] && p.dilation == [1, 1]
}

/// The AVX2 path for full 2x2 windows of output row `oy`; returns how many
/// leading outputs of the row it wrote (the rest go through [`max_row`]).
#[allow(unused_variables)]
fn max_row_2x2_simd(
    p: &Pool2dParams,
    xs: &[f32],
    oy: usize,
    yrow: &mut [f32],
    irow: &mut [i32],
) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let iy = 2 * oy;
        if iy + 1 >= p.h {
            return 0; // ceil_mode's last window has a single row
        }
        let full = p.out_w.min(p.w / 2);
        let (r0, r1) = (&xs[iy * p.w..][..p.w], &xs[(iy + 1) * p.w..][..p.w]);
        // SAFETY: only chosen when use_avx2_fma() saw AVX2 and FMA on this CPU.
        unsafe {
            super::max_avx2::max_2x2_row(
                r0,
                r1,
                (iy * p.w) as i32,
                p.w as i32,
                &mut yrow[..full],
                &mut irow[..full],
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    0
}

/// Portable path for outputs `from..out_w` of output row `oy`.
fn max_row(
    p: &Pool2dParams,
    xs: &[f32],
    oy: usize,
    from: usize,
    yrow: &mut [f32],
    irow: &mut [i32],
) {
    let (y0, y1, dy) = p.taps(0, oy);
    if y0 >= y1 {
        // Every tap in the padding (possible with dilation): no input, no gradient.
        yrow[from..].fill(f32::NEG_INFINITY);
        irow[from..].fill(-1);
        return;
    }
    let (lo, hi) = interior_columns(p);
    let (lo, hi) = (lo.max(from), hi.max(from));
    for ox in (from..lo).chain(hi.max(lo)..p.out_w) {
        (yrow[ox], irow[ox]) = max_window(p, xs, (y0, y1, dy), ox);
    }
    if lo >= hi {
        return;
    }
    let (sw, dw, pw) = (p.stride[1], p.dilation[1], p.padding[1]);
    let ys = &mut yrow[lo..hi];
    let is = &mut irow[lo..hi];
    // PyTorch starts from -inf with the index of the first tap.
    let first_col = lo * sw - pw;
    ys.fill(f32::NEG_INFINITY);
    for (j, i) in is.iter_mut().enumerate() {
        *i = (y0 * p.w + first_col + j * sw) as i32;
    }
    for iy in (y0..y1).step_by(dy) {
        let row = &xs[iy * p.w..][..p.w];
        for kx in 0..p.kernel[1] {
            let col = first_col + kx * dw;
            let base = (iy * p.w + col) as i32;
            let taps = row[col..].iter().step_by(sw);
            for (j, ((best, idx), &v)) in ys.iter_mut().zip(is.iter_mut()).zip(taps).enumerate() {
                if v > *best || v.is_nan() {
                    *best = v;
                    *idx = base + (j * sw) as i32;
                }
            }
        }
    }
}

/// Output columns whose every tap lies inside the input: `lo..hi` (may be empty).
fn interior_columns(p: &Pool2dParams) -> (usize, usize) {
    let (sw, pw) = (p.stride[1], p.padding[1]);
    let span = (p.kernel[1] - 1) * p.dilation[1];
    let lo = pw.div_ceil(sw);
    // Need ox*sw - pw + span <= w - 1.
    let hi = match (p.w - 1 + pw).checked_sub(span) {
        Some(last_start) => (last_start / sw + 1).min(p.out_w),
        None => 0,
    };
    (lo.min(p.out_w), hi)
}

/// One output by the direct definition (border columns).
fn max_window(p: &Pool2dParams, xs: &[f32], rows: (usize, usize, usize), ox: usize) -> (f32, i32) {
    let (y0, y1, dy) = rows;
    let (x0, x1, dx) = p.taps(1, ox);
    let mut best = f32::NEG_INFINITY;
    let mut best_i = -1i32;
    for iy in (y0..y1).step_by(dy) {
        for ix in (x0..x1).step_by(dx) {
            let i = iy * p.w + ix;
            let v = xs[i];
            if v > best || v.is_nan() || best_i < 0 {
                best = v;
                best_i = i as i32;
            }
        }
    }
    (best, best_i)
}

/// ReLU after the max: outputs <= 0 become 0 with no gradient (argmax -1).
fn clamp_at_zero(ys: &mut [f32], is: &mut [i32]) {
    for (v, i) in ys.iter_mut().zip(is.iter_mut()) {
        if *v <= 0.0 {
            *v = 0.0;
            *i = -1;
        }
    }
}

/// dx = 0, then dx[argmax] += dy for each output (argmax -1 contributes nothing).
/// Outputs are visited in order, so overlapping windows add up deterministically.
pub fn max_pool2d_backward(p: &Pool2dParams, dy: &[f32], argmax: &[i32], dx: &mut [f32]) {
    let out_plane = p.out_plane();
    for_each_plane(dx, p.in_plane(), p.traffic(), |plane, out| {
        out.fill(0.0);
        let g = &dy[plane * out_plane..][..out_plane];
        let idx = &argmax[plane * out_plane..][..out_plane];
        for (&gv, &i) in g.iter().zip(idx) {
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
                *slot += gv;
            }
        }
    });
}
