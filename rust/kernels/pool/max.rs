//! Max pooling forward (value + int32 argmax per output) and backward (scatter
//! of the output gradient to the argmax), optionally fused with a ReLU.
//!
//! The forward walks one output row at a time. Outputs whose window lies
//! fully inside the input along W (the "interior" columns) are updated tap by
//! tap over the whole row, so the inner loop runs along W; the few border
//! columns take the scalar per-window path. Taps are visited in PyTorch's
//! order (rows, then columns) with PyTorch's rule `v > best || v is NaN`, so
//! values and argmax match PyTorch exactly, NaN included.
//!
//! 2x2 windows with stride 2 (LeNet's and VGG's pools) have their own row
//! routine: AVX2, eight outputs at a time, where the CPU has it, and a tight
//! scalar loop for narrow rows, the row tail and the portable path.

use super::{for_each_plane_group, for_each_plane_group2, Pool2dParams};
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
    let (in_plane, out_plane) = (p.in_plane(), p.out_plane());
    let is_2x2 =
        p.kernel == [2, 2] && p.stride == [2, 2] && p.padding == [0, 0] && p.dilation == [1, 1];
    let avx2 = simd::use_avx2_fma();
    let interior = interior_columns(p);
    for_each_plane_group2(y, argmax, out_plane, p.traffic(), |first, ys, is| {
        let xs = &x[first * in_plane..][..ys.len() / out_plane * in_plane];
        let simd_cols = if is_2x2 && avx2 {
            max_2x2_simd(p, xs, ys, is)
        } else {
            0
        };
        let planes = ys.chunks_mut(out_plane).zip(is.chunks_mut(out_plane));
        for (j, (yp, ip)) in planes.enumerate() {
            let xs = &xs[j * in_plane..][..in_plane];
            for oy in 0..p.out_h {
                let yrow = &mut yp[oy * p.out_w..][..p.out_w];
                let irow = &mut ip[oy * p.out_w..][..p.out_w];
                let done = if is_2x2 && 2 * oy + 1 < p.h {
                    max_row_2x2(p, xs, oy, simd_cols, yrow, irow)
                } else {
                    0
                };
                if done < p.out_w {
                    max_row(p, xs, oy, done, interior, avx2, yrow, irow);
                }
            }
            if relu {
                clamp_at_zero(yp, ip);
            }
        }
    });
}

/// The AVX2 path for the 2x2 stride-2 pool of a group of planes; returns how
/// many leading columns of each full-window row it wrote.
#[allow(unused_variables)]
fn max_2x2_simd(p: &Pool2dParams, xs: &[f32], ys: &mut [f32], is: &mut [i32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let planes = ys.len() / p.out_plane();
        // SAFETY: only called when use_avx2_fma() saw AVX2 on this CPU.
        unsafe { super::max_avx2::max_2x2_planes(xs, planes, p.h, p.w, ys, is, p.out_h, p.out_w) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    0
}

/// Full 2x2 windows of output row `oy` (both input rows exist) from column
/// `from` on; returns how many leading outputs are now written (the ceil_mode
/// column, if any, is left over).
fn max_row_2x2(
    p: &Pool2dParams,
    xs: &[f32],
    oy: usize,
    from: usize,
    yrow: &mut [f32],
    irow: &mut [i32],
) -> usize {
    let iy = 2 * oy;
    let full = p.out_w.min(p.w / 2);
    let (r0, r1) = (
        &xs[iy * p.w..][..2 * full],
        &xs[(iy + 1) * p.w..][..2 * full],
    );
    let (base, w) = ((iy * p.w) as i32, p.w as i32);
    for ox in from..full {
        let (a, b, c, d) = (r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]);
        let ia = base + 2 * ox as i32;
        let (mut best, mut at) = (a, ia);
        for (v, i) in [(b, ia + 1), (c, ia + w), (d, ia + w + 1)] {
            let take = v > best || v.is_nan();
            best = if take { v } else { best };
            at = if take { i } else { at };
        }
        (yrow[ox], irow[ox]) = (best, at);
    }
    full
}

/// General path for outputs `from..out_w` of output row `oy`.
#[allow(clippy::too_many_arguments)]
fn max_row(
    p: &Pool2dParams,
    xs: &[f32],
    oy: usize,
    from: usize,
    interior: (usize, usize),
    avx2: bool,
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
    let (lo, hi) = (interior.0.max(from), interior.1.max(from));
    for ox in (from..lo).chain(hi.max(lo)..p.out_w) {
        (yrow[ox], irow[ox]) = max_window(p, xs, (y0, y1, dy), ox);
    }
    if lo >= hi {
        return;
    }
    let (sw, dw, pw) = (p.stride[1], p.dilation[1], p.padding[1]);
    let n = hi - lo;
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
            let taps = &row[col..col + (n - 1) * sw + 1];
            let base = (iy * p.w + col) as i32;
            let done = if avx2 {
                update_taps_simd(ys, is, taps, sw, base)
            } else {
                0
            };
            for j in done..n {
                let v = taps[j * sw];
                if v > ys[j] || v.is_nan() {
                    ys[j] = v;
                    is[j] = base + (j * sw) as i32;
                }
            }
        }
    }
}

/// AVX2 for one tap over a run of interior outputs (stride 1 or 2); returns
/// how many leading outputs it did.
#[allow(unused_variables)]
fn update_taps_simd(ys: &mut [f32], is: &mut [i32], taps: &[f32], sw: usize, base: i32) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: only called when use_avx2_fma() saw AVX2 on this CPU.
        unsafe { super::max_avx2::update_taps(ys, is, taps, sw, base) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    0
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
    let (in_plane, out_plane) = (p.in_plane(), p.out_plane());
    for_each_plane_group(dx, in_plane, p.traffic(), |first, group| {
        for (j, out) in group.chunks_mut(in_plane).enumerate() {
            // Zeroed plane by plane, so that the adds below hit cache.
            out.fill(0.0);
            let plane = first + j;
            let g = &dy[plane * out_plane..][..out_plane];
            let idx = &argmax[plane * out_plane..][..out_plane];
            for (&gv, &i) in g.iter().zip(idx) {
                // Indices were validated by the binding; -1 (and anything else) is skipped.
                if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
                    *slot += gv;
                }
            }
        }
    });
}
