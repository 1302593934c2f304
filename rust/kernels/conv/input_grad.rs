//! conv2d grad input: dcols = W_g^T * dY_g per image and group, scatter-added
//! into dx by col2im, in pixel tiles that stay in cache.

use std::ops::Range;

use super::im2col::col2im_add;
use super::params::Conv2dParams;
use super::Plan;
use crate::kernels::gemm::{Epilogue, MatRef, NR};
use crate::kernels::simd;
use crate::threading;

/// dcols tiles of the grad-input product hold about this many floats (256 KiB,
/// half of L2), so they are still in cache when col2im reads them back.
const DCOLS_TILE_FLOATS: usize = 64 << 10;
/// ... but are at least this many pixels wide, so each GEMM stays efficient.
const DCOLS_MIN_TILE: usize = 64;

/// Output planes smaller than this many pixels are handled several images per
/// GEMM (their dY copied side by side), so that the packed W^T is reused over
/// enough columns; see the same constant in `forward.rs`.
const MIN_GEMM_COLS: usize = 512;

/// dx = d(loss)/dx given dy. `dx` has shape `p.x_shape()`.
pub fn conv2d_backward_input(p: &Conv2dParams, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    if super::direct::suits(p) {
        return super::direct::input_grad(p, w, dy, dx, simd::use_avx2_fma());
    }
    gemm_input_grad(p, w, dy, dx);
}

/// The GEMM path of [`conv2d_backward_input`].
pub(super) fn gemm_input_grad(p: &Conv2dParams, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    if let Some(transposed) = as_forward_problem(p) {
        let w_flipped = flip_and_swap_channels(p, w);
        if super::winograd::suits(&transposed) {
            super::winograd::forward(&transposed, dy, &w_flipped, None, false, dx);
        } else {
            super::forward::gemm_forward(&transposed, dy, &w_flipped, None, false, dx);
        }
        return;
    }
    let (k, n, cog) = (p.k_size(), p.out_plane(), p.c_out_per_group());
    let per_gemm = if p.is_pointwise() {
        1 // the GEMM writes dx directly, one image at a time
    } else {
        MIN_GEMM_COLS.div_ceil(n).min(p.batch)
    };
    let tile = if per_gemm > 1 {
        per_gemm * n
    } else {
        (DCOLS_TILE_FLOATS / k)
            .next_multiple_of(NR)
            .max(DCOLS_MIN_TILE)
            .min(n)
    };
    let dcols_len = if p.is_pointwise() { 0 } else { k * tile };
    let dy_len = if per_gemm > 1 { cog * tile } else { 0 };
    let scratch = || (vec![0.0; dcols_len], vec![0.0; dy_len]);
    let w_t = transpose_per_group(p, w);
    let plan = Plan::choose(p.batch.div_ceil(per_gemm), 2 * p.macs());
    let step = |(dcols, dy_buf): &mut (Vec<f32>, Vec<f32>), (i, dx_step): (usize, &mut [f32])| {
        let images = i * per_gemm..((i + 1) * per_gemm).min(p.batch);
        input_grad_images(p, plan, &w_t, tile, dy, images, dx_step, dcols, dy_buf);
    };
    let dx_step_len = per_gemm * p.c_in * p.in_plane();
    if plan == Plan::OverImages {
        threading::for_each_chunk_mut(dx, dx_step_len, scratch, step);
    } else {
        let mut buffers = scratch();
        for item in dx.chunks_mut(dx_step_len).enumerate() {
            step(&mut buffers, item);
        }
    }
}

/// With stride 1 and dilation 1 the input gradient is itself a convolution:
/// dx[ci, iy, ix] = sum over co, ky, kx of w[co, ci, ky, kx] *
/// dy[co, iy + pad_top - ky, ix + pad_left - kx], i.e. dy zero-padded by
/// k - 1 - pad on each side, correlated with the kernels flipped in both axes
/// and with input and output channels swapped. Computed that way it is one
/// forward pass (implicit im2col GEMMs, no dcols buffer and no col2im scatter).
/// Returns that forward problem, or None where it does not apply (strides or
/// dilations, a padding of k or more on a side, 1x1 kernels without padding,
/// whose plain-GEMM path is already direct) or would cost more: its GEMMs
/// multiply over the whole padded dy, so with little padding in the forward
/// pass (LeNet's 5x5 "valid" layer: 14x14 inputs, 10x10 outputs) they would
/// do twice the work of the col2im path, mostly on zeros.
fn as_forward_problem(p: &Conv2dParams) -> Option<Conv2dParams> {
    if p.stride != [1, 1] || p.dilation != [1, 1] || p.is_pointwise() {
        return None;
    }
    // Work ratio of the two ways: input pixels / output pixels (at most 5/4).
    if 4 * p.in_plane() > 5 * p.out_plane() {
        return None;
    }
    let [top, bottom, left, right] = p.padding;
    let pads = [
        (p.kh - 1).checked_sub(top)?,
        (p.kh - 1).checked_sub(bottom)?,
        (p.kw - 1).checked_sub(left)?,
        (p.kw - 1).checked_sub(right)?,
    ];
    let transposed = Conv2dParams::new(
        "conv2d_backward",
        [p.batch, p.c_out, p.out_h, p.out_w],
        [p.c_in, p.c_out_per_group(), p.kh, p.kw],
        [1, 1],
        pads,
        [1, 1],
        p.groups,
    )
    .ok()?;
    debug_assert_eq!(transposed.y_shape(), p.x_shape());
    Some(transposed)
}

/// w' with w'[g*cig + i, o, ky, kx] = w[g*cog + o, i, kh-1-ky, kw-1-kx]: the
/// kernels of the forward problem of [`as_forward_problem`].
fn flip_and_swap_channels(p: &Conv2dParams, w: &[f32]) -> Vec<f32> {
    let (cig, cog, khw) = (p.c_in_per_group(), p.c_out_per_group(), p.kh * p.kw);
    let mut flipped = vec![0.0; w.len()];
    for g in 0..p.groups {
        for o in 0..cog {
            for i in 0..cig {
                let src = &w[((g * cog + o) * cig + i) * khw..][..khw];
                let dst = &mut flipped[((g * cig + i) * cog + o) * khw..][..khw];
                for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                    *d = *s;
                }
            }
        }
    }
    flipped
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

/// The images `images` (whose input gradients are `dx_imgs`), per group:
/// dcols = W_g^T * dY_g, scatter-added into dx_g (col2im). One image goes in
/// pixel tiles of `tile` columns; several images (small planes) go in one GEMM
/// over their dY side by side (`tile` = all their pixels).
#[allow(clippy::too_many_arguments)]
fn input_grad_images(
    p: &Conv2dParams,
    plan: Plan,
    w_t: &[f32],
    tile: usize,
    dy: &[f32],
    images: Range<usize>,
    dx_imgs: &mut [f32],
    dcols: &mut [f32],
    dy_buf: &mut [f32],
) {
    let (k, n) = (p.k_size(), p.out_plane());
    let (cig, cog) = (p.c_in_per_group(), p.c_out_per_group());
    let (x_image, group_len) = (p.c_in * p.in_plane(), cig * p.in_plane());
    let dy_g = |b: usize, g: usize| &dy[b * p.c_out * n + g * cog * n..][..cog * n];
    for g in 0..p.groups {
        let a = MatRef::row_major(&w_t[g * k * cog..][..k * cog], k, cog);
        let dx_g = |j: usize| j * x_image + g * group_len..j * x_image + (g + 1) * group_len;
        if p.is_pointwise() {
            // cols is x itself, so dcols is dx.
            let b = MatRef::row_major(dy_g(images.start, g), cog, n);
            plan.gemm(a, &b, 0.0, &mut dx_imgs[dx_g(0)], n, &Epilogue::NONE);
            continue;
        }
        for j in 0..images.len() {
            dx_imgs[dx_g(j)].fill(0.0);
        }
        if images.len() > 1 {
            for (j, b) in images.clone().enumerate() {
                for (row, src) in dy_buf.chunks_mut(tile).zip(dy_g(b, g).chunks(n)) {
                    row[j * n..][..n].copy_from_slice(src);
                }
            }
            let b = MatRef::row_major(&dy_buf[..cog * tile], cog, tile);
            plan.gemm(a, &b, 0.0, &mut dcols[..k * tile], tile, &Epilogue::NONE);
            for j in 0..images.len() {
                col2im_add(p, &dcols[j * n..], tile, 0, n, &mut dx_imgs[dx_g(j)]);
            }
            continue;
        }
        let dy_img = dy_g(images.start, g);
        for n0 in (0..n).step_by(tile) {
            let nt = tile.min(n - n0);
            let b = MatRef {
                data: &dy_img[n0..],
                rows: cog,
                cols: nt,
                row_stride: n,
                col_stride: 1,
            };
            let dcols = &mut dcols[..k * nt];
            plan.gemm(a, &b, 0.0, dcols, nt, &Epilogue::NONE);
            col2im_add(p, dcols, nt, n0, nt, &mut dx_imgs[dx_g(0)]);
        }
    }
}
