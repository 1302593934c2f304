//! Shape arithmetic and validation of one conv2d call: the kernels only ever
//! see validated sizes.

use crate::error::{checked_product, KernelError, Result};

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

    /// Rows of the im2col matrix of one group: (input channel, kernel row, kernel column).
    pub fn k_size(&self) -> usize {
        self.c_in_per_group() * self.kh * self.kw
    }
    /// Pixels of one output plane: the columns of the im2col matrix of one image.
    pub fn out_plane(&self) -> usize {
        self.out_h * self.out_w
    }
    pub fn in_plane(&self) -> usize {
        self.h * self.w
    }
    /// A 1x1 kernel with stride 1 and no padding: the im2col matrix of an image
    /// is the input itself, so the convolution is a plain GEMM on x.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.padding == [0; 4]
    }

    /// Input row for output row `oy` and kernel row `ky`, if inside the (unpadded) input.
    #[inline(always)]
    pub fn in_y(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.stride[0] + ky * self.dilation[0])
            .checked_sub(self.padding[0])
            .filter(|&y| y < self.h)
    }

    /// For kernel column `kx`: the output columns `lo..hi` whose input column lies
    /// inside the (unpadded) input, and the input column of output column `lo`.
    /// Outside that range the im2col entries are padding zeros.
    #[inline]
    pub fn valid_out_x(&self, kx: usize) -> (usize, usize, usize) {
        let (s, pad) = (self.stride[1], self.padding[2]);
        let offset = kx * self.dilation[1];
        // ix = ox * s + offset - pad must satisfy 0 <= ix < w.
        let lo = pad.saturating_sub(offset).div_ceil(s).min(self.out_w);
        let hi = (self.w + pad)
            .checked_sub(offset)
            .map_or(0, |lim| lim.div_ceil(s))
            .clamp(lo, self.out_w);
        (lo, hi, (lo * s + offset).saturating_sub(pad))
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
        // Only x, weight, stride and groups vary between the rejected cases.
        let make = |x, w, stride, groups| {
            Conv2dParams::new("conv2d", x, w, stride, [0; 4], [1, 1], groups)
        };
        let cases = [
            make([1, 4, 8, 8], [6, 4, 3, 3], [0, 1], 1),
            make([1, 4, 8, 8], [6, 3, 3, 3], [1, 1], 1),
            make([1, 4, 8, 8], [6, 2, 3, 3], [1, 1], 4),
            make([0, 4, 8, 8], [6, 4, 3, 3], [1, 1], 1),
            make([1, 4, 2, 2], [6, 4, 3, 3], [1, 1], 1),
            make([usize::MAX / 2, 4, 8, 8], [6, 4, 3, 3], [1, 1], 1),
        ];
        for c in cases {
            assert!(c.is_err(), "{c:?}");
        }
    }
}
