//! conv2d grad input: dcols = W_g^T * dY_g per image and group, scatter-added
//! into dx by col2im, in pixel tiles that stay in cache.

use rayon::prelude::*;

use super::im2col::col2im_add;
use super::params::Conv2dParams;
use super::Plan;
use crate::kernels::gemm::{Epilogue, MatRef, NR};
use crate::threading;

/// dcols tiles of the grad-input product hold about this many floats (256 KiB,
/// half of L2), so they are still in cache when col2im reads them back.
const DCOLS_TILE_FLOATS: usize = 64 << 10;
/// ... but are at least this many pixels wide, so each GEMM stays efficient.
const DCOLS_MIN_TILE: usize = 64;

/// dx = d(loss)/dx given dy. `dx` has shape `p.x_shape()`.
pub fn conv2d_backward_input(p: &Conv2dParams, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    let x_image = p.c_in * p.in_plane();
    let y_image = p.c_out * p.out_plane();
    let (k, n) = (p.k_size(), p.out_plane());
    let tile = (DCOLS_TILE_FLOATS / k)
        .next_multiple_of(NR)
        .max(DCOLS_MIN_TILE)
        .min(n);
    let dcols_len = if p.is_pointwise() { 0 } else { k * tile };
    let w_t = transpose_per_group(p, w);
    let plan = Plan::choose(p.batch, 2 * p.macs());
    let image = |dcols: &mut Vec<f32>, (dx_img, dy_img): (&mut [f32], &[f32])| {
        input_grad_image(p, plan, &w_t, tile, dy_img, dx_img, dcols);
    };
    if plan == Plan::OverImages {
        threading::install(|| {
            dx.par_chunks_mut(x_image)
                .zip(dy.par_chunks(y_image))
                .for_each_init(|| vec![0.0; dcols_len], image);
        });
    } else {
        let mut dcols = vec![0.0; dcols_len];
        for item in dx.chunks_mut(x_image).zip(dy.chunks(y_image)) {
            image(&mut dcols, item);
        }
    }
}

/// W_g^T (K x C_out/g, row-major) of every group, one after the other. Made
/// once per call so that every image's GEMM packs a row-major A (the fast path).
fn transpose_per_group(p: &Conv2dParams, w: &[f32]) -> Vec<f32> {
    let (k, cog) = (p.k_size(), p.c_out_per_group());
    let mut w_t = vec![0.0; w.len()];
    for (src, dst) in w.chunks(cog * k).zip(w_t.chunks_mut(cog * k)) {
        for (oc, row) in src.chunks(k).enumerate() {
            for (r, v) in row.iter().enumerate() {
                dst[r * cog + oc] = *v;
            }
        }
    }
    w_t
}

/// One image: per group and tile of `tile` pixels, dcols = W_g^T * dY_g[:, tile],
/// then scatter-added into dx_g (col2im).
fn input_grad_image(
    p: &Conv2dParams,
    plan: Plan,
    w_t: &[f32],
    tile: usize,
    dy_img: &[f32],
    dx_img: &mut [f32],
    dcols: &mut [f32],
) {
    let (k, n) = (p.k_size(), p.out_plane());
    let (cig, cog) = (p.c_in_per_group(), p.c_out_per_group());
    for g in 0..p.groups {
        let a = MatRef::row_major(&w_t[g * k * cog..][..k * cog], k, cog);
        let dy_g = &dy_img[g * cog * n..][..cog * n];
        let dx_g = &mut dx_img[g * cig * p.in_plane()..][..cig * p.in_plane()];
        if p.is_pointwise() {
            // cols is x itself, so dcols is dx.
            let b = MatRef::row_major(dy_g, cog, n);
            plan.gemm(a, &b, 0.0, dx_g, n, &Epilogue::NONE);
            continue;
        }
        dx_g.fill(0.0);
        for n0 in (0..n).step_by(tile) {
            let nt = tile.min(n - n0);
            let b = MatRef {
                data: &dy_g[n0..],
                rows: cog,
                cols: nt,
                row_stride: n,
                col_stride: 1,
            };
            let dcols = &mut dcols[..k * nt];
            plan.gemm(a, &b, 0.0, dcols, nt, &Epilogue::NONE);
            col2im_add(p, dcols, n0, dx_g);
        }
    }
}
