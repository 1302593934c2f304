//! The AVX2+FMA micro-kernel: a 6 x 16 tile of C in 12 ymm accumulators.
//!
//! Each k step loads one 16-float row of B (2 ymm), broadcasts the 6 values of
//! the A column and issues 12 FMAs: 12 + 2 + 1 of the 16 ymm registers. The k
//! loop is not unrolled: unrolled by 4, the kernel alone ran at 100-104
//! GFLOP/s at k=64 on one Zen 4 core, rolled at 112-116 (peak 117).

use std::arch::x86_64::*;

use super::blocking::{MR, NR};
use super::tile::{prefetch_c_tile, store_vector, AOperand, TileUpdate};
use crate::kernels::simd;

/// Sum over p < kc of A[r, p] * B[p, 0..16], with A[r, p] at
/// `rows[r] + p * a_step` and B row p at `b + p * b_step`. A macro rather than
/// a function so that each use is specialised on its (constant) steps.
macro_rules! k_loop {
    ($kc:expr, $rows:expr, $a_step:expr, $b:expr, $b_step:expr) => {{
        let (kc, a_step, b_step) = ($kc, $a_step, $b_step);
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let (mut rows, mut b): ([*const f32; MR], *const f32) = ($rows, $b);

        macro_rules! step {
            ($p:expr) => {{
                let b0 = _mm256_loadu_ps(b.add($p * b_step));
                let b1 = _mm256_loadu_ps(b.add($p * b_step + 8));
                for r in 0..MR {
                    let av = _mm256_broadcast_ss(&*rows[r].add($p * a_step));
                    acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
                }
            }};
        }

        for _ in 0..kc {
            step!(0);
            rows = rows.map(|row| row.add(a_step));
            b = b.add(b_step);
        }
        acc
    }};
}

/// See [`super::tile::MicroKernel`].
///
/// # Safety
/// The CPU must support AVX2 and FMA; the pointers as in [`super::tile::MicroKernel`].
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn kernel_6x16(
    kc: usize,
    a: &AOperand,
    b: *const f32,
    b_step: usize,
    c: *mut f32,
    ldc: usize,
    update: &TileUpdate,
    bias: Option<&[f32; MR]>,
) {
    prefetch_c_tile(c, ldc, NR);
    // The k loop is inlined three times with what is known at compile time,
    // so that the loads become base + constant displacement where possible.
    let acc = if a.consecutive && a.step == MR && b_step == NR {
        // Packed A and packed B: the hot path of large products.
        let base = a.rows[0];
        k_loop!(kc, std::array::from_fn(|r| base.add(r)), MR, b, NR)
    } else if a.consecutive {
        // A transposed view read in place (direct path).
        let base = a.rows[0];
        k_loop!(kc, std::array::from_fn(|r| base.add(r)), a.step, b, b_step)
    } else if a.step == 1 {
        // Row-major A read in place (direct path).
        k_loop!(kc, a.rows, 1, b, b_step)
    } else {
        k_loop!(kc, a.rows, a.step, b, b_step)
    };
    store_tile(acc, c, ldc, update, bias);
}

/// C tile = alpha * acc + beta * C (C unread when beta == 0), + bias, ReLU,
/// for the ROWS x (8 * VECS) part of the tile that `acc` holds.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn store_tile<const ROWS: usize, const VECS: usize>(
    acc: [[__m256; VECS]; ROWS],
    c: *mut f32,
    ldc: usize,
    update: &TileUpdate,
    bias: Option<&[f32; MR]>,
) {
    for (r, acc_row) in acc.iter().enumerate() {
        let row = c.add(r * ldc);
        for (v, &acc_val) in acc_row.iter().enumerate() {
            store_vector!(
                acc_val,
                row.add(8 * v),
                update,
                bias.map(|b| b[r]),
                _mm256_set1_ps,
                _mm256_mul_ps,
                _mm256_fmadd_ps,
                _mm256_loadu_ps,
                _mm256_add_ps,
                _mm256_max_ps,
                _mm256_setzero_ps,
                _mm256_storeu_ps
            );
        }
    }
}

/// The kernel for edge tiles: only the first ROWS rows and 8 * VECS columns
/// of the MR x NR tile are computed (and written), so a 4-row or 8-column
/// edge costs 4/6 or 1/2 of a full tile. The same operations per element as
/// `kernel_6x16`, hence the same bits.
///
/// # Safety
/// As for [`kernel_6x16`].
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn kernel_edge<const ROWS: usize, const VECS: usize>(
    kc: usize,
    a: &AOperand,
    b: *const f32,
    b_step: usize,
    c: *mut f32,
    ldc: usize,
    update: &TileUpdate,
    bias: Option<&[f32; MR]>,
) {
    let mut acc = [[_mm256_setzero_ps(); VECS]; ROWS];
    let (mut rows, mut b) = (a.rows, b);
    for _ in 0..kc {
        let bv: [__m256; VECS] = std::array::from_fn(|v| _mm256_loadu_ps(b.add(8 * v)));
        for (r, acc_row) in acc.iter_mut().enumerate() {
            let av = _mm256_broadcast_ss(&*rows[r]);
            for (acc_val, &b_val) in acc_row.iter_mut().zip(&bv) {
                *acc_val = _mm256_fmadd_ps(av, b_val, *acc_val);
            }
        }
        rows = rows.map(|row| row.wrapping_add(a.step));
        b = b.add(b_step);
    }
    store_tile(acc, c, ldc, update, bias);
}

/// Packs one full NR-wide strip of a B whose columns are contiguous (a
/// transposed view): column `jj` of the strip is `src[jj * col_stride ..][..kc]`,
/// and `strip[p * NR + jj]` receives its element `p`. Works on 8 x 8 blocks
/// transposed in registers; the scalar loop would cost a load and a store per
/// float.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn pack_b_transposed_strip(
    src: &[f32],
    col_stride: usize,
    kc: usize,
    strip: &mut [f32],
) {
    assert!(kc == 0 || src.len() >= (NR - 1) * col_stride + kc);
    assert_eq!(strip.len(), kc * NR);
    let (src, dst) = (src.as_ptr(), strip.as_mut_ptr());
    let full = kc - kc % 8;
    for p in (0..full).step_by(8) {
        for half in 0..2 {
            let col = |jj: usize| _mm256_loadu_ps(src.add((half * 8 + jj) * col_stride + p));
            let rows = simd::transpose_8x8([
                col(0),
                col(1),
                col(2),
                col(3),
                col(4),
                col(5),
                col(6),
                col(7),
            ]);
            for (q, row) in rows.iter().enumerate() {
                _mm256_storeu_ps(dst.add((p + q) * NR + half * 8), *row);
            }
        }
    }
    for p in full..kc {
        for jj in 0..NR {
            *dst.add(p * NR + jj) = *src.add(jj * col_stride + p);
        }
    }
}
