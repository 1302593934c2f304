//! The unpacked path for small or thin products with a plain B matrix: the
//! micro-kernel reads A's rows and B's rows where they are, over the whole k
//! at once. Only strips that cannot be read in place are packed: a B strip
//! narrower than NR (the right edge) or with strided columns (a transposed B).
//! Rows of A past the bottom edge point at the last valid row; the tile code
//! drops their results.
//!
//! Each C tile is reduced over the full k by one task, so the result does not
//! depend on the thread count or the task split.

use super::blocking::{DIRECT_PARALLEL_MIN_FLOPS, DIRECT_TASK_FLOPS, MR, NR};
use super::driver::{with_buffer, CPtr, EDGE_BUF};
use super::tile::{compute_tile, AOperand, Kernels, TileUpdate};
use super::{Epilogue, MatRef, PackB};
use crate::threading;

/// Whether `direct` is the faster path for this shape. Few rows with a long
/// k go packed: walking B in place down thousands of rows, one page each,
/// thrashes the TLB (measured 2x slower than packing at m=24, k=n=4096).
pub fn suits(m: usize, n: usize, k: usize) -> bool {
    use super::blocking::{DIRECT_MAX_FLOPS, DIRECT_MAX_M, DIRECT_MAX_N, KC};
    super::driver::flops(m, n, k) < DIRECT_MAX_FLOPS
        || (m <= DIRECT_MAX_M && k <= KC)
        || n <= DIRECT_MAX_N
}

/// The largest B (in floats) that goes through the tiles row strip by row
/// strip: 16 KiB, half of L1, so that it stays there between row strips.
const ROW_OUTER_MAX_B: usize = 4096;

/// C = epilogue(alpha * A * B + beta * C) without packing; arguments validated
/// by `gemm_ex`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    alpha: f32,
    a: MatRef,
    b: MatRef,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
    epilogue: &Epilogue,
    parallel: bool,
    kernels: Kernels,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let c = CPtr(c.as_mut_ptr());
    let update = TileUpdate {
        alpha,
        beta,
        relu: epilogue.relu,
    };
    let row_strips = m.div_ceil(MR);
    let col_strips = n.div_ceil(NR);
    let task = |rows: std::ops::Range<usize>, cols: std::ops::Range<usize>| {
        compute_tiles(
            a,
            b,
            c,
            ldc,
            &update,
            epilogue.row_bias,
            kernels,
            rows,
            cols,
        );
    };
    let flops = super::driver::flops(m, n, k);
    if !parallel || flops < DIRECT_PARALLEL_MIN_FLOPS || threading::num_threads() == 1 {
        task(0..row_strips, 0..col_strips);
        return;
    }
    // Enough tasks for the threads to balance (but none under
    // DIRECT_TASK_FLOPS), cut along the longer side. `for_each_task` lets the
    // calling thread take the first task instead of sleeping in `install`.
    let wanted = (4 * threading::num_threads())
        .min(flops / DIRECT_TASK_FLOPS)
        .max(2);
    let row_runs = wanted.min(row_strips).max(1);
    let col_runs = wanted.div_ceil(row_runs).min(col_strips).max(1);
    let rows_per = row_strips.div_ceil(row_runs);
    let cols_per = col_strips.div_ceil(col_runs);
    let (row_tasks, col_tasks) = (row_strips.div_ceil(rows_per), col_strips.div_ceil(cols_per));
    threading::for_each_task(row_tasks * col_tasks, &|t| {
        let (rt, ct) = (t % row_tasks, t / row_tasks);
        let rows = rt * rows_per..((rt + 1) * rows_per).min(row_strips);
        let cols = ct * cols_per..((ct + 1) * cols_per).min(col_strips);
        task(rows, cols);
    });
}

/// Computes the tiles of row strips `rows` x column strips `cols`.
#[allow(clippy::too_many_arguments)]
fn compute_tiles(
    a: MatRef,
    b: MatRef,
    c: CPtr,
    ldc: usize,
    update: &TileUpdate,
    bias: Option<&[f32]>,
    kernels: Kernels,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    // The A operand of row strip `t`, its first row and its height.
    let a_strip = |t: usize| {
        let (i, mr) = (t * MR, MR.min(m - t * MR));
        let operand = AOperand {
            rows: std::array::from_fn(|r| a.data[(i + r.min(mr - 1)) * a.row_stride..].as_ptr()),
            step: a.col_stride,
            consecutive: a.row_stride == 1 && mr == MR,
        };
        (operand, i, mr)
    };
    let tile = |(a_rows, i, mr): &(AOperand, usize, usize), s: usize, b_ptr: *const f32, b_step| {
        let j = s * NR;
        // SAFETY: `gemm_ex` checked that A's view lies in its data and C's
        // extent; every A row pointer is a valid row, and B rows read in
        // place hold NR columns (nr == NR) for all k rows (the view of B was
        // checked by `as_matref`'s owner, `MatRef`).
        unsafe {
            compute_tile(
                &kernels,
                k,
                a_rows,
                b_ptr,
                b_step,
                c.0.add(i * ldc + j),
                ldc,
                *mr,
                NR.min(n - j),
                update,
                bias.map(|v| &v[*i..*i + *mr]),
            );
        }
    };
    // Two neighbouring full strips read in place, `b0` the left one's first
    // row: one call of the pair kernel for a full-height row strip, else
    // two tiles (the same bits either way).
    let pair = |strip: &(AOperand, usize, usize), s: usize, b0: *const f32, b_step: usize| {
        let (a_rows, i, mr) = strip;
        match kernels.pair {
            Some(kernel) if *mr == MR => {
                let bias =
                    bias.map(|v| <&[f32; MR]>::try_from(&v[*i..*i + MR]).expect("MR values"));
                // SAFETY: as in `tile`, for the two full strips s and s + 1
                // (columns s*NR .. s*NR + 2NR of C and of B's rows).
                unsafe {
                    let c_tile = c.0.add(i * ldc + s * NR);
                    kernel(k, a_rows, b0, b0.add(NR), b_step, c_tile, ldc, update, bias);
                }
            }
            _ => {
                tile(strip, s, b0, b_step);
                tile(strip, s + 1, b0.wrapping_add(NR), b_step);
            }
        }
    };
    let pairs = kernels.pair.is_some() && b.col_stride == 1;
    with_buffer(&EDGE_BUF, k * NR, |packed_strip| {
        if b.col_stride == 1 && k * n <= ROW_OUTER_MAX_B {
            // B's rows are contiguous and B fits in L1: every full strip is
            // read in place and the narrow right-edge strip (if any) is packed
            // once. Rows of tiles go outside, so that A's 6 rows and the C
            // tile stay in L1 while all of B passes, and the A operand is
            // set up once per row of tiles.
            let edge = cols.clone().find(|&s| NR.min(n - s * NR) < NR);
            if let Some(s) = edge {
                b.pack(0, k, s * NR, n - s * NR, packed_strip);
            }
            for t in rows {
                let strip = a_strip(t);
                let mut s = cols.start;
                while s < cols.end {
                    let in_place = b.data[s * NR..].as_ptr();
                    if Some(s) == edge {
                        tile(&strip, s, packed_strip.as_ptr(), NR);
                    } else if pairs && s + 1 < cols.end && Some(s + 1) != edge {
                        pair(&strip, s, in_place, b.row_stride);
                        s += 1;
                    } else {
                        tile(&strip, s, in_place, b.row_stride);
                    }
                    s += 1;
                }
            }
            return;
        }
        // Otherwise one B strip (or a pair) at a time (read in place where it
        // can be), passed by all the row strips while it stays in L1.
        let mut s = cols.start;
        while s < cols.end {
            let j = s * NR;
            let nr = NR.min(n - j);
            if pairs && s + 1 < cols.end && n - j >= 2 * NR {
                for t in rows.clone() {
                    pair(&a_strip(t), s, b.data[j..].as_ptr(), b.row_stride);
                }
                s += 2;
                continue;
            }
            let (b_ptr, b_step) = if nr == NR && b.col_stride == 1 {
                (b.data[j..].as_ptr(), b.row_stride)
            } else {
                b.pack(0, k, j, nr, packed_strip);
                (packed_strip.as_ptr(), NR)
            };
            for t in rows.clone() {
                tile(&a_strip(t), s, b_ptr, b_step);
            }
            s += 1;
        }
    });
}
