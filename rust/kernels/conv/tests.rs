//! The GEMM-based kernels (called directly, also on shapes the public entry
//! points send to the direct path) against float64 loops over the definition,
//! on shapes that reach every path: pointwise, grouped, strided, dilated,
//! asymmetric padding, grad-input tiles, several images per grad-weight GEMM,
//! serial and parallel plans.

use super::*;

/// Direct loops: y[b, oc, oy, ox] = bias[oc] + sum over (ic, ky, kx) of x * w.
pub(super) fn naive_forward(p: &Conv2dParams, x: &[f32], w: &[f32], bias: &[f32]) -> Vec<f64> {
    let (cig, cog) = (p.c_in_per_group(), p.c_out_per_group());
    let mut y = vec![0.0; p.batch * p.c_out * p.out_plane()];
    for b in 0..p.batch {
        for oc in 0..p.c_out {
            let g = oc / cog;
            for oy in 0..p.out_h {
                for ox in 0..p.out_w {
                    let mut acc = bias[oc] as f64;
                    for ic in 0..cig {
                        for ky in 0..p.kh {
                            for kx in 0..p.kw {
                                let Some(iy) = p.in_y(oy, ky) else { continue };
                                let ix = (ox * p.stride[1] + kx * p.dilation[1]) as isize
                                    - p.padding[2] as isize;
                                if ix < 0 || ix >= p.w as isize {
                                    continue;
                                }
                                let xi =
                                    ((b * p.c_in + g * cig + ic) * p.h + iy) * p.w + ix as usize;
                                let wi = ((oc * cig + ic) * p.kh + ky) * p.kw + kx;
                                acc += x[xi] as f64 * w[wi] as f64;
                            }
                        }
                    }
                    y[((b * p.c_out + oc) * p.out_h + oy) * p.out_w + ox] = acc;
                }
            }
        }
    }
    y
}

pub(super) fn data(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0) - 1.0)
        .collect()
}

pub(super) fn assert_close(got: &[f32], want: &[f64], terms: usize, what: &str, p: &Conv2dParams) {
    assert_eq!(got.len(), want.len());
    let tol = 1e-5 * (terms as f64).sqrt() + 1e-6 * terms as f64;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= tol * (1.0 + w.abs()),
            "{what} [{i}]: {g} vs {w} ({p:?})"
        );
    }
}

fn cases() -> Vec<Conv2dParams> {
    let new = |x, w, s, pad, d, g| Conv2dParams::new("test", x, w, s, pad, d, g).unwrap();
    vec![
        new([3, 1, 12, 12], [6, 1, 5, 5], [1, 1], [2; 4], [1, 1], 1),
        new([2, 6, 7, 9], [4, 3, 3, 2], [2, 1], [1, 0, 2, 1], [1, 2], 2),
        new([4, 8, 5, 5], [8, 8, 1, 1], [1, 1], [0; 4], [1, 1], 1),
        new([2, 4, 6, 6], [4, 1, 3, 3], [1, 1], [1; 4], [1, 1], 4),
        new([1, 64, 11, 13], [8, 64, 3, 3], [1, 1], [1; 4], [1, 1], 1),
        new([9, 16, 10, 10], [32, 16, 3, 3], [1, 1], [1; 4], [1, 1], 1),
        new([5, 3, 4, 4], [2, 3, 4, 4], [1, 1], [0; 4], [1, 1], 1),
        // Batch chunks of several grad-weight GEMMs each (planes of 256 pixels).
        new([20, 2, 16, 16], [3, 2, 3, 3], [1, 1], [1; 4], [1, 1], 1),
    ]
}

#[test]
fn forward_matches_direct_loops() {
    for p in cases() {
        let (x, w, bias) = (
            data(p.x_shape().iter().product(), 1),
            data(p.w_shape().iter().product(), 2),
            data(p.c_out, 3),
        );
        let want = naive_forward(&p, &x, &w, &bias);
        let mut y = vec![f32::NAN; want.len()];
        forward::gemm_forward(&p, &x, &w, Some(&bias), false, &mut y);
        assert_close(&y, &want, p.k_size(), "forward", &p);
        forward::gemm_forward(&p, &x, &w, Some(&bias), true, &mut y);
        let relu: Vec<f64> = want.iter().map(|v| v.max(0.0)).collect();
        assert_close(&y, &relu, p.k_size(), "forward relu", &p);
    }
}

/// Backward through the adjoint identities of the bilinear map (x, w) -> conv(x, w):
/// for any directions u and v, <conv(u, w), dy> = <u, dx> and <conv(x, v), dy> = <v, dw>.
/// Random directions (not x and w themselves) catch misplaced gradient entries.
#[test]
fn backward_is_the_adjoint_of_forward() {
    for p in cases() {
        let (x_len, w_len) = (p.x_shape().iter().product(), p.w_shape().iter().product());
        let (x, w, dy) = (
            data(x_len, 4),
            data(w_len, 5),
            data(p.y_shape().iter().product(), 6),
        );
        let (u, v) = (data(x_len, 7), data(w_len, 8));
        let mut dx = vec![f32::NAN; x.len()];
        let mut dw = vec![f32::NAN; w.len()];
        let mut db = vec![f32::NAN; p.c_out];
        input_grad::gemm_input_grad(&p, &w, &dy, &mut dx);
        weight_grad::gemm_weight_grad(&p, &x, &dy, &mut dw, Some(&mut db));

        let zero = vec![0.0; p.c_out];
        let dot = |a: &[f64], b: &[f32]| a.iter().zip(b).map(|(s, t)| s * *t as f64).sum::<f64>();
        let widen = |a: &[f32]| a.iter().map(|t| *t as f64).collect::<Vec<_>>();
        let scale = |a: &[f64], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(s, t)| (s * *t as f64).abs())
                .sum::<f64>()
                + 1.0
        };
        let y_u = naive_forward(&p, &u, &w, &zero);
        assert!(
            (dot(&y_u, &dy) - dot(&widen(&u), &dx)).abs() < 1e-5 * scale(&y_u, &dy),
            "dx {p:?}"
        );
        let y_v = naive_forward(&p, &x, &v, &zero);
        assert!(
            (dot(&y_v, &dy) - dot(&widen(&v), &dw)).abs() < 1e-5 * scale(&y_v, &dy),
            "dw {p:?}"
        );

        let n = p.out_plane();
        for (oc, d) in db.iter().enumerate() {
            let want: f64 = (0..p.batch)
                .flat_map(|b| &dy[(b * p.c_out + oc) * n..][..n])
                .map(|t| *t as f64)
                .sum();
            assert!(
                (*d as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                "db {p:?}"
            );
        }
        let mut db_only = vec![f32::NAN; p.c_out];
        conv2d_backward_bias(&p, &dy, &mut db_only);
        assert_eq!(db, db_only, "the bias-only path sums in the same order");
    }
}
