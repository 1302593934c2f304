//! Max pooling forward (value + int32 argmax per output) and backward (the
//! output gradient added at the argmax), optionally fused with a ReLU.
//!
//! The forward walks one output row at a time. Outputs whose window lies
//! fully inside the input along W (the "interior" columns) go eight at a time
//! through all their taps in AVX2 registers (stride 1 or 2), else tap by tap
//! over the whole row, so the inner loop runs along W; the few border columns
//! take the scalar per-window path. Taps are visited in PyTorch's order (rows,
//! then columns) with PyTorch's rule `v > best || v is NaN`, so values and
//! argmax match PyTorch exactly, NaN included.
//!
//! 2x2 windows with stride 2 (LeNet's and VGG's pools) have their own path,
//! ReLU fused: AVX2 over whole groups of planes where the CPU has it (rows of
//! 2 outputs or more), else a branch-free scalar row loop; its backward reads
//! each input's one window instead of scattering (`max_avx2.rs`).

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
    let is_2x2 = p.is_2x2_stride_2();
    let avx2 = simd::use_avx2_fma();
    let interior = interior_columns(p);
    for_each_plane_group2(y, argmax, out_plane, p.traffic(), |first, ys, is| {
        let xs = &x[first * in_plane..][..ys.len() / out_plane * in_plane];
        // Full 2x2 windows already written (ReLU included), per row.
        let simd_cols = if is_2x2 && avx2 {
            max_2x2_simd(p, relu, xs, ys, is)
        } else {
            0
        };
        // Rows the AVX2 path wrote whole (all of them, bar a ceil_mode row or column).
        let rows_done = if simd_cols == p.out_w { p.h / 2 } else { 0 };
        let planes = ys.chunks_mut(out_plane).zip(is.chunks_mut(out_plane));
        for (j, (yp, ip)) in planes.enumerate() {
            let xs = &xs[j * in_plane..][..in_plane];
            for oy in rows_done..p.out_h {
                let yrow = &mut yp[oy * p.out_w..][..p.out_w];
                let irow = &mut ip[oy * p.out_w..][..p.out_w];
                let done = if is_2x2 && 2 * oy + 1 < p.h {
                    max_row_2x2(p, xs, oy, simd_cols, relu, yrow, irow)
                } else {
                    0
                };
                if done < p.out_w {
                    max_row(p, xs, oy, done, interior, avx2, yrow, irow);
                    if relu {
                        clamp_at_zero(&mut yrow[done..], &mut irow[done..]);
                    }
                }
            }
        }
    });
}

/// The AVX2 path for the 2x2 stride-2 pool of a group of planes; returns how
/// many leading columns of each full-window row it wrote.
#[allow(unused_variables)]
fn max_2x2_simd(p: &Pool2dParams, relu: bool, xs: &[f32], ys: &mut [f32], is: &mut [i32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let planes = ys.len() / p.out_plane();
        let (in_hw, out_hw) = ([p.h, p.w], [p.out_h, p.out_w]);
        // SAFETY: only called when use_avx2_fma() saw AVX2 on this CPU.
        unsafe { super::max_avx2::max_2x2_planes(xs, planes, in_hw, out_hw, relu, ys, is) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    0
}

/// Full 2x2 windows of output row `oy` (both input rows exist) from column
/// `from` on, with the ReLU fused when `relu`; returns how many leading
/// outputs are now written (the ceil_mode column, if any, is left over).
fn max_row_2x2(
    p: &Pool2dParams,
    xs: &[f32],
    oy: usize,
    from: usize,
    relu: bool,
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
            (best, at) = select((v > best) | v.is_nan(), (v, i), (best, at));
        }
        (yrow[ox], irow[ox]) = select(relu & (best <= 0.0), (0.0, -1), (best, at));
    }
    full
}

/// `if take { a } else { b }` by bit masks: compilers turn the `if` into a
/// branch, which mispredicts on random data (half the time, for the max of
/// two random values).
#[inline]
fn select(take: bool, a: (f32, i32), b: (f32, i32)) -> (f32, i32) {
    let mask = (take as i32).wrapping_neg();
    let value = (a.0.to_bits() as i32 & mask) | (b.0.to_bits() as i32 & !mask);
    (f32::from_bits(value as u32), (a.1 & mask) | (b.1 & !mask))
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
    if avx2 {
        let shape = [p.kernel[1], dw, sw];
        if max_windows_simd(xs, p.w, (y0, y1, dy), first_col, shape, ys, is) == n {
            return;
        }
    }
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
            for j in 0..n {
                let v = taps[j * sw];
                let take = (v > ys[j]) | v.is_nan();
                (ys[j], is[j]) = select(take, (v, base + (j * sw) as i32), (ys[j], is[j]));
            }
        }
    }
}

/// AVX2 for all taps of a run of interior outputs; returns how many it did (all or none).
#[allow(unused_variables)]
fn max_windows_simd(
    xs: &[f32],
    w: usize,
    rows: (usize, usize, usize),
    first_col: usize,
    shape: [usize; 3],
    ys: &mut [f32],
    is: &mut [i32],
) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: only called when use_avx2_fma() saw AVX2 on this CPU.
        unsafe { super::max_avx2::max_windows(xs, w, rows, first_col, shape, ys, is) }
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
            let take = (v > best) | v.is_nan() | (best_i < 0);
            (best, best_i) = select(take, (v, i as i32), (best, best_i));
        }
    }
    (best, best_i)
}

/// ReLU after the max: outputs <= 0 become 0 with no gradient (argmax -1).
/// Selects instead of a branch on the (unpredictable) sign.
fn clamp_at_zero(ys: &mut [f32], is: &mut [i32]) {
    for (v, i) in ys.iter_mut().zip(is.iter_mut()) {
        let clamp = *v <= 0.0;
        *v = if clamp { 0.0 } else { *v };
        *i = if clamp { -1 } else { *i };
    }
}

/// dx = 0, then dx[argmax] += dy for each output, in output order, so that
/// overlapping windows add up deterministically (argmax -1 contributes nothing).
///
/// The 2x2 stride-2 pool takes the AVX2 path where the CPU has it: its
/// windows do not overlap, so each input reads its one window's gradient
/// (see `max_avx2.rs`); that is the same result for an argmax from
/// `max_pool2d_forward`, which names each input at most once.
pub fn max_pool2d_backward(p: &Pool2dParams, dy: &[f32], argmax: &[i32], dx: &mut [f32]) {
    let (in_plane, out_plane) = (p.in_plane(), p.out_plane());
    let simd_2x2 = p.is_2x2_stride_2() && simd::use_avx2_fma();
    let targets = Targets::new(p);
    for_each_plane_group(dx, in_plane, p.traffic(), |first, group| {
        let planes = group.len() / in_plane;
        let g = &dy[first * out_plane..][..planes * out_plane];
        let idx = &argmax[first * out_plane..][..planes * out_plane];
        // Columns done by the AVX2 pass (0: none); None: an index outside its
        // window (hand-made), so the whole group is scattered instead.
        let simd_cols = if simd_2x2 {
            max_2x2_backward_simd(p, g, idx, group)
        } else {
            Some(0)
        };
        let planes = g.chunks(out_plane).zip(idx.chunks(out_plane));
        for ((g, idx), out) in planes.zip(group.chunks_mut(in_plane)) {
            match simd_cols {
                Some(cols) if cols > 0 && rest_2x2(p, cols, g, idx, out) => {}
                _ => targets.scatter(g, idx, out),
            }
        }
    });
}

/// The AVX2 backward of the 2x2 stride-2 pool for a group of planes; returns
/// how many leading outputs of each full-window row it did (0: none), or None
/// if an index is outside its window (see `max_2x2_backward_planes`).
#[allow(unused_variables)]
fn max_2x2_backward_simd(
    p: &Pool2dParams,
    g: &[f32],
    idx: &[i32],
    dx: &mut [f32],
) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        let planes = dx.len() / p.in_plane();
        let (in_hw, out_hw) = ([p.h, p.w], [p.out_h, p.out_w]);
        // SAFETY: only called when use_avx2_fma() saw AVX2 on this CPU.
        unsafe { super::max_avx2::max_2x2_backward_planes(g, idx, planes, in_hw, out_hw, dx) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    Some(0)
}

/// What the AVX2 backward of a 2x2 stride-2 plane leaves: in rows that have a
/// full window below them, the inputs right of output column `simd_cols`
/// (the ceil_mode window, the odd last column); then the odd last row.
/// Returns false, having written nothing, if one of those windows' index is
/// neither -1 nor one of its inputs (the caller then scatters the plane).
fn rest_2x2(p: &Pool2dParams, simd_cols: usize, g: &[f32], idx: &[i32], dx: &mut [f32]) -> bool {
    if !edge_indices_in_windows(p, simd_cols, idx) {
        return false;
    }
    // Even width without a ceil_mode column: the full-window rows are done.
    let rows_done = if simd_cols == p.out_w && 2 * p.out_w == p.w {
        p.h / 2 * 2
    } else {
        0
    };
    for iy in rows_done..p.h {
        let (oy, row) = (iy / 2, &mut dx[iy * p.w..][..p.w]);
        let from = if oy < p.h / 2 { simd_cols } else { 0 };
        if oy < p.out_h {
            let (gs, at) = (
                &g[oy * p.out_w..][..p.out_w],
                &idx[oy * p.out_w..][..p.out_w],
            );
            for ox in from..p.out_w {
                let window = &mut row[2 * ox..(2 * ox + 2).min(p.w)];
                for (d, col) in window.iter_mut().zip(2 * ox..) {
                    let hit = at[ox] == (iy * p.w + col) as i32;
                    *d = if hit { 0.0 + gs[ox] } else { 0.0 };
                }
            }
        }
        // Inputs in no window: the odd last column, or the last row without ceil_mode.
        let covered = if oy < p.out_h {
            (2 * p.out_w).min(p.w)
        } else {
            0
        };
        row[covered.max(2 * from)..].fill(0.0);
    }
    true
}

/// Whether the windows `rest_2x2` handles (outputs right of `simd_cols` in the
/// full-window rows, and the whole ceil_mode row) hold their own index or -1.
fn edge_indices_in_windows(p: &Pool2dParams, simd_cols: usize, idx: &[i32]) -> bool {
    (0..p.out_h).all(|oy| {
        let from = if oy < p.h / 2 { simd_cols } else { 0 };
        (from..p.out_w).all(|ox| {
            let i = idx[oy * p.out_w + ox];
            let (iy, ix) = ((i / p.w as i32) as usize, (i % p.w as i32) as usize);
            i == -1 || (i >= 0 && iy / 2 == oy && ix / 2 == ox)
        })
    })
}

/// Where the gradient of an output without argmax (-1) goes: per output row
/// and column, the first valid tap of the window (0 for a window entirely in
/// the padding), an input of that window. Distinct for neighbouring outputs,
/// so those adds of 0.0 do not wait on each other.
struct Targets {
    rows: Vec<usize>,
    cols: Vec<usize>,
    out_w: usize,
}

impl Targets {
    fn new(p: &Pool2dParams) -> Self {
        Targets {
            rows: (0..p.out_h).map(|oy| p.taps(0, oy).0 * p.w).collect(),
            cols: (0..p.out_w).map(|ox| p.taps(1, ox).0).collect(),
            out_w: p.out_w,
        }
    }

    /// dx = 0, then dx[argmax] += dy for each output of one plane in order;
    /// argmax -1 (or anything else outside the plane; the binding rejects
    /// those) adds 0.0 at the output's own target instead, which leaves every
    /// value unchanged (sums that start at +0.0 are never -0.0).
    fn scatter(&self, g: &[f32], idx: &[i32], out: &mut [f32]) {
        // Zeroed plane by plane, so that the adds below hit cache.
        out.fill(0.0);
        let len = out.len();
        let rows = g
            .chunks(self.out_w)
            .zip(idx.chunks(self.out_w))
            .zip(&self.rows);
        for ((gs, is), &row) in rows {
            for ((&gv, &i), &col) in gs.iter().zip(is).zip(&self.cols) {
                // Masks, not `if`: an `if` would branch, and mispredict after a ReLU.
                let m = (((i as u32 as usize) < len) as usize).wrapping_neg();
                let slot = (i as u32 as usize & m) | ((row + col) & !m);
                out[slot] += f32::from_bits(gv.to_bits() & m as u32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small integers (many ties), some NaN and some -0.0: the cases where the
    /// tap order and the `0.0 + g` rule show.
    fn tricky(len: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                match state % 23 {
                    0 => f32::NAN,
                    1 => -0.0,
                    r => (r % 5) as f32 - 2.0,
                }
            })
            .collect()
    }

    fn same_bits(a: &[f32], b: &[f32]) -> bool {
        a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    /// Output widths 1..=19 cover units of 2, 4 and 8 with and without the
    /// overlapping last unit; odd sizes and ceil_mode leave work to the caller.
    fn shapes() -> impl Iterator<Item = (usize, usize, usize, bool)> {
        (1..=5).flat_map(|h| (1..=39).flat_map(move |w| [(3, h, w, false), (2, h, w, true)]))
    }

    /// The portable forward of the 2x2 / 2 pool: the per-row scalar routine
    /// and the general path, as `max_pool2d_forward` runs them without AVX2.
    fn portable_forward(p: &Pool2dParams, relu: bool, x: &[f32]) -> (Vec<f32>, Vec<i32>) {
        let (mut y, mut idx) = (
            vec![0.0; p.batch * p.out_plane()],
            vec![0; p.batch * p.out_plane()],
        );
        let interior = interior_columns(p);
        for (j, (yp, ip)) in y
            .chunks_mut(p.out_plane())
            .zip(idx.chunks_mut(p.out_plane()))
            .enumerate()
        {
            let xs = &x[j * p.in_plane()..][..p.in_plane()];
            for oy in 0..p.out_h {
                let yrow = &mut yp[oy * p.out_w..][..p.out_w];
                let irow = &mut ip[oy * p.out_w..][..p.out_w];
                let done = if 2 * oy + 1 < p.h {
                    max_row_2x2(p, xs, oy, 0, relu, yrow, irow)
                } else {
                    0
                };
                max_row(p, xs, oy, done, interior, false, yrow, irow);
                if relu {
                    clamp_at_zero(&mut yrow[done..], &mut irow[done..]);
                }
            }
        }
        (y, idx)
    }

    #[test]
    fn avx2_2x2_forward_matches_portable() {
        if !simd::cpu_has_avx2_fma() {
            return; // nothing to compare on this CPU
        }
        for (planes, h, w, ceil) in shapes() {
            let Ok(p) =
                Pool2dParams::new("t", [planes, 1, h, w], [2, 2], [2, 2], [0, 0], [1, 1], ceil)
            else {
                continue;
            };
            let x = tricky(planes * h * w, (h * 64 + w) as u32);
            for relu in [false, true] {
                let (y_ref, i_ref) = portable_forward(&p, relu, &x);
                let (mut y, mut idx) = (vec![7.0; y_ref.len()], vec![7; y_ref.len()]);
                let cols = max_2x2_simd(&p, relu, &x, &mut y, &mut idx);
                assert_eq!(
                    cols,
                    if p.out_w.min(w / 2) >= 2 {
                        p.out_w.min(w / 2)
                    } else {
                        0
                    }
                );
                // Compare what the AVX2 path wrote: full-window rows, columns < cols.
                for plane in 0..planes {
                    for oy in 0..h / 2 {
                        let at = plane * p.out_plane() + oy * p.out_w;
                        let what = format!("{planes}x{h}x{w} ceil={ceil} relu={relu} row {oy}");
                        assert!(
                            same_bits(&y[at..at + cols], &y_ref[at..at + cols]),
                            "{what}"
                        );
                        assert_eq!(idx[at..at + cols], i_ref[at..at + cols], "{what}");
                    }
                }
                // And the whole public function against the portable one.
                max_pool2d_forward(&p, relu, &x, &mut y, &mut idx);
                assert!(
                    same_bits(&y, &y_ref) && idx == i_ref,
                    "{planes}x{h}x{w} ceil={ceil} relu={relu}"
                );
            }
        }
    }

    #[test]
    fn avx2_2x2_backward_matches_scatter() {
        for (planes, h, w, ceil) in shapes() {
            let Ok(p) =
                Pool2dParams::new("t", [planes, 1, h, w], [2, 2], [2, 2], [0, 0], [1, 1], ceil)
            else {
                continue;
            };
            let x = tricky(planes * h * w, (h * 64 + w) as u32);
            let g = tricky(planes * p.out_plane(), (w * 64 + h) as u32 + 1);
            for relu in [false, true] {
                let (_, idx) = portable_forward(&p, relu, &x);
                let targets = Targets::new(&p);
                let mut expected = vec![7.0; planes * p.in_plane()];
                let mut got = vec![7.0; planes * p.in_plane()];
                for ((gs, is), out) in g
                    .chunks(p.out_plane())
                    .zip(idx.chunks(p.out_plane()))
                    .zip(expected.chunks_mut(p.in_plane()))
                {
                    targets.scatter(gs, is, out);
                }
                // The public function: AVX2 plus `rest_2x2` where the CPU has it.
                max_pool2d_backward(&p, &g, &idx, &mut got);
                assert!(
                    same_bits(&got, &expected),
                    "{planes}x{h}x{w} ceil={ceil} relu={relu}"
                );
            }
        }
    }

    #[test]
    fn avx2_general_rows_match_portable() {
        if !simd::cpu_has_avx2_fma() {
            return; // nothing to compare on this CPU
        }
        let mut checked = 0;
        for (h, w) in (1..=6).flat_map(|h| (1..=41).map(move |w| (h, w))) {
            let x = tricky(h * w, (h * 64 + w) as u32 + 7);
            for (k, s, pad, d, ceil) in (1..=3).flat_map(|k| {
                (1..=3).flat_map(move |s| {
                    (0..=k / 2).flat_map(move |pad| {
                        (1..=2).flat_map(move |d| [false, true].map(|ceil| (k, s, pad, d, ceil)))
                    })
                })
            }) {
                let Ok(p) =
                    Pool2dParams::new("t", [1, 1, h, w], [k, k], [s, s], [pad, pad], [d, d], ceil)
                else {
                    continue;
                };
                let interior = interior_columns(&p);
                for oy in 0..p.out_h {
                    let mut rows = [
                        (vec![0.0; p.out_w], vec![0; p.out_w]),
                        (vec![1.0; p.out_w], vec![1; p.out_w]),
                    ];
                    for (avx2, (yr, ir)) in [true, false].into_iter().zip(rows.iter_mut()) {
                        max_row(&p, &x, oy, 0, interior, avx2, yr, ir);
                    }
                    let what = format!("{h}x{w} k={k} s={s} pad={pad} d={d} ceil={ceil} row {oy}");
                    assert!(same_bits(&rows[0].0, &rows[1].0), "{what}");
                    assert_eq!(rows[0].1, rows[1].1, "{what}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 1000);
    }

    #[test]
    fn select_picks_by_mask() {
        assert_eq!(select(true, (1.5, 3), (2.5, 4)), (1.5, 3));
        assert_eq!(select(false, (1.5, 3), (2.5, 4)), (2.5, 4));
        let (nan, _) = select(true, (f32::NAN, 0), (1.0, 1));
        assert!(nan.is_nan());
        assert_eq!(
            select(false, (0.0, 0), (-0.0, 1)).0.to_bits(),
            (-0.0f32).to_bits()
        );
    }
}
