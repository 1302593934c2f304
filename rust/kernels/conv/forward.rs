//! conv2d forward: one GEMM per image and group, written straight into NCHW y,
//! with the im2col matrix packed straight from x and bias + ReLU fused into the
//! GEMM's final write.

use rayon::prelude::*;

use super::im2col::Im2colMatrix;
use super::params::Conv2dParams;
use super::Plan;
use crate::kernels::gemm::{Epilogue, MatRef};
use crate::threading;

/// y = conv(x, w) + bias, then ReLU if `relu`. `y` has shape `p.y_shape()`.
pub fn conv2d_forward(
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
) {
    let x_image = p.c_in * p.in_plane();
    let y_image = p.c_out * p.out_plane();
    let plan = Plan::choose(p.batch, 2 * p.macs());
    let image = |(y_img, x_img)| forward_image(p, plan, x_img, w, bias, relu, y_img);
    if plan == Plan::OverImages {
        threading::install(|| {
            y.par_chunks_mut(y_image)
                .zip(x.par_chunks(x_image))
                .for_each(image);
        });
    } else {
        y.chunks_mut(y_image).zip(x.chunks(x_image)).for_each(image);
    }
}

/// One image: per group, Y_g = W_g * cols + bias, then ReLU.
fn forward_image(
    p: &Conv2dParams,
    plan: Plan,
    x_img: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    y_img: &mut [f32],
) {
    let (k, n) = (p.k_size(), p.out_plane());
    let (cig, cog) = (p.c_in_per_group(), p.c_out_per_group());
    for g in 0..p.groups {
        let x_g = &x_img[g * cig * p.in_plane()..][..cig * p.in_plane()];
        let a = MatRef::row_major(&w[g * cog * k..][..cog * k], cog, k);
        let y_g = &mut y_img[g * cog * n..][..cog * n];
        let epilogue = Epilogue {
            row_bias: bias.map(|b| &b[g * cog..][..cog]),
            relu,
        };
        if p.is_pointwise() {
            let b = MatRef::row_major(x_g, k, n);
            plan.gemm(a, &b, 0.0, y_g, n, &epilogue);
        } else {
            let b = Im2colMatrix { p, x_group: x_g };
            plan.gemm(a, &b, 0.0, y_g, n, &epilogue);
        }
    }
}
