//! The blocked loops around the micro-kernel, the threading and the packing
//! buffers.
//!
//! For each NC panel of columns and each K block (in increasing k order):
//! pack that KC x NC block of B (in parallel over NR strips), then compute the
//! C tiles as tasks of (MC rows x a run of strips), each packing its own block
//! of A. A task owns its C tiles for this K block; the K blocks run one after
//! the other, so every C element is reduced in the same order whatever the
//! number of threads or the task split.

use std::cell::Cell;

use rayon::prelude::*;

use super::blocking::{block_size, split, KC, MC, MR, NC, NR};
use super::pack::{pack_a, PackB};
use super::tile::{compute_tile, MicroKernel, TileUpdate};
use super::{Epilogue, MatRef};
use crate::threading::{self, PARALLEL_MIN_FLOPS};

/// K blocks are multiples of this (except the last) so the unrolled k loop has no tail.
const K_UNIT: usize = 8;

/// The C pointer shared by the tasks, which write disjoint tiles.
#[derive(Clone, Copy)]
struct CPtr(*mut f32);
// SAFETY: tasks write disjoint tiles of C and the caller holds `&mut` to all of C
// for the duration of the call.
unsafe impl Send for CPtr {}
unsafe impl Sync for CPtr {}

thread_local! {
    /// Packed A block of the tasks that run on this thread (reused across calls).
    static A_BUF: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    /// Packed B panel of the calls made from this thread.
    static B_BUF: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with a 64-byte-aligned slice of `len` floats taken from `slot`.
/// The vector is taken out of the thread-local and put back afterwards, so a
/// re-entrant use (rayon can run another job on this thread while we wait)
/// gets a fresh buffer instead of a conflict.
fn with_buffer<R>(
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

/// What stays fixed during one K block of one panel.
struct Block<'a> {
    a: MatRef<'a>,
    packed_b: &'a [f32],
    c: CPtr,
    ldc: usize,
    /// First column of the panel and its width.
    j0: usize,
    nc: usize,
    k0: usize,
    kc: usize,
    update: TileUpdate,
    bias: Option<&'a [f32]>,
    kernel: MicroKernel,
}

impl Block<'_> {
    /// Packs A[i0 .. i0+mc, this K block] and computes the C tiles of rows
    /// `i0 .. i0+mc` and strips `strips` of the panel.
    fn compute(&self, i0: usize, mc: usize, strips: std::ops::Range<usize>) {
        let (kc, ldc) = (self.kc, self.ldc);
        with_buffer(&A_BUF, mc.div_ceil(MR) * kc * MR, |packed_a| {
            pack_a(&self.a, i0, mc, self.k0, kc, packed_a);
            for s in strips {
                let j = self.j0 + s * NR;
                let nr = NR.min(self.j0 + self.nc - j);
                let b_strip = self.packed_b[s * kc * NR..(s + 1) * kc * NR].as_ptr();
                for (t, a_strip) in packed_a.chunks_exact(kc * MR).enumerate() {
                    let i = i0 + t * MR;
                    let mr = MR.min(i0 + mc - i);
                    // SAFETY: the strips hold kc*MR / kc*NR floats; the tile
                    // (i .. i+mr, j .. j+nr) lies inside C, whose extent
                    // `gemm_ex` checked, and no other task writes it.
                    unsafe {
                        compute_tile(
                            self.kernel,
                            kc,
                            a_strip.as_ptr(),
                            b_strip,
                            self.c.0.add(i * ldc + j),
                            ldc,
                            mr,
                            nr,
                            &self.update,
                            self.bias.map(|v| &v[i..i + mr]),
                        );
                    }
                }
            }
        });
    }
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
    kernel: MicroKernel,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols());
    let flops = m.saturating_mul(n).saturating_mul(k).saturating_mul(2);
    let parallel = parallel && flops >= PARALLEL_MIN_FLOPS && threading::num_threads() > 1;
    let c = CPtr(c.as_mut_ptr());
    let panel_len = block_size(n, NC, NR).next_multiple_of(NR) * block_size(k, KC, K_UNIT);

    let work = |packed_b_buf: &mut [f32]| {
        let last_k0 = split(k, KC, K_UNIT).last().map_or(0, |(k0, _)| k0);
        for (j0, nc) in split(n, NC, NR) {
            for (k0, kc) in split(k, KC, K_UNIT) {
                let strips = nc.div_ceil(NR);
                let packed_b = &mut packed_b_buf[..strips * kc * NR];
                pack_b_panel(b, k0, kc, j0, nc, packed_b, parallel);
                let last = k0 == last_k0;
                let block = Block {
                    a,
                    packed_b,
                    c,
                    ldc,
                    j0,
                    nc,
                    k0,
                    kc,
                    update: TileUpdate {
                        alpha,
                        beta: if k0 == 0 { beta } else { 1.0 },
                        relu: last && epilogue.relu,
                    },
                    bias: if last { epilogue.row_bias } else { None },
                    kernel,
                };
                if parallel {
                    compute_parallel(&block, m, strips);
                } else {
                    for (i0, mc) in split(m, MC, MR) {
                        block.compute(i0, mc, 0..strips);
                    }
                }
            }
        }
    };
    with_buffer(&B_BUF, panel_len, |buf| {
        if parallel {
            threading::install(|| work(buf));
        } else {
            work(buf);
        }
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
    let strips_per_task = strips.div_ceil(2 * rayon::current_num_threads()).max(1);
    out.par_chunks_mut(strips_per_task * kc * NR)
        .enumerate()
        .for_each(|(t, chunk)| {
            let first = j0 + t * strips_per_task * NR;
            let width = (strips_per_task * NR).min(j0 + nc - first);
            b.pack(k0, kc, first, width, chunk);
        });
}

/// Spreads the tiles of one K block over the pool: MC row blocks times runs of
/// strips, enough tasks for the threads to balance.
fn compute_parallel(block: &Block, m: usize, strips: usize) {
    let row_blocks: Vec<(usize, usize)> = split(m, MC, MR).collect();
    let wanted_tasks = 4 * rayon::current_num_threads();
    let strip_runs = wanted_tasks.div_ceil(row_blocks.len()).clamp(1, strips);
    let strips_per_task = strips.div_ceil(strip_runs);
    let tasks = row_blocks.len() * strips.div_ceil(strips_per_task);
    (0..tasks).into_par_iter().for_each(|t| {
        let (i0, mc) = row_blocks[t % row_blocks.len()];
        let s0 = (t / row_blocks.len()) * strips_per_task;
        block.compute(i0, mc, s0..(s0 + strips_per_task).min(strips));
    });
}
