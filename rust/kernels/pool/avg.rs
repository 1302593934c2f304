//! Average pooling forward and backward with PyTorch's divisor rules
//! (`count_include_pad`, `divisor_override`).
//!
//! Both directions are separable: the forward first sums the window's input
//! rows into one row buffer (a contiguous, vectorisable pass along W), then
//! sums each output's columns of that buffer; the backward spreads each
//! output row's gradient over one row buffer, then adds the buffer to every
//! input row of the window.

use super::{for_each_plane, Pool2dParams};

/// PyTorch's divisor of output (oy, ox): the window size clipped to the
/// padded input, or to the input alone without `count_include_pad`.
#[inline]
fn divisor(
    p: &Pool2dParams,
    oy: usize,
    ox: usize,
    count_include_pad: bool,
    divisor_override: Option<usize>,
) -> f32 {
    if let Some(d) = divisor_override {
        return d as f32;
    }
    let padded_len = |axis: usize, o: usize| {
        let (len, pad) = ([p.h, p.w][axis], p.padding[axis]);
        let start = o * p.stride[axis];
        let end = (start + p.kernel[axis]).min(len + 2 * pad);
        if count_include_pad {
            end - start
        } else {
            end.min(len + pad).saturating_sub(start.max(pad))
        }
    };
    (padded_len(0, oy) * padded_len(1, ox)) as f32
}

pub fn avg_pool2d_forward(
    p: &Pool2dParams,
    count_include_pad: bool,
    divisor_override: Option<usize>,
    x: &[f32],
    y: &mut [f32],
) {
    let in_plane = p.in_plane();
    for_each_plane(y, p.out_plane(), p.traffic(), |plane, out| {
        let xs = &x[plane * in_plane..][..in_plane];
        let mut col_sums = vec![0.0f32; p.w];
        for oy in 0..p.out_h {
            let yrow = &mut out[oy * p.out_w..][..p.out_w];
            let (y0, y1, _) = p.taps(0, oy);
            if y0 >= y1 {
                yrow.fill(0.0);
                continue;
            }
            col_sums.copy_from_slice(&xs[y0 * p.w..][..p.w]);
            for iy in y0 + 1..y1 {
                for (s, &v) in col_sums.iter_mut().zip(&xs[iy * p.w..][..p.w]) {
                    *s += v;
                }
            }
            for (ox, o) in yrow.iter_mut().enumerate() {
                let (x0, x1, _) = p.taps(1, ox);
                let sum: f32 = col_sums[x0..x1.max(x0)].iter().sum();
                *o = if x0 < x1 {
                    sum / divisor(p, oy, ox, count_include_pad, divisor_override)
                } else {
                    0.0
                };
            }
        }
    });
}

pub fn avg_pool2d_backward(
    p: &Pool2dParams,
    count_include_pad: bool,
    divisor_override: Option<usize>,
    dy: &[f32],
    dx: &mut [f32],
) {
    let out_plane = p.out_plane();
    for_each_plane(dx, p.in_plane(), p.traffic(), |plane, out| {
        out.fill(0.0);
        let g = &dy[plane * out_plane..][..out_plane];
        let mut row_grad = vec![0.0f32; p.w];
        for oy in 0..p.out_h {
            let (y0, y1, _) = p.taps(0, oy);
            if y0 >= y1 {
                continue;
            }
            row_grad.fill(0.0);
            for ox in 0..p.out_w {
                let (x0, x1, _) = p.taps(1, ox);
                let gv = g[oy * p.out_w + ox]
                    / divisor(p, oy, ox, count_include_pad, divisor_override);
                for s in &mut row_grad[x0..x1.max(x0)] {
                    *s += gv;
                }
            }
            for iy in y0..y1 {
                for (d, &s) in out[iy * p.w..][..p.w].iter_mut().zip(&row_grad) {
                    *d += s;
                }
            }
        }
    });
}
