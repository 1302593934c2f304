//! The portable micro-kernel: plain Rust that the compiler vectorises for any
//! target (SSE2 on baseline x86-64, NEON on aarch64). Taken when AVX2+FMA is
//! missing or the fallback is forced. Same packed layouts, same tile update as
//! the AVX2 kernel; it rounds a*b and the sum separately (no FMA), so the two
//! paths agree within float32 rounding, not bitwise.

use super::blocking::{MR, NR};
use super::tile::TileUpdate;

/// See [`super::tile::MicroKernel`].
///
/// # Safety
/// `a`, `b` readable for `kc * MR` / `kc * NR` floats; `c` readable and
/// writable for MR rows of NR floats with row stride `ldc`.
pub unsafe fn kernel_6x16(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    update: &TileUpdate,
    bias: Option<&[f32; MR]>,
) {
    let a = std::slice::from_raw_parts(a, kc * MR);
    let b = std::slice::from_raw_parts(b, kc * NR);
    let mut acc = [[0.0f32; NR]; MR];
    for (a_col, b_row) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for (acc_row, &a_val) in acc.iter_mut().zip(a_col) {
            for (acc_val, &b_val) in acc_row.iter_mut().zip(b_row) {
                *acc_val += a_val * b_val;
            }
        }
    }
    for (r, acc_row) in acc.iter().enumerate() {
        let c_row = std::slice::from_raw_parts_mut(c.add(r * ldc), NR);
        for (c_val, &acc_val) in c_row.iter_mut().zip(acc_row) {
            let mut v = update.alpha * acc_val;
            if update.beta != 0.0 {
                v += update.beta * *c_val;
            }
            if let Some(bias) = bias {
                v += bias[r];
            }
            // `v < 0` is false for NaN, so NaN propagates like in the AVX2 kernel.
            if update.relu && v < 0.0 {
                v = 0.0;
            }
            *c_val = v;
        }
    }
}
