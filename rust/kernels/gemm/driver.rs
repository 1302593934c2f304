//! The blocked loops around the micro-kernel, the threading and the packing
//! buffers.
//!
//! For each NC panel of columns and each K block (in increasing k order):
//! pack that KC x NC block of B and the matching KC-deep block of A (at most
//! MB rows at a time), in parallel over strips, then compute the C tiles as
//! many small tasks of (MC rows x a run of strips). A task owns its C tiles for
//! this K block; the K blocks run one after the other, so every C element is
//! reduced in the same order whatever the number of threads or the task split.
//! Small tasks over shared packed operands keep the threads balanced at the
//! join that ends each K block.

use std::cell::Cell;

use rayon::prelude::*;

use super::blocking::{
    block_size, split, COLUMN_TASK_MIN_FLOPS, GEMM_PARALLEL_MIN_FLOPS, KC, MB, MC, MR, NC, NR,
};
use super::pack::{pack_a, PackB};
use super::tile::{compute_tile, AOperand, Kernels, TileUpdate};
use super::{Epilogue, MatRef};
use crate::threading;

/// K blocks are multiples of this (except the last). Chosen when the k loop
/// was unrolled by 4 (it no longer is); kept so that the K block boundaries,
/// and with them the results' bits, stay as they were.
const K_UNIT: usize = 8;

/// The C pointer shared by the tasks, which write disjoint tiles.
#[derive(Clone, Copy)]
pub(super) struct CPtr(pub(super) *mut f32);
// SAFETY: tasks write disjoint tiles of C and the caller holds `&mut` to all of C
// for the duration of the call.
unsafe impl Send for CPtr {}

impl CPtr {
    /// The pointer; a method so that closures capture the `Sync` wrapper.
    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}
unsafe impl Sync for CPtr {}

thread_local! {
    /// Packed edge strips of the direct path.
    pub(super) static EDGE_BUF: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    /// Packed A block of the calls made from this thread (reused across calls).
    static A_BUF: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    /// Packed B panel of the calls made from this thread.
    static B_BUF: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with a 64-byte-aligned slice of `len` floats taken from `slot`.
/// The vector is taken out of the thread-local and put back afterwards, so a
/// re-entrant use (rayon can run another job on this thread while we wait)
/// gets a fresh buffer instead of a conflict.
pub(super) fn with_buffer<R>(
    slot: &'static std::thread::LocalKey<Cell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    const ALIGN_FLOATS: usize = 16;
    let mut buf = slot.take();
    if buf.len() < len + ALIGN_FLOATS {
        buf = vec![0.0; len + ALIGN_FLOATS];
    }
    let offset = buf.as_ptr().align_offset(64).min(ALIGN_FLOATS);
    let result = f(&mut buf[offset..offset + len]);
    slot.set(buf);
    result
}

/// C = beta * C then the epilogue, for `alpha == 0` or `k == 0` (A and B unread).
pub fn scale_only(beta: f32, c: &mut [f32], m: usize, n: usize, ldc: usize, epilogue: &Epilogue) {
    for i in 0..m {
        let bias = epilogue.row_bias.map_or(0.0, |v| v[i]);
        for v in &mut c[i * ldc..i * ldc + n] {
            let mut x = if beta == 0.0 { 0.0 } else { beta * *v };
            x += bias;
            if epilogue.relu && x < 0.0 {
                x = 0.0;
            }
            *v = x;
        }
    }
}

/// What stays fixed while the tiles of one block of rows and one K block of
/// one panel are computed.
struct Block<'a> {
    packed_a: &'a [f32],
    packed_b: &'a [f32],
    c: CPtr,
    ldc: usize,
    /// First row of the packed A block and its height.
    i0: usize,
    mb: usize,
    /// First column of the panel and its width.
    j0: usize,
    nc: usize,
    kc: usize,
    update: TileUpdate,
    bias: Option<&'a [f32]>,
    kernels: Kernels,
}

impl Block<'_> {
    /// Computes the C tiles of A strips `a_strips` x B strips `b_strips`
    /// (strip indices relative to the packed blocks). With a pair kernel,
    /// two full-width B strips at a time (same bits as one at a time).
    fn compute(&self, a_strips: std::ops::Range<usize>, b_strips: std::ops::Range<usize>) {
        let (kc, ldc) = (self.kc, self.ldc);
        let strip_len = kc * NR;
        let end = self.j0 + self.nc;
        let mut s = b_strips.start;
        while s < b_strips.end {
            let j = self.j0 + s * NR;
            let b_strip = self.packed_b[s * strip_len..(s + 1) * strip_len].as_ptr();
            let pair = self
                .kernels
                .pair
                .filter(|_| s + 1 < b_strips.end && j + 2 * NR <= end);
            for t in a_strips.clone() {
                let a_strip = AOperand::packed(&self.packed_a[t * kc * MR..(t + 1) * kc * MR]);
                let i = self.i0 + t * MR;
                let mr = MR.min(self.i0 + self.mb - i);
                let bias = self.bias.map(|v| &v[i..i + mr]);
                let c = self.c.0.wrapping_add(i * ldc + j);
                // SAFETY: the strips hold kc*MR / kc*NR floats (a pair: two
                // strips, the second right after the first); the tiles
                // (i .. i+mr, j .. j+nr or j+2NR) lie inside C, whose extent
                // `gemm_ex` checked, and no other task writes them.
                unsafe {
                    match pair {
                        Some(kernel) if mr == MR => {
                            let bias = bias.map(|v| <&[f32; MR]>::try_from(v).expect("MR values"));
                            let b_next = b_strip.add(strip_len);
                            kernel(
                                kc,
                                &a_strip,
                                b_strip,
                                b_next,
                                NR,
                                c,
                                ldc,
                                &self.update,
                                bias,
                            );
                        }
                        _ => {
                            let tiles = if pair.is_some() { 2 } else { 1 };
                            for q in 0..tiles {
                                let jq = j + q * NR;
                                compute_tile(
                                    &self.kernels,
                                    kc,
                                    &a_strip,
                                    b_strip.add(q * strip_len),
                                    NR,
                                    c.add(q * NR),
                                    ldc,
                                    mr,
                                    NR.min(end - jq),
                                    &self.update,
                                    bias,
                                );
                            }
                        }
                    }
                }
            }
            s += if pair.is_some() { 2 } else { 1 };
        }
    }

    /// All tiles of the block: on this thread, MC rows at a time (the MC x KC
    /// part of packed A stays in L2 while all B strips pass), or on the pool
    /// as small tasks; consecutive tasks share their A rows.
    fn compute_all(&self, parallel: bool) {
        let a_strips = self.mb.div_ceil(MR);
        let b_strips = self.nc.div_ceil(NR);
        let strips_per_mc = MC / MR;
        if !parallel {
            for first in (0..a_strips).step_by(strips_per_mc) {
                self.compute(first..(first + strips_per_mc).min(a_strips), 0..b_strips);
            }
            return;
        }
        let row_tasks = a_strips.div_ceil(strips_per_mc);
        let wanted = 32 * rayon::current_num_threads();
        let b_strips_per_task = b_strips.div_ceil(wanted.div_ceil(row_tasks)).max(1);
        let col_tasks = b_strips.div_ceil(b_strips_per_task);
        (0..row_tasks * col_tasks).into_par_iter().for_each(|task| {
            let (rt, ct) = (task / col_tasks, task % col_tasks);
            let rows = rt * strips_per_mc..((rt + 1) * strips_per_mc).min(a_strips);
            let cols = ct * b_strips_per_task..((ct + 1) * b_strips_per_task).min(b_strips);
            self.compute(rows, cols);
        });
    }
}

/// Whether a product is big enough for the pool (always false on one thread).
/// Rayon wake-ups cost microseconds, a 64^3 product takes about 5 us on one
/// core, hence a higher bar than the crate-wide `PARALLEL_MIN_FLOPS`.
pub(super) fn worth_parallel(m: usize, n: usize, k: usize) -> bool {
    flops(m, n, k) >= GEMM_PARALLEL_MIN_FLOPS && threading::num_threads() > 1
}

pub(super) fn flops(m: usize, n: usize, k: usize) -> usize {
    m.saturating_mul(n).saturating_mul(k).saturating_mul(2)
}

/// The packed blocked product; `gemm_ex` has validated the arguments.
#[allow(clippy::too_many_arguments)]
pub fn run<B: PackB + ?Sized>(
    alpha: f32,
    a: MatRef,
    b: &B,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
    epilogue: &Epilogue,
    parallel: bool,
    kernels: Kernels,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols());
    let parallel = parallel && worth_parallel(m, n, k);
    let c = CPtr(c.as_mut_ptr());
    if parallel && by_column_tasks(m, n, k) {
        run_column_tasks(alpha, a, b, beta, c, ldc, epilogue, kernels);
        return;
    }
    // SAFETY: `c` addresses the whole C that `gemm_ex` checked, held `&mut` by the caller.
    unsafe { run_blocked(alpha, a, b, beta, c, ldc, epilogue, parallel, kernels) }
}

/// When a parallel product runs as one task per thread over its own columns
/// (`run_column_tasks`): one fork-join per call instead of three per K block
/// and no packed block shared between cores, at the price of every thread
/// packing all of A. That price is small when each task has many columns
/// (each packed A element then feeds >= 256 columns: under 5 % of the task),
/// and worth paying anyway for products small enough (up to a 256^3 one) that
/// the joins of the shared path cost more. Measured on 2 threads (GFLOP/s,
/// shared path -> column tasks, numpy in brackets): n=128 112 -> 131 (146),
/// n=256 160-167 -> 173 (187), n=512 187 -> 208 (205), n=1024 203-208 -> 205-210 (205).
fn by_column_tasks(m: usize, n: usize, k: usize) -> bool {
    const SMALL_FLOPS: usize = 2 * 256 * 256 * 256;
    const MIN_COLUMNS_PER_TASK: usize = 256;
    let threads = threading::num_threads();
    let small = flops(m, n, k) <= SMALL_FLOPS && n >= 2 * NR * threads;
    small || n >= MIN_COLUMNS_PER_TASK * threads
}

/// Columns `j0 .. j0 + nc` of a `PackB`, as a `PackB` of their own.
struct ColumnRange<'a, B: ?Sized> {
    b: &'a B,
    j0: usize,
    nc: usize,
}

impl<B: PackB + ?Sized> PackB for ColumnRange<'_, B> {
    fn rows(&self) -> usize {
        self.b.rows()
    }

    fn cols(&self) -> usize {
        self.nc
    }

    fn pack(&self, k0: usize, kc: usize, j0: usize, nc: usize, out: &mut [f32]) {
        self.b.pack(k0, kc, self.j0 + j0, nc, out);
    }
}

/// One task per thread, each computing whole columns of C (a run of NR-wide
/// strips) with the serial blocked loop: every C tile sees the same K blocks
/// in the same order as in the serial product, so the bits do not depend on
/// the split.
#[allow(clippy::too_many_arguments)]
fn run_column_tasks<B: PackB + ?Sized>(
    alpha: f32,
    a: MatRef,
    b: &B,
    beta: f32,
    c: CPtr,
    ldc: usize,
    epilogue: &Epilogue,
    kernels: Kernels,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols());
    // No more tasks than there is work for: on many threads a small product
    // (a LeNet layer's) would otherwise wake every worker for a few
    // microseconds of work each. The split does not change the bits.
    let tasks = threading::num_threads().min((flops(m, n, k) / COLUMN_TASK_MIN_FLOPS).max(2));
    let strips_per_task = n.div_ceil(NR).div_ceil(tasks);
    threading::for_each_task(tasks, &|t| {
        let j0 = t * strips_per_task * NR;
        if j0 >= n {
            return;
        }
        let nc = (strips_per_task * NR).min(n - j0);
        let columns = ColumnRange { b, j0, nc };
        // SAFETY: this task's columns j0 .. j0 + nc of C lie inside C and
        // no other task touches them.
        unsafe {
            run_blocked(
                alpha,
                a,
                &columns,
                beta,
                CPtr(c.get().add(j0)),
                ldc,
                epilogue,
                false,
                kernels,
            )
        }
    });
}

/// The blocked loops over C at `c` (row stride `ldc`, `a.rows` x `b.cols()`).
///
/// # Safety
/// `c` must address that whole block, and nothing else may access it during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn run_blocked<B: PackB + ?Sized>(
    alpha: f32,
    a: MatRef,
    b: &B,
    beta: f32,
    c: CPtr,
    ldc: usize,
    epilogue: &Epilogue,
    parallel: bool,
    kernels: Kernels,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols());
    let kc_max = block_size(k, KC, K_UNIT);
    let b_len = block_size(n, NC, NR).next_multiple_of(NR) * kc_max;
    let a_len = block_size(m, MB, MR).next_multiple_of(MR) * kc_max;
    let last_k0 = split(k, KC, K_UNIT).last().map_or(0, |(k0, _)| k0);

    let work = |packed_a_buf: &mut [f32], packed_b_buf: &mut [f32]| {
        for (j0, nc) in split(n, NC, NR) {
            for (k0, kc) in split(k, KC, K_UNIT) {
                let packed_b = &mut packed_b_buf[..nc.div_ceil(NR) * kc * NR];
                let last = k0 == last_k0;
                for (i0, mb) in split(m, MB, MR) {
                    let packed_a = &mut packed_a_buf[..mb.div_ceil(MR) * kc * MR];
                    let pack_a_block =
                        |out: &mut [f32]| pack_a_rows(&a, i0, mb, k0, kc, out, parallel);
                    let pack_b_block =
                        |out: &mut [f32]| pack_b_panel(b, k0, kc, j0, nc, out, parallel);
                    match (i0 == 0, parallel) {
                        (true, true) => {
                            rayon::join(|| pack_a_block(packed_a), || pack_b_block(packed_b));
                        }
                        (true, false) => {
                            pack_a_block(packed_a);
                            pack_b_block(packed_b);
                        }
                        (false, _) => pack_a_block(packed_a),
                    }
                    let block = Block {
                        packed_a,
                        packed_b,
                        c,
                        ldc,
                        i0,
                        mb,
                        j0,
                        nc,
                        kc,
                        update: TileUpdate {
                            alpha,
                            beta: if k0 == 0 { beta } else { 1.0 },
                            relu: last && epilogue.relu,
                        },
                        bias: if last { epilogue.row_bias } else { None },
                        kernels,
                    };
                    block.compute_all(parallel);
                }
            }
        }
    };
    with_buffer(&B_BUF, b_len, |packed_b_buf| {
        with_buffer(&A_BUF, a_len, |packed_a_buf| {
            if parallel {
                threading::install(|| work(packed_a_buf, packed_b_buf));
            } else {
                work(packed_a_buf, packed_b_buf);
            }
        })
    });
}

/// Packs B[k0 .. k0+kc, j0 .. j0+nc] into `out`, split over runs of strips when parallel.
fn pack_b_panel<B: PackB + ?Sized>(
    b: &B,
    k0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    out: &mut [f32],
    parallel: bool,
) {
    let strips = nc.div_ceil(NR);
    if !parallel || strips < 2 {
        b.pack(k0, kc, j0, nc, out);
        return;
    }
    let strips_per_task = strips.div_ceil(4 * rayon::current_num_threads()).max(1);
    out.par_chunks_mut(strips_per_task * kc * NR)
        .enumerate()
        .for_each(|(t, chunk)| {
            let first = j0 + t * strips_per_task * NR;
            let width = (strips_per_task * NR).min(j0 + nc - first);
            b.pack(k0, kc, first, width, chunk);
        });
}

/// Packs A[i0 .. i0+mb, k0 .. k0+kc] into `out`, split over runs of strips when parallel.
fn pack_a_rows(
    a: &MatRef,
    i0: usize,
    mb: usize,
    k0: usize,
    kc: usize,
    out: &mut [f32],
    parallel: bool,
) {
    let strips = mb.div_ceil(MR);
    if !parallel || strips < 2 {
        pack_a(a, i0, mb, k0, kc, out);
        return;
    }
    let strips_per_task = strips.div_ceil(4 * rayon::current_num_threads()).max(1);
    out.par_chunks_mut(strips_per_task * kc * MR)
        .enumerate()
        .for_each(|(t, chunk)| {
            let first = i0 + t * strips_per_task * MR;
            let height = (strips_per_task * MR).min(i0 + mb - first);
            pack_a(a, first, height, k0, kc, chunk);
        });
}
