//! 2-D convolution (cross-correlation, as in PyTorch), NCHW, forward and backward.
//!
//! Shape arithmetic and validation live in [`Conv2dParams`]; the loops below only
//! ever see validated sizes.
//!
//! CONTRACT: every function overwrites its whole output slice (callers pass
//! uninitialised memory). Results do not depend on the thread count.
//!
//! PLACEHOLDER: direct loops, parallel over output planes; the GEMM-based
//! implicit-im2col kernels replace them.

use rayon::prelude::*;

use crate::error::{checked_product, KernelError, Result};
use crate::threading;

/// Validated sizes of one conv2d call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    /// (vertical, horizontal)
    pub stride: [usize; 2],
    /// (top, bottom, left, right): sides may differ so that `padding='same'` works for even kernels.
    pub padding: [usize; 4],
    /// (vertical, horizontal)
    pub dilation: [usize; 2],
    pub groups: usize,
    pub out_h: usize,
    pub out_w: usize,
}

/// Output length of a sliding window along one axis, or None if the window
/// does not fit into the padded input.
pub fn window_out_len(
    len: usize,
    pad_lo: usize,
    pad_hi: usize,
    k: usize,
    stride: usize,
    dilation: usize,
) -> Option<usize> {
    let padded = len.checked_add(pad_lo)?.checked_add(pad_hi)?;
    let span = dilation.checked_mul(k.checked_sub(1)?)?.checked_add(1)?;
    if padded < span {
        return None;
    }
    Some((padded - span) / stride + 1)
}

impl Conv2dParams {
    /// Validates the shapes of input `x` (N, C_in, H, W) and weight `w`
    /// (C_out, C_in/groups, kH, kW) and the scalar arguments.
    pub fn new(
        op: &str,
        x_shape: [usize; 4],
        w_shape: [usize; 4],
        stride: [usize; 2],
        padding: [usize; 4],
        dilation: [usize; 2],
        groups: usize,
    ) -> Result<Self> {
        let [batch, c_in, h, w] = x_shape;
        let [c_out, c_in_per_group, kh, kw] = w_shape;
        let arg = |m: String| Err(KernelError::Argument(format!("{op}: {m}")));
        let shape = |m: String| Err(KernelError::Shape(format!("{op}: {m}")));
        if stride.contains(&0) {
            return arg(format!("stride must be positive, got {stride:?}"));
        }
        if dilation.contains(&0) {
            return arg(format!("dilation must be positive, got {dilation:?}"));
        }
        if groups == 0 {
            return arg("groups must be positive, got 0".into());
        }
        if batch == 0 {
            return arg(format!("input x has an empty batch: shape {x_shape:?}"));
        }
        if c_in == 0 || h == 0 || w == 0 {
            return shape(format!(
                "input x has a zero-sized dimension: shape {x_shape:?}"
            ));
        }
        if c_out == 0 || kh == 0 || kw == 0 || c_in_per_group == 0 {
            return shape(format!(
                "weight has a zero-sized dimension: shape {w_shape:?}"
            ));
        }
        if c_in % groups != 0 || c_out % groups != 0 {
            return shape(format!(
                "in_channels ({c_in}, from x {x_shape:?}) and out_channels ({c_out}, from weight {w_shape:?}) must both be divisible by groups={groups}"
            ));
        }
        if c_in_per_group * groups != c_in {
            return shape(format!(
                "weight {w_shape:?} expects {} input channels ({c_in_per_group} per group x groups={groups}) but x {x_shape:?} has {c_in}",
                c_in_per_group * groups
            ));
        }
        let out_h = window_out_len(h, padding[0], padding[1], kh, stride[0], dilation[0]);
        let out_w = window_out_len(w, padding[2], padding[3], kw, stride[1], dilation[1]);
        let (Some(out_h), Some(out_w)) = (out_h, out_w) else {
            return shape(format!(
                "kernel {kh}x{kw} (dilation {dilation:?}) is larger than the padded input: x {x_shape:?}, padding (top, bottom, left, right) {padding:?}"
            ));
        };
        let p = Conv2dParams {
            batch,
            c_in,
            h,
            w,
            c_out,
            kh,
            kw,
            stride,
            padding,
            dilation,
            groups,
            out_h,
            out_w,
        };
        checked_product(op, "input x", &x_shape)?;
        checked_product(op, "weight", &w_shape)?;
        checked_product(op, "output", &p.y_shape())?;
        // The GEMM kernels index columns as batch*out_h*out_w and rows as c_in/groups*kh*kw.
        checked_product(
            op,
            "im2col matrix",
            &[c_in_per_group * kh * kw, batch * out_h * out_w],
        )?;
        Ok(p)
    }

    pub fn x_shape(&self) -> [usize; 4] {
        [self.batch, self.c_in, self.h, self.w]
    }
    pub fn w_shape(&self) -> [usize; 4] {
        [self.c_out, self.c_in / self.groups, self.kh, self.kw]
    }
    pub fn y_shape(&self) -> [usize; 4] {
        [self.batch, self.c_out, self.out_h, self.out_w]
    }
    pub fn c_in_per_group(&self) -> usize {
        self.c_in / self.groups
    }
    pub fn c_out_per_group(&self) -> usize {
        self.c_out / self.groups
    }
    /// Multiply-adds of the forward pass.
    pub fn macs(&self) -> usize {
        self.batch
            * self.c_out
            * self.out_h
            * self.out_w
            * self.c_in_per_group()
            * self.kh
            * self.kw
    }

    /// Input row for output row `oy` and kernel row `ky`, if inside the (unpadded) input.
    #[inline(always)]
    fn in_y(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.stride[0] + ky * self.dilation[0])
            .checked_sub(self.padding[0])
            .filter(|&y| y < self.h)
    }
    #[inline(always)]
    fn in_x(&self, ox: usize, kx: usize) -> Option<usize> {
        (ox * self.stride[1] + kx * self.dilation[1])
            .checked_sub(self.padding[2])
            .filter(|&x| x < self.w)
    }
}

/// y = conv(x, w) + bias, then ReLU if `relu`. `y` has shape `p.y_shape()`.
pub fn conv2d_forward(
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
) {
    let plane = p.out_h * p.out_w;
    let (cig, cog) = (p.c_in_per_group(), p.c_out_per_group());
    threading::install(|| {
        y.par_chunks_mut(plane).enumerate().for_each(|(idx, out)| {
            let (b, oc) = (idx / p.c_out, idx % p.c_out);
            let g = oc / cog;
            for oy in 0..p.out_h {
                for ox in 0..p.out_w {
                    let mut acc = bias.map_or(0.0, |bv| bv[oc]);
                    for ic in 0..cig {
                        let x_plane = &x[((b * p.c_in + g * cig + ic) * p.h) * p.w..][..p.h * p.w];
                        let w_k = &w[((oc * cig + ic) * p.kh) * p.kw..][..p.kh * p.kw];
                        for ky in 0..p.kh {
                            let Some(iy) = p.in_y(oy, ky) else { continue };
                            for kx in 0..p.kw {
                                if let Some(ix) = p.in_x(ox, kx) {
                                    acc += x_plane[iy * p.w + ix] * w_k[ky * p.kw + kx];
                                }
                            }
                        }
                    }
                    out[oy * p.out_w + ox] = if relu { acc.max(0.0) } else { acc };
                }
            }
        });
    });
}

/// dx = d(loss)/dx given dy. `dx` has shape `p.x_shape()`.
pub fn conv2d_backward_input(p: &Conv2dParams, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    let (cig, cog) = (p.c_in_per_group(), p.c_out_per_group());
    threading::install(|| {
        dx.par_chunks_mut(p.h * p.w)
            .enumerate()
            .for_each(|(idx, out)| {
                let (b, c) = (idx / p.c_in, idx % p.c_in);
                let (g, ic) = (c / cig, c % cig);
                out.fill(0.0);
                for oc in g * cog..(g + 1) * cog {
                    let dy_plane =
                        &dy[(b * p.c_out + oc) * p.out_h * p.out_w..][..p.out_h * p.out_w];
                    let w_k = &w[((oc * cig + ic) * p.kh) * p.kw..][..p.kh * p.kw];
                    for oy in 0..p.out_h {
                        for ky in 0..p.kh {
                            let Some(iy) = p.in_y(oy, ky) else { continue };
                            for ox in 0..p.out_w {
                                let g_out = dy_plane[oy * p.out_w + ox];
                                for kx in 0..p.kw {
                                    if let Some(ix) = p.in_x(ox, kx) {
                                        out[iy * p.w + ix] += g_out * w_k[ky * p.kw + kx];
                                    }
                                }
                            }
                        }
                    }
                }
            });
    });
}

/// dw (shape `p.w_shape()`) and optionally db (shape `[c_out]`) given x and dy.
pub fn conv2d_backward_weight(
    p: &Conv2dParams,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) {
    let cig = p.c_in_per_group();
    let cog = p.c_out_per_group();
    let ksize = cig * p.kh * p.kw;
    let plane = p.out_h * p.out_w;
    threading::install(|| {
        dw.par_chunks_mut(ksize).enumerate().for_each(|(oc, out)| {
            let g = oc / cog;
            for ic in 0..cig {
                for ky in 0..p.kh {
                    for kx in 0..p.kw {
                        let mut acc = 0.0f32;
                        for b in 0..p.batch {
                            let dy_plane = &dy[(b * p.c_out + oc) * plane..][..plane];
                            let x_plane =
                                &x[((b * p.c_in + g * cig + ic) * p.h) * p.w..][..p.h * p.w];
                            for oy in 0..p.out_h {
                                let Some(iy) = p.in_y(oy, ky) else { continue };
                                for ox in 0..p.out_w {
                                    if let Some(ix) = p.in_x(ox, kx) {
                                        acc += dy_plane[oy * p.out_w + ox] * x_plane[iy * p.w + ix];
                                    }
                                }
                            }
                        }
                        out[(ic * p.kh + ky) * p.kw + kx] = acc;
                    }
                }
            }
        });
    });
    if let Some(db) = db {
        conv2d_backward_bias(p, dy, db);
    }
}

/// db[oc] = sum of dy over batch and pixels. `db` has shape `[c_out]`.
pub fn conv2d_backward_bias(p: &Conv2dParams, dy: &[f32], db: &mut [f32]) {
    let plane = p.out_h * p.out_w;
    for (oc, d) in db.iter_mut().enumerate() {
        *d = (0..p.batch)
            .map(|b| {
                dy[(b * p.c_out + oc) * plane..][..plane]
                    .iter()
                    .sum::<f32>()
            })
            .sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_len_matches_pytorch_formula() {
        assert_eq!(window_out_len(28, 2, 2, 5, 1, 1), Some(28));
        assert_eq!(window_out_len(32, 0, 0, 5, 1, 1), Some(28));
        assert_eq!(window_out_len(7, 1, 1, 3, 2, 1), Some(4));
        assert_eq!(window_out_len(5, 0, 0, 3, 1, 2), Some(1));
        assert_eq!(window_out_len(4, 0, 0, 5, 1, 1), None);
    }

    #[test]
    fn rejects_bad_arguments() {
        let ok = Conv2dParams::new(
            "conv2d",
            [1, 4, 8, 8],
            [6, 2, 3, 3],
            [1, 1],
            [0; 4],
            [1, 1],
            2,
        );
        assert_eq!(ok.unwrap().y_shape(), [1, 6, 6, 6]);
        let cases = [
            Conv2dParams::new(
                "conv2d",
                [1, 4, 8, 8],
                [6, 4, 3, 3],
                [0, 1],
                [0; 4],
                [1, 1],
                1,
            ),
            Conv2dParams::new(
                "conv2d",
                [1, 4, 8, 8],
                [6, 3, 3, 3],
                [1, 1],
                [0; 4],
                [1, 1],
                1,
            ),
            Conv2dParams::new(
                "conv2d",
                [1, 4, 8, 8],
                [6, 2, 3, 3],
                [1, 1],
                [0; 4],
                [1, 1],
                4,
            ),
            Conv2dParams::new(
                "conv2d",
                [0, 4, 8, 8],
                [6, 4, 3, 3],
                [1, 1],
                [0; 4],
                [1, 1],
                1,
            ),
            Conv2dParams::new(
                "conv2d",
                [1, 4, 2, 2],
                [6, 4, 3, 3],
                [1, 1],
                [0; 4],
                [1, 1],
                1,
            ),
            Conv2dParams::new(
                "conv2d",
                [usize::MAX / 2, 4, 8, 8],
                [6, 4, 3, 3],
                [1, 1],
                [0; 4],
                [1, 1],
                1,
            ),
        ];
        for c in cases {
            assert!(c.is_err(), "{c:?}");
        }
    }
}
