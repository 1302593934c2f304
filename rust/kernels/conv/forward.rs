//! conv2d forward: one GEMM per image and group, written straight into NCHW y.

use rayon::prelude::*;

use super::im2col::im2col;
use super::params::Conv2dParams;
use super::Plan;
use crate::kernels::gemm::MatRef;
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
    let cols_len = if p.is_pointwise() {
        0
    } else {
        p.k_size() * p.out_plane()
    };
    let plan = Plan::choose(p.batch, 2 * p.macs());
    if plan == Plan::OverImages {
        threading::install(|| {
            y.par_chunks_mut(y_image)
                .zip(x.par_chunks(x_image))
                .for_each_init(
                    || vec![0.0; cols_len],
                    |cols, (y_img, x_img)| {
                        forward_image(p, plan, x_img, w, bias, relu, y_img, cols)
                    },
                );
        });
    } else {
        let mut cols = vec![0.0; cols_len];
        for (y_img, x_img) in y.chunks_mut(y_image).zip(x.chunks(x_image)) {
            forward_image(p, plan, x_img, w, bias, relu, y_img, &mut cols);
        }
    }
}

/// One image: per group, Y_g = W_g * cols (+ bias, ReLU). `cols` is scratch of
/// `k_size * out_plane` floats (unused for pointwise convolutions).
#[allow(clippy::too_many_arguments)]
fn forward_image(
    p: &Conv2dParams,
    plan: Plan,
    x_img: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    y_img: &mut [f32],
    cols: &mut [f32],
) {
    let (k, n) = (p.k_size(), p.out_plane());
    let (cig, cog) = (p.c_in_per_group(), p.c_out_per_group());
    for g in 0..p.groups {
        let x_g = &x_img[g * cig * p.in_plane()..][..cig * p.in_plane()];
        let b = if p.is_pointwise() {
            MatRef::row_major(x_g, k, n)
        } else {
            im2col(p, x_g, cols, n);
            MatRef::row_major(cols, k, n)
        };
        let a = MatRef::row_major(&w[g * cog * k..][..cog * k], cog, k);
        let y_g = &mut y_img[g * cog * n..][..cog * n];
        // Bias enters as the initial C (beta = 1), so it costs no extra pass.
        let beta = match bias {
            Some(bias) => {
                for (row, &b) in y_g.chunks_mut(n).zip(&bias[g * cog..][..cog]) {
                    row.fill(b);
                }
                1.0
            }
            None => 0.0,
        };
        plan.gemm(a, b, beta, y_g, n);
        if relu {
            y_g.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
}
