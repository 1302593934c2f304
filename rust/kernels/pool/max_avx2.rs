//! AVX2 max pooling for 2x2 windows with stride 2 (no padding, no dilation):
//! the pool after most convolutions of LeNet and VGG.
//!
//! The work unit is four adjacent outputs of one output row (8 columns of
//! two input rows). One AVX2 step does two units, from the same row or from
//! different rows, so narrow planes (VGG's 8x8, LeNet's 10x10) vectorise as
//! well as wide ones: per input row, two 8-float loads are split into even
//! and odd columns, then four compare-and-blend steps in PyTorch's tap order
//! keep value and index.

use std::arch::x86_64::*;

/// Writes the first `4 * (min(out_w, w / 2) / 4)` outputs of every output row
/// `oy` with `2 * oy + 1 < h` of one plane; the caller does the rest.
/// `xs` is the input plane (h x w), `ys` / `idx` the output plane (out_h x out_w).
///
/// # Safety
/// The CPU must support AVX2 (checked by the caller through `use_avx2_fma`).
#[target_feature(enable = "avx2")]
pub unsafe fn max_2x2_plane(
    xs: &[f32],
    h: usize,
    w: usize,
    ys: &mut [f32],
    idx: &mut [i32],
    out_h: usize,
    out_w: usize,
) {
    let rows = out_h.min(h / 2);
    let units_per_row = out_w.min(w / 2) / 4;
    assert!(xs.len() >= h * w && ys.len() >= out_h * out_w && idx.len() >= out_h * out_w);
    let mut pending: Option<(usize, usize)> = None;
    for oy in 0..rows {
        for u in 0..units_per_row {
            let unit = (2 * oy * w + 8 * u, oy * out_w + 4 * u); // (input, output) offsets
            match pending.take() {
                // SAFETY: AVX2 per the caller; offsets are in bounds (asserted above: a unit
                // reads columns < 2 * out_w.min(w / 2) <= w of rows 2oy, 2oy+1 < h).
                Some(first) => unsafe { pair(xs, w, first, unit, ys, idx) },
                None => pending = Some(unit),
            }
        }
    }
    if let Some(last) = pending {
        // SAFETY: as above; the unit is done twice and written once.
        unsafe { pair(xs, w, last, last, ys, idx) };
    }
}

/// Two units: `a` and `b` are (input offset of the top-left tap, output offset).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn pair(
    xs: &[f32],
    w: usize,
    a: (usize, usize),
    b: (usize, usize),
    ys: &mut [f32],
    idx: &mut [i32],
) {
    let p = xs.as_ptr();
    // SAFETY: the caller guarantees 8 readable floats at a.0, a.0 + w, b.0, b.0 + w.
    let (top_even, top_odd, bottom_even, bottom_odd) = unsafe {
        let top = even_odd(p.add(a.0), p.add(b.0));
        let bottom = even_odd(p.add(a.0 + w), p.add(b.0 + w));
        (top.0, top.1, bottom.0, bottom.1)
    };
    let cols = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    let base = _mm256_setr_m128i(_mm_set1_epi32(a.0 as i32), _mm_set1_epi32(b.0 as i32));
    let i_top = _mm256_add_epi32(base, cols);
    let i_bottom = _mm256_add_epi32(i_top, _mm256_set1_epi32(w as i32));
    let one = _mm256_set1_epi32(1);
    let (mut best, mut at) = (top_even, i_top);
    update(&mut best, &mut at, top_odd, _mm256_add_epi32(i_top, one));
    update(&mut best, &mut at, bottom_even, i_bottom);
    update(
        &mut best,
        &mut at,
        bottom_odd,
        _mm256_add_epi32(i_bottom, one),
    );
    // SAFETY: 4 outputs at a.1 and at b.1 lie inside the output plane (caller).
    unsafe {
        let (y, i) = (ys.as_mut_ptr(), idx.as_mut_ptr() as *mut __m128i);
        _mm_storeu_ps(y.add(a.1), _mm256_castps256_ps128(best));
        _mm_storeu_ps(y.add(b.1), _mm256_extractf128_ps::<1>(best));
        _mm_storeu_si128(i.byte_add(4 * a.1), _mm256_castsi256_si128(at));
        _mm_storeu_si128(i.byte_add(4 * b.1), _mm256_extracti128_si256::<1>(at));
    }
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
