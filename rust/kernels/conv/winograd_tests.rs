//! The Winograd kernels (called directly, so also on shapes the dispatch sends
//! elsewhere) against float64 loops over the definition: forward with bias and
//! ReLU, and the grad weight through the adjoint identity, on partial tiles,
//! asymmetric and wide padding, one-pixel planes, several blocks per pass (in
//! private chunks and in turn) and channel counts that are not multiples of 8.

use super::tests::{assert_close, data, naive_forward};
use super::*;

fn cases() -> Vec<Conv2dParams> {
    let new = |x, w, pad| Conv2dParams::new("test", x, w, [1, 1], pad, [1, 1], 1).unwrap();
    vec![
        new([3, 5, 7, 5], [6, 5, 3, 3], [1; 4]), // odd sizes: partial tiles
        new([2, 3, 1, 1], [4, 3, 3, 3], [1; 4]), // one pixel
        new([2, 9, 6, 9], [7, 9, 3, 3], [0, 2, 1, 0]), // asymmetric padding
        new([1, 4, 5, 6], [3, 4, 3, 3], [0; 4]), // no padding
        new([2, 3, 2, 11], [5, 3, 3, 3], [2, 1, 0, 2]), // tile rows of padding only
        // Several blocks: forward 256 tiles, grad weight 512 tiles per block.
        new([3, 2, 34, 34], [3, 2, 3, 3], [1; 4]),
        new([40, 3, 6, 6], [2, 3, 3, 3], [1; 4]),
        // dU over 4 MiB: the grad weight reduces its two blocks in turn (one chunk).
        new([9, 130, 16, 16], [260, 130, 3, 3], [1; 4]),
    ]
}

#[test]
fn forward_matches_direct_loops() {
    for p in cases() {
        let (x, w, bias) = (
            data(p.x_shape().iter().product(), 11),
            data(p.w_shape().iter().product(), 12),
            data(p.c_out, 13),
        );
        let want = naive_forward(&p, &x, &w, &bias);
        let mut y = vec![f32::NAN; want.len()];
        winograd::forward(&p, &x, &w, Some(&bias), false, &mut y);
        assert_close(&y, &want, p.k_size(), "winograd forward", &p);
        winograd::forward(&p, &x, &w, Some(&bias), true, &mut y);
        let relu: Vec<f64> = want.iter().map(|v| v.max(0.0)).collect();
        assert_close(&y, &relu, p.k_size(), "winograd forward relu", &p);
    }
}

/// <conv(x, v), dy> = <v, dw> for a random direction v.
#[test]
fn weight_grad_is_the_adjoint_of_forward() {
    for p in cases() {
        let w_len = p.w_shape().iter().product();
        let (x, dy, v) = (
            data(p.x_shape().iter().product(), 14),
            data(p.y_shape().iter().product(), 15),
            data(w_len, 16),
        );
        let mut dw = vec![f32::NAN; w_len];
        winograd::weight_grad(&p, &x, &dy, &mut dw);
        let y_v = naive_forward(&p, &x, &v, &vec![0.0; p.c_out]);
        let lhs: f64 = y_v.iter().zip(&dy).map(|(a, b)| a * *b as f64).sum();
        let rhs: f64 = v.iter().zip(&dw).map(|(a, b)| *a as f64 * *b as f64).sum();
        let scale: f64 = y_v
            .iter()
            .zip(&dy)
            .map(|(a, b)| (a * *b as f64).abs())
            .sum::<f64>()
            + 1.0;
        assert!((lhs - rhs).abs() < 1e-5 * scale, "dw {p:?}: {lhs} vs {rhs}");
    }
}
