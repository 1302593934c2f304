//! The AVX2+FMA micro-kernel: a 6 x 16 tile of C in 12 ymm accumulators.
//!
//! Each k step loads one 16-float row of the packed B strip (2 ymm), broadcasts
//! the 6 values of the packed A column and issues 12 FMAs: 12 + 2 + 1 of the 16
//! ymm registers. The k loop is unrolled by 4.

use std::arch::x86_64::*;

use super::blocking::{MR, NR};
use super::tile::TileUpdate;

/// See [`super::tile::MicroKernel`].
///
/// # Safety
/// The CPU must support AVX2 and FMA. `a`, `b` readable for `kc * MR` /
/// `kc * NR` floats; `c` readable and writable for MR rows of NR floats with
/// row stride `ldc`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn kernel_6x16(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    update: &TileUpdate,
    bias: Option<&[f32; MR]>,
) {
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    let (mut a, mut b) = (a, b);

    macro_rules! step {
        ($p:expr) => {{
            let b0 = _mm256_loadu_ps(b.add($p * NR));
            let b1 = _mm256_loadu_ps(b.add($p * NR + 8));
            for r in 0..MR {
                let av = _mm256_broadcast_ss(&*a.add($p * MR + r));
                acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
            }
        }};
    }

    for _ in 0..kc / 4 {
        step!(0);
        step!(1);
        step!(2);
        step!(3);
        a = a.add(4 * MR);
        b = b.add(4 * NR);
    }
    for _ in 0..kc % 4 {
        step!(0);
        a = a.add(MR);
        b = b.add(NR);
    }

    let alpha = _mm256_set1_ps(update.alpha);
    let beta = _mm256_set1_ps(update.beta);
    let zero = _mm256_setzero_ps();
    for (r, acc_row) in acc.iter().enumerate() {
        let row = c.add(r * ldc);
        for (half, &acc_val) in acc_row.iter().enumerate() {
            let dst = row.add(8 * half);
            let mut v = _mm256_mul_ps(alpha, acc_val);
            if update.beta != 0.0 {
                v = _mm256_fmadd_ps(beta, _mm256_loadu_ps(dst), v);
            }
            if let Some(bias) = bias {
                v = _mm256_add_ps(v, _mm256_set1_ps(bias[r]));
            }
            if update.relu {
                // max_ps returns its second operand when either is NaN: NaN stays NaN.
                v = _mm256_max_ps(zero, v);
            }
            _mm256_storeu_ps(dst, v);
        }
    }
}
