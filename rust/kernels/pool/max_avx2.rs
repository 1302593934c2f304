//! AVX2 max pooling: the 2x2 stride-2 pool (no padding, no dilation) after
//! most convolutions of LeNet and VGG, forward with the ReLU fused and
//! backward; and the interior outputs of the general path (stride 1 or 2,
//! e.g. 3x3 pools), eight outputs in registers through all their taps.
//!
//! Rows of 8 outputs or more go in units of 8 outputs (16 input columns of
//! both input rows); a row whose length is not a multiple of 8 ends with a
//! unit that overlaps the one before (it recomputes, and rewrites, the same
//! values). Narrower rows (LeNet's 5, VGG's 4 and 2) go in units of 4 or 2
//! outputs, again overlapping at the row end, and one AVX2 step takes 2 or 4
//! such units from consecutive rows and planes, so they vectorise as well.

use std::arch::x86_64::*;

/// Writes outputs `0..full` (`full = min(out_w, w / 2)`) of every output row
/// `oy` with `2 * oy + 1 < h` of `planes` consecutive planes; the caller does
/// the rest (the ceil_mode column and row). `xs` holds the input planes
/// (h x w each), `ys` / `idx` the output planes (out_h x out_w each). With
/// `relu`, outputs <= 0 become 0 with argmax -1 (see `max_pool2d_forward`).
/// Returns `full`, or 0 (nothing written) when `full < 2`.
///
/// # Safety
/// The CPU must support AVX2 (checked by the caller through `use_avx2_fma`).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub unsafe fn max_2x2_planes(
    xs: &[f32],
    planes: usize,
    [h, w]: [usize; 2],
    [out_h, out_w]: [usize; 2],
    relu: bool,
    ys: &mut [f32],
    idx: &mut [i32],
) -> usize {
    let rows = out_h.min(h / 2);
    let full = out_w.min(w / 2);
    assert!(xs.len() >= planes * h * w);
    assert!(ys.len() >= planes * out_h * out_w && idx.len() >= planes * out_h * out_w);
    if full < 2 {
        return 0;
    }
    // Unit width (outputs), and the units' first columns in each row: every
    // `width` columns, and one more at `full - width` (overlapping) if needed.
    let width = [8, 4, 2].into_iter().find(|&n| full >= n).unwrap_or(2);
    let last = full - width;
    let cols = (0..last).step_by(width).chain([last]);
    // Narrow rows: units of 4 (2 per AVX2 step) or 2 (4 per step) outputs.
    let per_step = 8 / width;
    let mut batch = [Unit::default(); 4];
    let mut queued = 0;
    for plane in 0..planes {
        for oy in 0..rows {
            let unit_at = |col: usize| Unit {
                input: plane * h * w + 2 * oy * w + 2 * col,
                index: (2 * oy * w + 2 * col) as i32,
                output: plane * out_h * out_w + oy * out_w + col,
            };
            // SAFETY (all calls below): AVX2 per the caller; a unit of `width` outputs
            // from `col` reads input columns 2 * col .. 2 * (col + width) <= 2 * full
            // <= w of rows 2oy, 2oy + 1 < h, and writes outputs col .. col + width
            // <= full <= out_w of row oy < out_h.
            if width == 4 && full > 4 {
                // Rows of 5 to 7 outputs (LeNet's 5): their two units make one step.
                unsafe { pair(xs, w, unit_at(0), unit_at(last), relu, ys, idx) };
                continue;
            }
            for col in cols.clone() {
                let unit = unit_at(col);
                if width == 8 {
                    unsafe { unit8(xs, w, unit, relu, ys, idx) };
                    continue;
                }
                batch[queued] = unit;
                queued += 1;
                if queued == per_step {
                    if per_step == 2 {
                        unsafe { pair(xs, w, batch[0], batch[1], relu, ys, idx) };
                    } else {
                        unsafe { quad(xs, w, batch, relu, ys, idx) };
                    }
                    queued = 0;
                }
            }
        }
    }
    if queued > 0 {
        // A step short of units repeats its first one, which rewrites the same values.
        let first = batch[0];
        batch[queued..].fill(first);
        // SAFETY: as above.
        unsafe {
            if per_step == 2 {
                pair(xs, w, batch[0], batch[1], relu, ys, idx)
            } else {
                quad(xs, w, batch, relu, ys, idx)
            }
        }
    }
    full
}

/// A group of adjacent outputs of one row: input offset of its top-left tap,
/// the argmax of that tap (its index within its own plane), and the offset of
/// its first output.
#[derive(Clone, Copy, Default)]
struct Unit {
    input: usize,
    index: i32,
    output: usize,
}

/// 8 outputs of one row. The even/odd split works per 128-bit lane, so lanes
/// hold outputs [0 1 4 5 | 2 3 6 7]; the indices are built in that order too,
/// and one 64-bit permute per result puts the outputs in column order.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn unit8(xs: &[f32], w: usize, u: Unit, relu: bool, ys: &mut [f32], idx: &mut [i32]) {
    let p = xs.as_ptr();
    // SAFETY: the caller guarantees 16 readable floats at u.input and u.input + w.
    let split = |off: usize| unsafe {
        let (lo, hi) = (_mm256_loadu_ps(p.add(off)), _mm256_loadu_ps(p.add(off + 8)));
        (
            _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi),
            _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi),
        )
    };
    let ((a, b), (c, d)) = (split(u.input), split(u.input + w));
    let cols = _mm256_setr_epi32(0, 2, 8, 10, 4, 6, 12, 14);
    let at = _mm256_add_epi32(_mm256_set1_epi32(u.index), cols);
    let (best, best_at) = max_of_taps([a, b, c, d], at, w, relu);
    // SAFETY: the caller guarantees 8 writable outputs at u.output.
    unsafe {
        _mm256_storeu_ps(ys.as_mut_ptr().add(u.output), column_order(best));
        _mm256_storeu_si256(
            idx.as_mut_ptr().add(u.output) as *mut __m256i,
            _mm256_permute4x64_epi64::<0b11_01_10_00>(best_at),
        );
    }
}

/// Two units of four outputs.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn pair(
    xs: &[f32],
    w: usize,
    a: Unit,
    b: Unit,
    relu: bool,
    ys: &mut [f32],
    idx: &mut [i32],
) {
    let p = xs.as_ptr();
    // SAFETY: the caller guarantees 8 readable floats at a.input, a.input + w, b.input, b.input + w.
    let split = |off: usize| unsafe {
        let lo = _mm256_setr_m128(
            _mm_loadu_ps(p.add(a.input + off)),
            _mm_loadu_ps(p.add(b.input + off)),
        );
        let hi = _mm256_setr_m128(
            _mm_loadu_ps(p.add(a.input + off + 4)),
            _mm_loadu_ps(p.add(b.input + off + 4)),
        );
        // Lane 0: columns 0 2 4 6 (or 1 3 5 7) of a, lane 1 the same of b.
        (
            _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi),
            _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi),
        )
    };
    let (top, bottom) = (split(0), split(w));
    let cols = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    let base = _mm256_setr_m128i(_mm_set1_epi32(a.index), _mm_set1_epi32(b.index));
    let (best, at) = max_of_taps(
        [top.0, top.1, bottom.0, bottom.1],
        _mm256_add_epi32(base, cols),
        w,
        relu,
    );
    // SAFETY: 4 outputs at a.output and at b.output lie inside the output planes (caller).
    unsafe {
        let (y, i) = (ys.as_mut_ptr(), idx.as_mut_ptr() as *mut __m128i);
        _mm_storeu_ps(y.add(a.output), _mm256_castps256_ps128(best));
        _mm_storeu_ps(y.add(b.output), _mm256_extractf128_ps::<1>(best));
        _mm_storeu_si128(i.byte_add(4 * a.output), _mm256_castsi256_si128(at));
        _mm_storeu_si128(i.byte_add(4 * b.output), _mm256_extracti128_si256::<1>(at));
    }
}

/// Four units of two outputs.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn quad(xs: &[f32], w: usize, u: [Unit; 4], relu: bool, ys: &mut [f32], idx: &mut [i32]) {
    let p = xs.as_ptr();
    // SAFETY: the caller guarantees 4 readable floats at each u.input and u.input + w.
    let load = |off: usize| unsafe {
        let lo = _mm256_setr_m128(
            _mm_loadu_ps(p.add(u[0].input + off)),
            _mm_loadu_ps(p.add(u[1].input + off)),
        );
        let hi = _mm256_setr_m128(
            _mm_loadu_ps(p.add(u[2].input + off)),
            _mm_loadu_ps(p.add(u[3].input + off)),
        );
        // Lane 0: [u0 col 0, u0 col 2, u2 col 0, u2 col 2], lane 1 likewise for u1, u3.
        (
            _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi),
            _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi),
        )
    };
    let (top, bottom) = (load(0), load(w));
    let base = _mm256_setr_epi32(
        u[0].index,
        u[0].index + 2,
        u[2].index,
        u[2].index + 2,
        u[1].index,
        u[1].index + 2,
        u[3].index,
        u[3].index + 2,
    );
    let (best, at) = max_of_taps([top.0, top.1, bottom.0, bottom.1], base, w, relu);
    let (b_lo, b_hi) = (
        _mm256_castps256_ps128(best),
        _mm256_extractf128_ps::<1>(best),
    );
    let (i_lo, i_hi) = (
        _mm256_castsi256_si128(at),
        _mm256_extracti128_si256::<1>(at),
    );
    // SAFETY: 2 outputs at each u.output lie inside the output planes (caller).
    unsafe {
        let (y, i) = (ys.as_mut_ptr(), idx.as_mut_ptr());
        store2(y.add(u[0].output), i.add(u[0].output), b_lo, i_lo, false);
        store2(y.add(u[2].output), i.add(u[2].output), b_lo, i_lo, true);
        store2(y.add(u[1].output), i.add(u[1].output), b_hi, i_hi, false);
        store2(y.add(u[3].output), i.add(u[3].output), b_hi, i_hi, true);
    }
}

/// Stores the low (or high) two lanes of `v` and `at`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store2(y: *mut f32, i: *mut i32, v: __m128, at: __m128i, high: bool) {
    let (v, at) = if high {
        (_mm_movehl_ps(v, v), _mm_unpackhi_epi64(at, at))
    } else {
        (v, at)
    };
    // SAFETY: the caller guarantees 2 writable elements at y and at i.
    unsafe {
        _mm_storel_epi64(y as *mut __m128i, _mm_castps_si128(v));
        _mm_storel_epi64(i as *mut __m128i, at);
    }
}

/// The four taps (top-left, top-right, bottom-left, bottom-right) in
/// PyTorch's order; `at` is the index of the top-left tap per lane. With
/// `relu`, lanes <= 0 become 0 with index -1 (NaN lanes stay as they are).
#[inline]
#[target_feature(enable = "avx2")]
fn max_of_taps(taps: [__m256; 4], at: __m256i, w: usize, relu: bool) -> (__m256, __m256i) {
    let one = _mm256_set1_epi32(1);
    let below = _mm256_add_epi32(at, _mm256_set1_epi32(w as i32));
    let (mut best, mut best_at) = (taps[0], at);
    update(&mut best, &mut best_at, taps[1], _mm256_add_epi32(at, one));
    update(&mut best, &mut best_at, taps[2], below);
    update(
        &mut best,
        &mut best_at,
        taps[3],
        _mm256_add_epi32(below, one),
    );
    if relu {
        let clamp = _mm256_cmp_ps::<_CMP_LE_OQ>(best, _mm256_setzero_ps());
        best = _mm256_andnot_ps(clamp, best);
        best_at = _mm256_or_si256(best_at, _mm256_castps_si256(clamp));
    }
    (best, best_at)
}

/// 64-bit blocks [0, 2, 1, 3]: undoes the lane split of `_mm256_shuffle_ps`.
#[inline]
#[target_feature(enable = "avx2")]
fn column_order(v: __m256) -> __m256 {
    _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)))
}

/// PyTorch's rule, lane by lane: take `v` if `v > best` or `v` is NaN.
#[inline]
#[target_feature(enable = "avx2")]
fn update(best: &mut __m256, at: &mut __m256i, v: __m256, v_at: __m256i) {
    let take = _mm256_or_ps(
        _mm256_cmp_ps::<_CMP_GT_OQ>(v, *best),
        _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v),
    );
    *best = _mm256_blendv_ps(*best, v, take);
    *at = _mm256_castps_si256(_mm256_blendv_ps(
        _mm256_castsi256_ps(*at),
        _mm256_castsi256_ps(v_at),
        take,
    ));
}

/// Backward of the 2x2 stride-2 pool for `planes` consecutive planes: writes
/// input columns `0..2 * full` (`full = min(out_w, w / 2)`) of input rows
/// `0..2 * min(out_h, h / 2)` of each plane of `dx`, every one of them:
/// `dx[i] = 0.0 + g[o]` if output `o`'s window holds `i` and `idx[o] == i`, else
/// 0 (`0.0 + g`, as the zero-fill-then-add scatter gives: -0.0 lands as +0.0).
/// The caller does the rest. Returns `Some(full)`, or `Some(0)` (nothing
/// written) when `full < 2`, or None when an index is neither -1 nor one of
/// its own window's inputs (hand-made, not from the forward pass): reading
/// each window would then drop that gradient, so the caller must scatter.
///
/// Windows do not overlap, so each input is read from its one window instead
/// of scattered to: dx is written once, in order, with no zero-fill pass and
/// no branch on argmax -1 (half the outputs after a fused ReLU).
///
/// # Safety
/// The CPU must support AVX2 (checked by the caller through `use_avx2_fma`).
#[target_feature(enable = "avx2")]
pub unsafe fn max_2x2_backward_planes(
    g: &[f32],
    idx: &[i32],
    planes: usize,
    [h, w]: [usize; 2],
    [out_h, out_w]: [usize; 2],
    dx: &mut [f32],
) -> Option<usize> {
    let rows = out_h.min(h / 2);
    let full = out_w.min(w / 2);
    assert!(g.len() >= planes * out_h * out_w && idx.len() >= planes * out_h * out_w);
    assert!(dx.len() >= planes * h * w);
    if full < 2 {
        return Some(0);
    }
    let geometry = ([h, w], [out_h, out_w], [planes, rows, full]);
    // SAFETY: AVX2 per the caller; the geometry is the caller's.
    let stray = unsafe {
        match full {
            8.. => backward_units::<8>(g, idx, geometry, dx),
            4..8 => backward_units::<4>(g, idx, geometry, dx),
            _ => backward_units::<2>(g, idx, geometry, dx),
        }
    };
    (stray == 0).then_some(full)
}

/// The loop of [`max_2x2_backward_planes`] over units of `WIDTH` outputs.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn backward_units<const WIDTH: usize>(
    g: &[f32],
    idx: &[i32],
    ([h, w], [out_h, out_w], [planes, rows, full]): ([usize; 2], [usize; 2], [usize; 3]),
    dx: &mut [f32],
) -> i32 {
    let last = full - WIDTH;
    let mut stray = 0;
    for plane in 0..planes {
        for oy in 0..rows {
            // Units every WIDTH columns, the last one at `last` (overlapping).
            let mut col = 0;
            loop {
                let c = col.min(last);
                let unit = Unit {
                    input: plane * h * w + 2 * oy * w + 2 * c,
                    index: (2 * oy * w + 2 * c) as i32,
                    output: plane * out_h * out_w + oy * out_w + c,
                };
                // SAFETY: AVX2 per the caller; a unit of WIDTH outputs from `c` reads
                // outputs c .. c + WIDTH <= full <= out_w of row oy < out_h and
                // writes columns 2 * c .. 2 * (c + WIDTH) <= 2 * full <= w of input
                // rows 2oy, 2oy + 1 < h. The overlapping last unit of a row rewrites
                // the same values.
                stray |= unsafe {
                    match WIDTH {
                        8 => backward8(g, idx, w, unit, dx),
                        4 => backward_narrow::<4>(g, idx, w, unit, dx),
                        _ => backward_narrow::<2>(g, idx, w, unit, dx),
                    }
                };
                if c == last {
                    break;
                }
                col += WIDTH;
            }
        }
    }
    stray
}

/// 8 outputs: 16 columns of both input rows. Returns a nonzero mask if an
/// index matched none of its window's four inputs and is not -1.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn backward8(g: &[f32], idx: &[i32], w: usize, u: Unit, dx: &mut [f32]) -> i32 {
    // SAFETY: the caller guarantees 8 outputs at u.output.
    let (gv, at) = unsafe {
        (
            _mm256_loadu_ps(g.as_ptr().add(u.output)),
            _mm256_loadu_si256(idx.as_ptr().add(u.output) as *const __m256i),
        )
    };
    let pick = |tap: __m256i| {
        let hit = _mm256_castsi256_ps(_mm256_cmpeq_epi32(at, tap));
        (
            _mm256_add_ps(_mm256_setzero_ps(), _mm256_and_ps(hit, gv)),
            hit,
        )
    };
    let cols = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    let mut left = _mm256_add_epi32(_mm256_set1_epi32(u.index), cols);
    let mut found = _mm256_castsi256_ps(_mm256_cmpeq_epi32(at, _mm256_set1_epi32(-1)));
    for row in [u.input, u.input + w] {
        let ((l, hit_l), (r, hit_r)) = (
            pick(left),
            pick(_mm256_add_epi32(left, _mm256_set1_epi32(1))),
        );
        found = _mm256_or_ps(found, _mm256_or_ps(hit_l, hit_r));
        // Per lane [l0 r0 l1 r1 | l4 r4 l5 r5] and [l2 r2 l3 r3 | l6 r6 l7 r7].
        let (lo, hi) = (_mm256_unpacklo_ps(l, r), _mm256_unpackhi_ps(l, r));
        // SAFETY: the caller guarantees 16 writable floats at u.input and u.input + w.
        unsafe {
            let p = dx.as_mut_ptr().add(row);
            _mm256_storeu_ps(p, _mm256_permute2f128_ps::<0x20>(lo, hi));
            _mm256_storeu_ps(p.add(8), _mm256_permute2f128_ps::<0x31>(lo, hi));
        }
        left = _mm256_add_epi32(left, _mm256_set1_epi32(w as i32));
    }
    _mm256_movemask_ps(found) ^ 0xff
}

/// `N` = 4 or 2 outputs: 2N columns of both input rows; returns as
/// [`backward8`] (for lanes 0..N).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn backward_narrow<const N: usize>(
    g: &[f32],
    idx: &[i32],
    w: usize,
    u: Unit,
    dx: &mut [f32],
) -> i32 {
    // SAFETY: the caller guarantees N outputs at u.output (64-bit loads for 2).
    let (gv, at) = unsafe {
        let (g, idx) = (g.as_ptr().add(u.output), idx.as_ptr().add(u.output));
        if N == 4 {
            (_mm_loadu_ps(g), _mm_loadu_si128(idx as *const __m128i))
        } else {
            (
                _mm_castsi128_ps(_mm_loadl_epi64(g as *const __m128i)),
                _mm_loadl_epi64(idx as *const __m128i),
            )
        }
    };
    let mut left = _mm_add_epi32(_mm_set1_epi32(u.index), _mm_setr_epi32(0, 2, 4, 6));
    let mut found = _mm_cmpeq_epi32(at, _mm_set1_epi32(-1)); // -1: nothing to find
    for row in [u.input, u.input + w] {
        let ((l, hit_l), (r, hit_r)) = (
            pick4(gv, at, left),
            pick4(gv, at, _mm_add_epi32(left, _mm_set1_epi32(1))),
        );
        found = _mm_or_si128(found, _mm_or_si128(hit_l, hit_r));
        // SAFETY: the caller guarantees 2N writable floats at u.input and u.input + w.
        unsafe {
            let p = dx.as_mut_ptr().add(row);
            _mm_storeu_ps(p, _mm_unpacklo_ps(l, r));
            if N == 4 {
                _mm_storeu_ps(p.add(4), _mm_unpackhi_ps(l, r));
            }
        }
        left = _mm_add_epi32(left, _mm_set1_epi32(w as i32));
    }
    (_mm_movemask_ps(_mm_castsi128_ps(found)) ^ 0xf) & ((1 << N) - 1)
}

/// `0.0 + g` in the lanes whose argmax is `tap`, else 0; and the hit mask.
#[inline]
#[target_feature(enable = "avx2")]
fn pick4(g: __m128, at: __m128i, tap: __m128i) -> (__m128, __m128i) {
    let hit = _mm_cmpeq_epi32(at, tap);
    let value = _mm_add_ps(_mm_setzero_ps(), _mm_and_ps(_mm_castsi128_ps(hit), g));
    (value, hit)
}

/// All taps of a run of `n = best.len()` outputs of the general path whose
/// windows lie inside the input along W (stride `sw` 1 or 2): output j's taps
/// are rows `rows.0..rows.1` step `rows.2` of plane `xs` (width `w`), columns
/// `first_col + j * sw + kx * dw` for kx < `kernel_w`, in PyTorch's order
/// (rows, then columns), starting from -inf with the index of the first tap.
/// Eight outputs stay in registers through all their taps; a run that is not
/// a multiple of 8 ends with a step that overlaps the one before. Returns `n`,
/// or 0 (nothing written) when this routine does not apply.
///
/// # Safety
/// The CPU must support AVX2 (checked by the caller through `use_avx2_fma`).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub unsafe fn max_windows(
    xs: &[f32],
    w: usize,
    (y0, y1, dy): (usize, usize, usize),
    first_col: usize,
    [kernel_w, dw, sw]: [usize; 3],
    best: &mut [f32],
    at: &mut [i32],
) -> usize {
    let n = best.len();
    // Stride 2 reads 16 floats per 8 outputs; near the plane's end, from one
    // float earlier (keeping the odd ones), which needs a plane of 16 or more.
    if n < 8 || at.len() != n || !(sw == 1 || (sw == 2 && xs.len() >= 16)) {
        return 0;
    }
    let last_tap = (y1 - 1) * w + first_col + (n - 1) * sw + (kernel_w - 1) * dw;
    assert!(y0 < y1 && dy > 0 && last_tap < xs.len());
    let lanes = _mm256_mullo_epi32(
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        _mm256_set1_epi32(sw as i32),
    );
    let p = xs.as_ptr();
    let mut j = 0;
    loop {
        let start = j.min(n - 8);
        let first = y0 * w + first_col + start * sw;
        let mut b = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut a = _mm256_add_epi32(_mm256_set1_epi32(first as i32), lanes);
        for iy in (y0..y1).step_by(dy) {
            for kx in 0..kernel_w {
                let off = iy * w + first_col + start * sw + kx * dw;
                // SAFETY: the taps of outputs start..start + 8 lie at off + k * sw <=
                // last_tap < xs.len(); stride 2 reads off..off + 16 when that fits,
                // else off - 1..off + 15 (off + 15 == xs.len() >= 16, so off >= 1).
                let v = unsafe {
                    if sw == 1 {
                        _mm256_loadu_ps(p.add(off))
                    } else if off + 16 <= xs.len() {
                        let (lo, hi) =
                            (_mm256_loadu_ps(p.add(off)), _mm256_loadu_ps(p.add(off + 8)));
                        column_order(_mm256_shuffle_ps::<0b10_00_10_00>(lo, hi))
                    } else {
                        let q = p.add(off - 1);
                        let (lo, hi) = (_mm256_loadu_ps(q), _mm256_loadu_ps(q.add(8)));
                        column_order(_mm256_shuffle_ps::<0b11_01_11_01>(lo, hi))
                    }
                };
                let v_at = _mm256_add_epi32(_mm256_set1_epi32(off as i32), lanes);
                update(&mut b, &mut a, v, v_at);
            }
        }
        // SAFETY: start + 8 <= n.
        unsafe {
            _mm256_storeu_ps(best.as_mut_ptr().add(start), b);
            _mm256_storeu_si256(at.as_mut_ptr().add(start) as *mut __m256i, a);
        }
        if start == n - 8 {
            return n;
        }
        j += 8;
    }
}
