//! AVX2 max pooling for 2x2 windows with stride 2 (no padding, no dilation):
//! the pool after most convolutions of LeNet and VGG. Eight outputs at a time:
//! two loads per input row, split into even and odd columns, and four
//! compare-and-blend steps in PyTorch's tap order that keep value and index.

use std::arch::x86_64::*;

/// Writes `y.len()` outputs (a multiple of 8 of them; returns how many) of
/// one output row from input rows `r0`, `r1` (which need `2 * y.len()`
/// columns). `base` is the flat index of `r0[0]` in its plane, `w` the row length.
///
/// # Safety
/// The CPU must support AVX2 (checked by the caller through `use_avx2_fma`).
#[target_feature(enable = "avx2")]
pub unsafe fn max_2x2_row(
    r0: &[f32],
    r1: &[f32],
    base: i32,
    w: i32,
    y: &mut [f32],
    idx: &mut [i32],
) -> usize {
    let n = y.len().min(idx.len()) / 8 * 8;
    assert!(2 * n <= r0.len() && 2 * n <= r1.len());
    let lane_cols = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    let one = _mm256_set1_epi32(1);
    let row_step = _mm256_set1_epi32(w);
    let mut ox = 0;
    while ox < n {
        // SAFETY: 2*ox + 16 <= 2*n <= len of both rows, and ox + 8 <= n <= len of y, idx.
        unsafe {
            let (a, b) = even_odd(r0.as_ptr().add(2 * ox));
            let (c, d) = even_odd(r1.as_ptr().add(2 * ox));
            let ia = _mm256_add_epi32(_mm256_set1_epi32(base + 2 * ox as i32), lane_cols);
            let ic = _mm256_add_epi32(ia, row_step);
            let (mut best, mut at) = (a, ia);
            update(&mut best, &mut at, b, _mm256_add_epi32(ia, one));
            update(&mut best, &mut at, c, ic);
            update(&mut best, &mut at, d, _mm256_add_epi32(ic, one));
            _mm256_storeu_ps(y.as_mut_ptr().add(ox), best);
            _mm256_storeu_si256(idx.as_mut_ptr().add(ox) as *mut __m256i, at);
        }
        ox += 8;
    }
    n
}

/// Loads 16 floats and returns (columns 0, 2, .., 14), (columns 1, 3, .., 15).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn even_odd(p: *const f32) -> (__m256, __m256) {
    // SAFETY: the caller guarantees 16 readable floats at p.
    let (lo, hi) = unsafe { (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))) };
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
