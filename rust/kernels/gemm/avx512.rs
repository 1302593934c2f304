//! The AVX-512 micro-kernel: two neighbouring MR x NR tiles of C (6 x 32) in
//! 12 zmm accumulators.
//!
//! Each k step loads one 16-float row from each of the two B strips (2 zmm),
//! broadcasts the 6 values of the A column and issues 12 FMAs. On CPUs with
//! two 512-bit FMA units (Intel Xeon since Skylake-SP) that is twice the
//! AVX2 kernel's work per instruction; 12 independent accumulators cover the
//! FMA latency (4 cycles x 2 units). On Zen 4, which splits a 512-bit FMA in
//! two, it runs at the AVX2 kernel's rate.
//!
//! Every C element gets the same operations in the same order as in the AVX2
//! kernel (one FMA per k step, then the same update), so both give the same
//! bits: which of them a tile takes never changes a result.

use std::arch::x86_64::*;

use super::blocking::{MR, NR};
use super::tile::{prefetch_c_tile, store_vector, AOperand, TileUpdate};

/// Sum over p < kc of A[r, p] * [B0[p, 0..16], B1[p, 0..16]], with A[r, p] at
/// `rows[r] + p * a_step` and row p of strip i at `bi + p * b_step`. A macro
/// so that each use is specialised on its (constant) steps, as in avx2.rs.
macro_rules! k_loop_pair {
    ($kc:expr, $rows:expr, $a_step:expr, $b0:expr, $b1:expr, $b_step:expr) => {{
        let (kc, a_step, b_step) = ($kc, $a_step, $b_step);
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        let mut rows: [*const f32; MR] = $rows;
        let (mut b0, mut b1): (*const f32, *const f32) = ($b0, $b1);
        for _ in 0..kc {
            let v0 = _mm512_loadu_ps(b0);
            let v1 = _mm512_loadu_ps(b1);
            for r in 0..MR {
                let av = _mm512_set1_ps(*rows[r]);
                acc[r][0] = _mm512_fmadd_ps(av, v0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(av, v1, acc[r][1]);
            }
            rows = rows.map(|row| row.add(a_step));
            b0 = b0.add(b_step);
            b1 = b1.add(b_step);
        }
        acc
    }};
}

/// See [`super::tile::PairKernel`].
///
/// # Safety
/// The CPU must support AVX-512F; the pointers as in [`super::tile::PairKernel`].
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn kernel_6x32(
    kc: usize,
    a: &AOperand,
    b0: *const f32,
    b1: *const f32,
    b_step: usize,
    c: *mut f32,
    ldc: usize,
    update: &TileUpdate,
    bias: Option<&[f32; MR]>,
) {
    prefetch_c_tile(c, ldc, 2 * NR);
    let acc = if a.consecutive && a.step == MR {
        // A packed strip: one pointer, constant displacements.
        let base = a.rows[0];
        k_loop_pair!(kc, std::array::from_fn(|r| base.add(r)), MR, b0, b1, b_step)
    } else if a.step == 1 {
        // Row-major A read in place (direct path).
        k_loop_pair!(kc, a.rows, 1, b0, b1, b_step)
    } else {
        k_loop_pair!(kc, a.rows, a.step, b0, b1, b_step)
    };
    for (r, acc_row) in acc.iter().enumerate() {
        let row = c.add(r * ldc);
        for (v, &acc_val) in acc_row.iter().enumerate() {
            store_vector!(
                acc_val,
                row.add(16 * v),
                update,
                bias.map(|b| b[r]),
                _mm512_set1_ps,
                _mm512_mul_ps,
                _mm512_fmadd_ps,
                _mm512_loadu_ps,
                _mm512_add_ps,
                _mm512_max_ps,
                _mm512_setzero_ps,
                _mm512_storeu_ps
            );
        }
    }
}
