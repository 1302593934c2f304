//! The portable micro-kernel: plain Rust that the compiler vectorises for any
//! target (SSE2 on baseline x86-64, NEON on aarch64). Taken when AVX2+FMA is
//! missing or the fallback is forced. Same operands, same tile update as the
//! AVX2 kernel; it rounds a*b and the sum separately (no FMA), so the two
//! paths agree within float32 rounding, not bitwise.

use super::blocking::{MR, NR};
use super::tile::{AOperand, TileUpdate};

/// See [`super::tile::MicroKernel`].
///
/// # Safety
/// As for [`super::tile::MicroKernel`].
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
    // Two passes over k, one per 8-column half of the tile: 6 x 8
    // accumulators fit the 16 registers of baseline x86-64 (SSE2) without
    // spilling, which a 6 x 16 tile would not.
    const HALF: usize = NR / 2;
    let mut acc = [[0.0f32; NR]; MR];
    for half in 0..2 {
        let mut part = [[0.0f32; HALF]; MR];
        for p in 0..kc {
            let b_row = &*(b.add(p * b_step + half * HALF) as *const [f32; HALF]);
            let a_col: [f32; MR] = std::array::from_fn(|r| *a.rows[r].add(p * a.step));
            for (part_row, &a_val) in part.iter_mut().zip(&a_col) {
                for (part_val, &b_val) in part_row.iter_mut().zip(b_row) {
                    *part_val += a_val * b_val;
                }
            }
        }
        for (acc_row, part_row) in acc.iter_mut().zip(&part) {
            acc_row[half * HALF..(half + 1) * HALF].copy_from_slice(part_row);
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
