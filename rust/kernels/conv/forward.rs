//! conv2d forward: Y_g = W_g * cols + bias (then ReLU) per image and group, the
//! im2col matrix packed straight from x and bias + ReLU fused into the GEMM's
//! final write. For one image the rows of Y_g are whole output planes, so the
//! GEMM writes straight into NCHW y.

use std::ops::Range;

use super::implicit::{with_forward_cols, Im2colImages};
use super::params::Conv2dParams;
use super::Plan;
use crate::kernels::gemm::{Epilogue, MatRef};
use crate::kernels::simd;
use crate::threading;

/// Output planes smaller than this many pixels are computed several images per
/// GEMM: a GEMM packs all of W_g, and a few dozen columns per image would not
/// repay that (VGG's 8x8 layers: W is 2.4 MB, an image 64 columns). Those
/// GEMMs write into a scratch C whose rows are then copied out, image by image.
const MIN_GEMM_COLS: usize = 512;

/// y = conv(x, w) + bias, then ReLU if `relu`. `y` has shape `p.y_shape()`.
pub fn conv2d_forward(
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
) {
    if super::direct::suits(p) {
        return super::direct::forward(p, x, w, bias, relu, y, simd::use_avx2_fma());
    }
    if super::winograd::suits(p) {
        return super::winograd::forward(p, x, w, bias, relu, y);
    }
    gemm_forward(p, x, w, bias, relu, y);
}

/// The GEMM path of [`conv2d_forward`].
pub(super) fn gemm_forward(
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
) {
    let n = p.out_plane();
    let per_gemm = if p.is_pointwise() {
        1 // B is x itself, one image at a time
    } else {
        MIN_GEMM_COLS.div_ceil(n).min(p.batch)
    };
    let scratch_len = if per_gemm > 1 {
        p.c_out_per_group() * per_gemm * n
    } else {
        0
    };
    let plan = Plan::choose(p.batch.div_ceil(per_gemm), 2 * p.macs());
    let step = |scratch: &mut Vec<f32>, (i, y_step): (usize, &mut [f32])| {
        let images = i * per_gemm..((i + 1) * per_gemm).min(p.batch);
        forward_images(p, plan, x, w, bias, relu, images, y_step, scratch);
    };
    let y_step_len = per_gemm * p.c_out * n;
    if plan == Plan::OverImages {
        threading::for_each_chunk_mut(y, y_step_len, || vec![0.0; scratch_len], step);
    } else {
        let mut scratch = vec![0.0; scratch_len];
        for item in y.chunks_mut(y_step_len).enumerate() {
            step(&mut scratch, item);
        }
    }
}

/// The images `images` (whose outputs are `y_imgs`), one GEMM per group.
#[allow(clippy::too_many_arguments)]
fn forward_images(
    p: &Conv2dParams,
    plan: Plan,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    images: Range<usize>,
    y_imgs: &mut [f32],
    scratch: &mut [f32],
) {
    let (k, n) = (p.k_size(), p.out_plane());
    let (cig, cog) = (p.c_in_per_group(), p.c_out_per_group());
    let y_image = p.c_out * n;
    for g in 0..p.groups {
        let a = MatRef::row_major(&w[g * cog * k..][..cog * k], cog, k);
        let epilogue = Epilogue {
            row_bias: bias.map(|b| &b[g * cog..][..cog]),
            relu,
        };
        let cols = Im2colImages {
            p,
            x,
            images: images.clone(),
            group: g,
        };
        if images.len() > 1 {
            // Rows of C are the channel planes of the images side by side.
            let width = images.len() * n;
            let c = &mut scratch[..cog * width];
            with_forward_cols(cols, |b| plan.gemm(a, b, 0.0, c, width, &epilogue));
            for (j, y_img) in y_imgs.chunks_mut(y_image).enumerate() {
                for (oc, row) in c.chunks(width).enumerate() {
                    y_img[(g * cog + oc) * n..][..n].copy_from_slice(&row[j * n..][..n]);
                }
            }
            continue;
        }
        let y_g = &mut y_imgs[g * cog * n..][..cog * n];
        if p.is_pointwise() {
            let x_g = &x[images.start * p.c_in * p.in_plane() + g * cig * p.in_plane()..];
            let b = MatRef::row_major(&x_g[..cig * p.in_plane()], k, n);
            plan.gemm(a, &b, 0.0, y_g, n, &epilogue);
        } else {
            with_forward_cols(cols, |b| plan.gemm(a, b, 0.0, y_g, n, &epilogue));
        }
    }
}
