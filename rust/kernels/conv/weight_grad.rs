//! conv2d grad weight and grad bias: dW_g = sum over images of dY_g * cols^T,
//! cols^T packed straight from x, the batch reduction split into fixed chunks.

use std::ops::Range;

use rayon::prelude::*;

use super::implicit::{Im2colImages, Im2colTransposed};
use super::params::Conv2dParams;
use super::Plan;
use crate::kernels::gemm::{Epilogue, MatRef};
use crate::kernels::simd;
use crate::threading;

/// At most this many floats of private grad-weight partials (4 MiB): layers
/// with large weights get fewer batch chunks, each with a multithreaded GEMM
/// (their per-image GEMMs are large enough to split well, and big partials
/// would cost more memory traffic than they save).
const PARTIALS_BUDGET: usize = 1 << 20;
/// Images whose output planes are smaller than this are concatenated along the
/// GEMM's reduction, so that each GEMM call reduces over at least this many
/// pixels: every GEMM reads and writes all of dW once per K block, so a
/// reduction of one full K block (the GEMM's KC) halves that traffic against
/// 256 pixels (VGG 256->256 at 8x8, dW 2.4 MB: grad weight 159 -> 175
/// GFLOP/s on 2 threads; 1024 gained nothing more).
const MIN_REDUCTION: usize = 512;

/// dw (shape `p.w_shape()`) and optionally db (shape `[c_out]`) given x and dy.
///
/// The batch is split into chunks fixed by the problem size alone; each chunk
/// sums its images into a private partial in image order, and the partials are
/// added in chunk order, so the result is the same for any thread count.
pub fn conv2d_backward_weight(
    p: &Conv2dParams,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) {
    if super::winograd::suits_weight_grad(p) {
        super::winograd::weight_grad(p, x, dy, dw);
        if let Some(db) = db {
            conv2d_backward_bias(p, dy, db);
        }
        return;
    }
    if super::direct::suits(p) {
        return super::direct::weight_grad(p, x, dy, dw, db, simd::use_avx2_fma());
    }
    gemm_weight_grad(p, x, dy, dw, db);
}

/// The GEMM path of [`conv2d_backward_weight`].
pub(super) fn gemm_weight_grad(
    p: &Conv2dParams,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) {
    let part_len = dw.len() + p.c_out;
    let n_chunks = batch_chunks(p);
    let chunk_images = |c: usize| chunk_range(p.batch, n_chunks, c);
    let plan = Plan::choose(n_chunks, 2 * p.macs());
    let images_per_gemm = MIN_REDUCTION.div_ceil(p.out_plane()).min(p.batch);
    let dy_len = if images_per_gemm > 1 {
        p.c_out_per_group() * images_per_gemm * p.out_plane()
    } else {
        0
    };
    let scratch = || vec![0.0; dy_len];

    let mut partials = vec![0.0; n_chunks * part_len];
    let chunk = |dy_buf: &mut Vec<f32>, (c, part): (usize, &mut [f32])| {
        weight_grad_chunk(
            p,
            plan,
            x,
            dy,
            chunk_images(c),
            images_per_gemm,
            part,
            dy_buf,
        );
    };
    if plan == Plan::OverImages {
        threading::for_each_chunk_mut(&mut partials, part_len, scratch, chunk);
    } else {
        let mut dy_buf = scratch();
        for item in partials.chunks_mut(part_len).enumerate() {
            chunk(&mut dy_buf, item);
        }
    }
    sum_partials(&partials, part_len, 0, dw, plan != Plan::Serial);
    if let Some(db) = db {
        sum_partials(&partials, part_len, dw.len(), db, false);
    }
}

/// out[i] = sum over chunks c (in order) of partials[c * part_len + offset + i].
pub(super) fn sum_partials(
    partials: &[f32],
    part_len: usize,
    offset: usize,
    out: &mut [f32],
    parallel: bool,
) {
    const BLOCK: usize = 4096;
    let add_block = |(i, block): (usize, &mut [f32])| {
        let start = offset + i * BLOCK;
        block.copy_from_slice(&partials[start..start + block.len()]);
        for part in partials.chunks(part_len).skip(1) {
            for (o, v) in block.iter_mut().zip(&part[start..]) {
                *o += v;
            }
        }
    };
    if parallel && out.len() > BLOCK {
        threading::install(|| out.par_chunks_mut(BLOCK).enumerate().for_each(add_block));
    } else {
        out.chunks_mut(BLOCK).enumerate().for_each(add_block);
    }
}

/// The grad-weight and grad-bias partial of the images in `images`, written into
/// `part` (dW followed by db). `dy_buf` is scratch for `images_per_gemm` images.
#[allow(clippy::too_many_arguments)]
fn weight_grad_chunk(
    p: &Conv2dParams,
    plan: Plan,
    x: &[f32],
    dy: &[f32],
    images: Range<usize>,
    images_per_gemm: usize,
    part: &mut [f32],
    dy_buf: &mut [f32],
) {
    let (k, n) = (p.k_size(), p.out_plane());
    let (cig, cog) = (p.c_in_per_group(), p.c_out_per_group());
    let (x_image, y_image) = (p.c_in * p.in_plane(), p.c_out * n);
    let (dw_part, db_part) = part.split_at_mut(p.c_out * k);
    for (step, first) in images.clone().step_by(images_per_gemm).enumerate() {
        let batch = first..(first + images_per_gemm).min(images.end);
        let len = batch.len() * n;
        // The first GEMM of the chunk overwrites the partial, the others add to it.
        let beta = if step == 0 { 0.0 } else { 1.0 };
        for g in 0..p.groups {
            let dy_g = |b: usize| &dy[b * y_image + g * cog * n..][..cog * n];
            // A = dY_g of the images side by side (cog x len).
            let a = if batch.len() == 1 {
                MatRef::row_major(dy_g(first), cog, n)
            } else {
                for (j, b) in batch.clone().enumerate() {
                    for (row, src) in dy_buf.chunks_mut(len).zip(dy_g(b).chunks(n)) {
                        row[j * n..][..n].copy_from_slice(src);
                    }
                }
                MatRef::row_major(&dy_buf[..cog * len], cog, len)
            };
            // B = cols^T of the images (len x k).
            let dw_g = &mut dw_part[g * cog * k..][..cog * k];
            if batch.len() == 1 && p.is_pointwise() {
                let x_g = &x[first * x_image + g * cig * p.in_plane()..][..cig * p.in_plane()];
                let b = MatRef::row_major(x_g, k, n).t();
                plan.gemm(a, &b, beta, dw_g, k, &Epilogue::NONE);
            } else {
                let b = Im2colTransposed(Im2colImages {
                    p,
                    x,
                    images: batch.clone(),
                    group: g,
                });
                plan.gemm(a, &b, beta, dw_g, k, &Epilogue::NONE);
            }
        }
    }
    bias_grad_chunk(p, dy, images, db_part);
}

/// The number of batch chunks of the grad-weight reduction: a function of the
/// problem size only, never of the thread count.
pub(super) fn batch_chunks(p: &Conv2dParams) -> usize {
    let part_len = p.c_out * p.k_size() + p.c_out;
    p.batch
        .min(threading::MAX_REDUCTION_CHUNKS)
        .min((PARTIALS_BUDGET / part_len).max(1))
}

/// The images of chunk `c` of `n_chunks` (balanced, contiguous).
pub(super) fn chunk_range(batch: usize, n_chunks: usize, c: usize) -> Range<usize> {
    c * batch / n_chunks..(c + 1) * batch / n_chunks
}

/// db[oc] = sum of dy[b, oc] over the images in `images` and all pixels.
pub(super) fn bias_grad_chunk(p: &Conv2dParams, dy: &[f32], images: Range<usize>, db: &mut [f32]) {
    for (oc, d) in db.iter_mut().enumerate() {
        *d = channel_sum(p, dy, images.clone(), oc);
    }
}

/// The sum of dy[b, oc] over the images `images` and all pixels, image by image.
fn channel_sum(p: &Conv2dParams, dy: &[f32], images: Range<usize>, oc: usize) -> f32 {
    let n = p.out_plane();
    images
        .map(|b| row_sum(&dy[(b * p.c_out + oc) * n..][..n]))
        .fold(0.0, |acc, s| acc + s)
}

/// db[oc] = sum of dy over batch and pixels. `db` has shape `[c_out]`. Summed in
/// the same chunks as in [`conv2d_backward_weight`], so both give the same bits.
/// Large arrays are split over the channels (each channel's sum stays in one
/// task, in the same order): the Winograd grad weight calls this on its own.
pub fn conv2d_backward_bias(p: &Conv2dParams, dy: &[f32], db: &mut [f32]) {
    let n_chunks = batch_chunks(p);
    let channels = |first: usize, db: &mut [f32]| {
        for (i, d) in db.iter_mut().enumerate() {
            // Chunk 0 is the start value (as bias_grad_chunk writes it), the others are added.
            *d = channel_sum(p, dy, chunk_range(p.batch, n_chunks, 0), first + i);
            for c in 1..n_chunks {
                *d += channel_sum(p, dy, chunk_range(p.batch, n_chunks, c), first + i);
            }
        }
    };
    if dy.len() < PARALLEL_MIN_ELEMENTS || threading::num_threads() == 1 {
        channels(0, db);
    } else {
        let per_task = p.c_out.div_ceil(4 * threading::num_threads()).max(1);
        threading::for_each_chunk_mut(
            db,
            per_task,
            || (),
            |_, (t, part)| channels(t * per_task, part),
        );
    }
}

/// dy arrays at least this long sum their bias gradient on the pool.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 17;

/// Sum with 8 independent accumulators (vectorises; fixed order, so deterministic).
fn row_sum(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = v.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + tail
}
