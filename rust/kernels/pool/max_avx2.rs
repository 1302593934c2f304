//! AVX2 max pooling for 2x2 windows with stride 2 (no padding, no dilation):
//! the pool after most convolutions of LeNet and VGG.
//!
//! The work unit is four adjacent outputs of one output row (8 columns of
//! two input rows); one AVX2 step does two units, from the same row or from
//! different rows (or planes), so narrow planes (VGG's 8x8, LeNet's 10x10)
//! vectorise as well as wide ones. Per input row, 8-float loads are split
//! into even and odd columns, then four compare-and-blend steps in PyTorch's
//! tap order keep value and index. Rows with 2 or 3 outputs left over (4x4
//! planes, odd widths) use half units of 2 outputs, four per AVX2 step.

use std::arch::x86_64::*;

/// A group of outputs: input offset of its top-left tap, the argmax of that
/// tap (its index within its own plane), and the offset of its first output.
#[derive(Clone, Copy)]
struct Unit {
    input: usize,
    index: i32,
    output: usize,
}

/// Writes the first `2 * (min(out_w, w / 2) / 2)` outputs of every output row
/// `oy` with `2 * oy + 1 < h` of `planes` consecutive planes; the caller does
/// the rest. `xs` holds the input planes (h x w each), `ys` / `idx` the output
/// planes (out_h x out_w each). Returns the number of columns written per row.
///
/// # Safety
/// The CPU must support AVX2 (checked by the caller through `use_avx2_fma`).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub unsafe fn max_2x2_planes(
    xs: &[f32],
    planes: usize,
    h: usize,
    w: usize,
    ys: &mut [f32],
    idx: &mut [i32],
    out_h: usize,
    out_w: usize,
) -> usize {
    let rows = out_h.min(h / 2);
    let full = out_w.min(w / 2);
    let (units, halves) = (full / 4, full % 4 / 2);
    assert!(xs.len() >= planes * h * w);
    assert!(ys.len() >= planes * out_h * out_w && idx.len() >= planes * out_h * out_w);
    let mut pending: Option<Unit> = None;
    let mut pending_halves: [Option<Unit>; 3] = [None; 3];
    for plane in 0..planes {
        for oy in 0..rows {
            let row = |col: usize| Unit {
                input: plane * h * w + 2 * oy * w + 2 * col,
                index: (2 * oy * w + 2 * col) as i32,
                output: plane * out_h * out_w + oy * out_w + col,
            };
            for u in 0..units {
                let unit = row(4 * u);
                match pending.take() {
                    // SAFETY: AVX2 per the caller; a unit reads columns < 2 * full <= w of
                    // input rows 2oy, 2oy + 1 < h and writes columns < full of row oy.
                    Some(first) => unsafe { pair(xs, w, first, unit, ys, idx) },
                    None => pending = Some(unit),
                }
            }
            if halves == 1 {
                let half = row(4 * units);
                match pending_halves.iter().position(Option::is_none) {
                    Some(slot) => pending_halves[slot] = Some(half),
                    None => {
                        let [a, b, c] = pending_halves.map(|u| u.unwrap_or(half));
                        // SAFETY: as above, for 2-output half units.
                        unsafe { quad(xs, w, [a, b, c, half], ys, idx) };
                        pending_halves = [None; 3];
                    }
                }
            }
        }
    }
    if let Some(last) = pending {
        // SAFETY: as above; the unit is done twice and written twice, identically.
        unsafe { pair(xs, w, last, last, ys, idx) };
    }
    if let Some(first) = pending_halves[0] {
        let [a, b, c] = pending_halves.map(|u| u.unwrap_or(first));
        // SAFETY: as above; repeated half units write the same values again.
        unsafe { quad(xs, w, [a, b, c, first], ys, idx) };
    }
    2 * (full / 2)
}

/// Two units of four outputs.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn pair(xs: &[f32], w: usize, a: Unit, b: Unit, ys: &mut [f32], idx: &mut [i32]) {
    let p = xs.as_ptr();
    // SAFETY: the caller guarantees 8 readable floats at a.input, a.input + w, b.input, b.input + w.
    let (top_even, top_odd, bottom_even, bottom_odd) = unsafe {
        let top = even_odd(p.add(a.input), p.add(b.input));
        let bottom = even_odd(p.add(a.input + w), p.add(b.input + w));
        (top.0, top.1, bottom.0, bottom.1)
    };
    let cols = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    let base = _mm256_setr_m128i(_mm_set1_epi32(a.index), _mm_set1_epi32(b.index));
    let (best, at) = max_of_taps(
        [top_even, top_odd, bottom_even, bottom_odd],
        _mm256_add_epi32(base, cols),
        w,
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

/// Four half units of two outputs each.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn quad(xs: &[f32], w: usize, u: [Unit; 4], ys: &mut [f32], idx: &mut [i32]) {
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
    let (best, at) = max_of_taps([top.0, top.1, bottom.0, bottom.1], base, w);
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
/// PyTorch's order; `at` is the index of the top-left tap per lane.
#[inline]
#[target_feature(enable = "avx2")]
fn max_of_taps(taps: [__m256; 4], at: __m256i, w: usize) -> (__m256, __m256i) {
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
    (best, best_at)
}

/// From 8 floats at `a` and 8 at `b`: (even columns of a, then of b), (odd columns ...).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn even_odd(a: *const f32, b: *const f32) -> (__m256, __m256) {
    // SAFETY: the caller guarantees 8 readable floats at a and at b.
    let (lo, hi) = unsafe { (_mm256_loadu_ps(a), _mm256_loadu_ps(b)) };
    // Per 128-bit lane: [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6]; the 64-bit permute
    // [0, 2, 1, 3] puts the pairs in column order.
    let even = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi);
    let odd = _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi);
    (column_order(even), column_order(odd))
}

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

/// One tap of the general path over a run of outputs: `taps[j * stride]` is
/// the tap's input for output j (stride 1 or 2), `index0` its flat index for
/// output 0. Updates `best` / `at` with PyTorch's rule; returns how many
/// leading outputs it did (a multiple of 8; the caller does the rest).
///
/// # Safety
/// The CPU must support AVX2 (checked by the caller through `use_avx2_fma`).
#[target_feature(enable = "avx2")]
pub unsafe fn update_taps(
    best: &mut [f32],
    at: &mut [i32],
    taps: &[f32],
    stride: usize,
    index0: i32,
) -> usize {
    let n = best.len().min(at.len());
    // Loads read 8 * stride floats per 8 outputs: stay inside `taps`.
    let full = if stride == 1 || stride == 2 {
        (n / 8).min(taps.len() / (8 * stride))
    } else {
        0
    };
    let lanes = _mm256_mullo_epi32(
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        _mm256_set1_epi32(stride as i32),
    );
    for c in 0..full {
        let j = 8 * c;
        // SAFETY: j + 8 <= n for best / at, and 8 * stride * (c + 1) <= taps.len().
        unsafe {
            let v = if stride == 1 {
                _mm256_loadu_ps(taps.as_ptr().add(j))
            } else {
                let p = taps.as_ptr().add(2 * j);
                even_odd(p, p.add(8)).0
            };
            let mut b = _mm256_loadu_ps(best.as_ptr().add(j));
            let mut a = _mm256_loadu_si256(at.as_ptr().add(j) as *const __m256i);
            let v_at = _mm256_add_epi32(_mm256_set1_epi32(index0 + (j * stride) as i32), lanes);
            update(&mut b, &mut a, v, v_at);
            _mm256_storeu_ps(best.as_mut_ptr().add(j), b);
            _mm256_storeu_si256(at.as_mut_ptr().add(j) as *mut __m256i, a);
        }
    }
    8 * full
}
