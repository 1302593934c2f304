//! Average pooling forward and backward with PyTorch's divisor rules
//! (`count_include_pad`, `divisor_override`).
//!
//! Both directions are separable: the forward first sums the window's input
//! rows into one row buffer (a contiguous, vectorisable pass along W), then
//! sums each output's columns of that buffer; the backward spreads each
//! output row's gradient over one row buffer, then adds the buffer to every
//! input row of the window. The divisor is separable too (a row count times a
//! column count), so both factors are computed once per call.

use super::{for_each_plane_group, Pool2dParams};

/// Per-call tables: input column range of each output column, and the two
/// factors of PyTorch's divisor.
struct AvgTables {
    cols: Vec<(usize, usize)>,
    col_count: Vec<usize>,
    row_count: Vec<usize>,
    divisor_override: Option<usize>,
}

impl AvgTables {
    fn new(p: &Pool2dParams, count_include_pad: bool, divisor_override: Option<usize>) -> Self {
        // Window length along `axis`, clipped to the padded input, or to the
        // input alone without count_include_pad.
        let count = |axis: usize, o: usize| {
            let (len, pad) = ([p.h, p.w][axis], p.padding[axis]);
            let start = o * p.stride[axis];
            let end = (start + p.kernel[axis]).min(len + 2 * pad);
            if count_include_pad {
                end - start
            } else {
                end.min(len + pad).saturating_sub(start.max(pad))
            }
        };
        AvgTables {
            cols: (0..p.out_w)
                .map(|ox| {
                    let (x0, x1, _) = p.taps(1, ox);
                    (x0, x1.max(x0))
                })
                .collect(),
            col_count: (0..p.out_w).map(|ox| count(1, ox)).collect(),
            row_count: (0..p.out_h).map(|oy| count(0, oy)).collect(),
            divisor_override,
        }
    }

    #[inline]
    fn divisor(&self, oy: usize, ox: usize) -> f32 {
        match self.divisor_override {
            Some(d) => d as f32,
            None => (self.row_count[oy] * self.col_count[ox]) as f32,
        }
    }
}

pub fn avg_pool2d_forward(
    p: &Pool2dParams,
    count_include_pad: bool,
    divisor_override: Option<usize>,
    x: &[f32],
    y: &mut [f32],
) {
    let (in_plane, out_plane) = (p.in_plane(), p.out_plane());
    let t = AvgTables::new(p, count_include_pad, divisor_override);
    for_each_plane_group(y, out_plane, p.traffic(), |first, group| {
        let mut col_sums = vec![0.0f32; p.w];
        for (j, out) in group.chunks_mut(out_plane).enumerate() {
            let xs = &x[(first + j) * in_plane..][..in_plane];
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
                    let (x0, x1) = t.cols[ox];
                    *o = if x0 < x1 {
                        col_sums[x0..x1].iter().sum::<f32>() / t.divisor(oy, ox)
                    } else {
                        0.0
                    };
                }
            }
        }
    });
}

/// The gradient of average pooling: each output's gradient, divided by its
/// divisor, spread over its window (along W into one row buffer per output
/// row, then added to every input row of the window).
///
/// When windows cannot overlap along H (kernel <= stride, LeNet's and VGG's
/// 2x2 / 2 pools), each input row gets at most one output row's buffer, so it
/// is copied there instead of zero-filling dx and adding: the same values
/// (the buffers are sums that start at +0.0, so `0.0 + v == v` bit for bit).
pub fn avg_pool2d_backward(
    p: &Pool2dParams,
    count_include_pad: bool,
    divisor_override: Option<usize>,
    dy: &[f32],
    dx: &mut [f32],
) {
    let (in_plane, out_plane) = (p.in_plane(), p.out_plane());
    let t = AvgTables::new(p, count_include_pad, divisor_override);
    let rows_disjoint = p.kernel[0] <= p.stride[0];
    for_each_plane_group(dx, in_plane, p.traffic(), |first, group| {
        let mut row_grad = vec![0.0f32; p.w];
        for (j, out) in group.chunks_mut(in_plane).enumerate() {
            let g = &dy[(first + j) * out_plane..][..out_plane];
            if rows_disjoint {
                let mut spread_oy = None;
                for (iy, row) in out.chunks_mut(p.w).enumerate() {
                    // The one output row whose window holds input row iy, if any.
                    let (oy, ky) = (
                        (iy + p.padding[0]) / p.stride[0],
                        (iy + p.padding[0]) % p.stride[0],
                    );
                    if oy >= p.out_h || ky >= p.kernel[0] {
                        row.fill(0.0);
                        continue;
                    }
                    if spread_oy != Some(oy) {
                        spread_row(p, &t, g, oy, &mut row_grad);
                        spread_oy = Some(oy);
                    }
                    row.copy_from_slice(&row_grad);
                }
                continue;
            }
            // Zeroed plane by plane, so that the adds below hit cache.
            out.fill(0.0);
            for oy in 0..p.out_h {
                let (y0, y1, _) = p.taps(0, oy);
                if y0 >= y1 {
                    continue;
                }
                spread_row(p, &t, g, oy, &mut row_grad);
                for iy in y0..y1 {
                    for (d, &s) in out[iy * p.w..][..p.w].iter_mut().zip(&row_grad) {
                        *d += s;
                    }
                }
            }
        }
    });
}

/// Output row `oy`'s gradients (of one plane, `g`), each divided by its
/// divisor, spread over their windows' columns in `row_grad`.
#[inline]
fn spread_row(p: &Pool2dParams, t: &AvgTables, g: &[f32], oy: usize, row_grad: &mut [f32]) {
    row_grad.fill(0.0);
    for (ox, &(x0, x1)) in t.cols.iter().enumerate() {
        let gv = g[oy * p.out_w + ox] / t.divisor(oy, ox);
        for s in &mut row_grad[x0..x1] {
            *s += gv;
        }
    }
}
