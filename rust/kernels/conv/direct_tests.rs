//! The direct path (both kernels) against float64 loops over the definition,
//! on many small shapes that take it: every output width 1..=33 (vector
//! tails), non-square kernels, asymmetric padding (also wider than the
//! kernel), groups; and 1, 2, 3 threads giving the same bits.

use super::direct;
use super::tests::{assert_close, data, naive_forward};
use super::*;
use crate::kernels::simd;

/// (dx, dw) by direct loops: every (output, tap) pair adds its product once.
fn naive_backward(p: &Conv2dParams, x: &[f32], w: &[f32], dy: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let (cig, cog) = (p.c_in_per_group(), p.c_out_per_group());
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    for b in 0..p.batch {
        for oc in 0..p.c_out {
            let g = oc / cog;
            for oy in 0..p.out_h {
                for ox in 0..p.out_w {
                    let d = dy[((b * p.c_out + oc) * p.out_h + oy) * p.out_w + ox] as f64;
                    for ic in 0..cig {
                        for ky in 0..p.kh {
                            for kx in 0..p.kw {
                                let Some(iy) = p.in_y(oy, ky) else { continue };
                                let Some(ix) = (ox + kx).checked_sub(p.padding[2]) else {
                                    continue;
                                };
                                if ix >= p.w {
                                    continue;
                                }
                                let xi = ((b * p.c_in + g * cig + ic) * p.h + iy) * p.w + ix;
                                let wi = ((oc * cig + ic) * p.kh + ky) * p.kw + kx;
                                dx[xi] += w[wi] as f64 * d;
                                dw[wi] += x[xi] as f64 * d;
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw)
}

/// The kernels to test: portable always, AVX2+FMA where the CPU has it.
fn kernels() -> Vec<bool> {
    let mut simd_choices = vec![false];
    if simd::cpu_has_avx2_fma() {
        simd_choices.push(true);
    }
    simd_choices
}

/// Forward (with and without bias and ReLU), grad input, grad weight and grad
/// bias of the direct path, with both kernels, against the float64 loops.
fn check_direct(p: &Conv2dParams) {
    assert!(direct::suits(p), "{p:?} should take the direct path");
    let (x_len, w_len, y_len) = (
        p.x_shape().iter().product(),
        p.w_shape().iter().product(),
        p.y_shape().iter().product(),
    );
    let (x, w, bias, dy) = (
        data(x_len, 11),
        data(w_len, 12),
        data(p.c_out, 13),
        data(y_len, 14),
    );
    let zero = vec![0.0; p.c_out];
    let want_biased = naive_forward(p, &x, &w, &bias);
    let want_plain = naive_forward(p, &x, &w, &zero);
    let want_relu: Vec<f64> = want_biased.iter().map(|v| v.max(0.0)).collect();
    let (want_dx, want_dw) = naive_backward(p, &x, &w, &dy);
    let k = p.k_size();
    for simd in kernels() {
        let mut y = vec![f32::NAN; y_len];
        direct::forward(p, &x, &w, Some(&bias), false, &mut y, simd);
        assert_close(&y, &want_biased, k, "forward", p);
        direct::forward(p, &x, &w, Some(&bias), true, &mut y, simd);
        assert_close(&y, &want_relu, k, "forward relu", p);
        direct::forward(p, &x, &w, None, false, &mut y, simd);
        assert_close(&y, &want_plain, k, "forward no bias", p);

        let mut dx = vec![f32::NAN; x_len];
        direct::input_grad(p, &w, &dy, &mut dx, simd);
        assert_close(&dx, &want_dx, p.c_out_per_group() * p.kh * p.kw, "dx", p);

        let mut dw = vec![f32::NAN; w_len];
        let mut db = vec![f32::NAN; p.c_out];
        direct::weight_grad(p, &x, &dy, &mut dw, Some(&mut db), simd);
        assert_close(&dw, &want_dw, p.batch * p.out_plane(), "dw", p);
        let mut db_only = vec![f32::NAN; p.c_out];
        conv2d_backward_bias(p, &dy, &mut db_only);
        assert_eq!(db, db_only, "db: the bias-only path sums in the same order");
        let mut dw_alone = vec![f32::NAN; w_len];
        direct::weight_grad(p, &x, &dy, &mut dw_alone, None, simd);
        assert_eq!(dw, dw_alone, "dw without db {p:?}");
    }
}

fn params(x: [usize; 4], w: [usize; 4], padding: [usize; 4], groups: usize) -> Conv2dParams {
    Conv2dParams::new("test", x, w, [1, 1], padding, [1, 1], groups).unwrap()
}

#[test]
fn lenet_layers_take_the_direct_path_and_match() {
    check_direct(&params([3, 1, 28, 28], [6, 1, 5, 5], [2; 4], 1));
    check_direct(&params([3, 6, 14, 14], [16, 6, 5, 5], [0; 4], 1));
}

/// Every output width 1..=33 (the last vector of a row partly or wholly
/// padding; widths past one and two vector pairs), with asymmetric padding.
#[test]
fn every_output_width() {
    for out_w in 1..=33 {
        let (kw, left, right) = (3, 2, 0);
        let w = out_w + kw - 1 - left - right;
        check_direct(&params([2, 2, 3, w], [3, 2, 2, kw], [1, 0, left, right], 1));
    }
}

/// Many shapes from a fixed pseudo-random walk: heights 1..=9, kernels 1x1 to
/// 5x5 (also non-square), padding 0..=k per side (also more than k-1, where
/// whole output rows see only padding), C_in 1..=7, C_out 1..=16 (plus a
/// few up to 32), batch 1..=5, and groups.
#[test]
fn many_small_shapes() {
    let mut state = 12345u64;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize % n
    };
    let mut checked = 0;
    while checked < 120 {
        let (kh, kw) = (1 + next(5), 1 + next(5));
        let padding = [next(kh + 1), next(kh + 1), next(kw + 1), next(kw + 1)];
        let groups = [1, 1, 2, 3][next(4)];
        let c_in = groups * (1 + next(7 / groups));
        let c_out = groups * (1 + next(if checked % 10 == 0 { 32 } else { 16 } / groups));
        let (h, w) = (1 + next(9), 1 + next(20));
        let batch = 1 + next(5);
        let Ok(p) = Conv2dParams::new(
            "test",
            [batch, c_in, h, w],
            [c_out, c_in / groups, kh, kw],
            [1, 1],
            padding,
            [1, 1],
            groups,
        ) else {
            continue; // the kernel does not fit the padded input
        };
        if p.is_pointwise() {
            continue; // the plain GEMM path
        }
        check_direct(&p);
        checked += 1;
    }
}

/// The rule: LeNet-sized channel counts take the direct path; strided,
/// dilated, pointwise and wide layers (VGG's) keep the GEMM path.
#[test]
fn dispatch_rule() {
    let suits = |x, w, stride, dilation| {
        let p = Conv2dParams::new("test", x, w, stride, [1; 4], dilation, 1).unwrap();
        direct::suits(&p)
    };
    let plain = ([1, 1], [1, 1]);
    assert!(suits([1, 1, 28, 28], [6, 1, 5, 5], plain.0, plain.1));
    assert!(suits([1, 6, 14, 14], [16, 6, 5, 5], plain.0, plain.1));
    assert!(suits([1, 32, 8, 8], [32, 32, 3, 3], plain.0, plain.1));
    assert!(!suits([1, 33, 8, 8], [6, 33, 3, 3], plain.0, plain.1));
    assert!(!suits([1, 6, 8, 8], [33, 6, 3, 3], plain.0, plain.1));
    assert!(!suits([1, 3, 8, 8], [64, 3, 3, 3], plain.0, plain.1));
    assert!(!suits([1, 3, 8, 8], [6, 3, 3, 3], [2, 1], [1, 1]));
    assert!(!suits([1, 3, 8, 8], [6, 3, 3, 3], [1, 1], [1, 2]));
    let pointwise = Conv2dParams::new(
        "test",
        [1, 3, 8, 8],
        [6, 3, 1, 1],
        [1, 1],
        [0; 4],
        [1, 1],
        1,
    );
    assert!(!direct::suits(&pointwise.unwrap()));
}

/// The public entry points give the same bits on 1, 2 and 3 threads (the
/// shapes are large enough to run on the pool), and agree with the GEMM path.
#[test]
fn same_bits_for_any_thread_count() {
    for p in [
        params([7, 6, 14, 14], [16, 6, 5, 5], [0; 4], 1),
        params([13, 1, 28, 28], [6, 1, 5, 5], [2; 4], 1),
        params([5, 4, 11, 9], [8, 2, 3, 4], [2, 0, 1, 3], 2),
        params([4, 16, 12, 21], [8, 16, 3, 3], [1; 4], 1), // padded layout
    ] {
        let (x_len, w_len, y_len) = (
            p.x_shape().iter().product(),
            p.w_shape().iter().product(),
            p.y_shape().iter().product(),
        );
        let (x, w, bias, dy) = (
            data(x_len, 21),
            data(w_len, 22),
            data(p.c_out, 23),
            data(y_len, 24),
        );
        let run = || {
            let mut y = vec![f32::NAN; y_len];
            let mut dx = vec![f32::NAN; x_len];
            let mut dw = vec![f32::NAN; w_len];
            let mut db = vec![f32::NAN; p.c_out];
            conv2d_forward(&p, &x, &w, Some(&bias), true, &mut y);
            conv2d_backward_input(&p, &w, &dy, &mut dx);
            conv2d_backward_weight(&p, &x, &dy, &mut dw, Some(&mut db));
            (y, dx, dw, db)
        };
        let before = threading::num_threads();
        let results: Vec<_> = [1, 2, 3]
            .iter()
            .map(|&t| {
                threading::set_num_threads(t).unwrap();
                run()
            })
            .collect();
        threading::set_num_threads(before).unwrap();
        for r in &results[1..] {
            assert!(r == &results[0], "thread counts disagree on {p:?}");
        }

        let (y, dx, dw, _) = &results[0];
        let mut y_gemm = vec![f32::NAN; y_len];
        forward::gemm_forward(&p, &x, &w, Some(&bias), true, &mut y_gemm);
        let mut dx_gemm = vec![f32::NAN; x_len];
        input_grad::gemm_input_grad(&p, &w, &dy, &mut dx_gemm);
        let mut dw_gemm = vec![f32::NAN; w_len];
        weight_grad::gemm_weight_grad(&p, &x, &dy, &mut dw_gemm, None);
        let widen = |v: &[f32]| v.iter().map(|t| *t as f64).collect::<Vec<_>>();
        assert_close(y, &widen(&y_gemm), p.k_size(), "forward vs gemm", &p);
        assert_close(
            dx,
            &widen(&dx_gemm),
            p.c_out * p.kh * p.kw,
            "dx vs gemm",
            &p,
        );
        assert_close(
            dw,
            &widen(&dw_gemm),
            p.batch * p.out_plane(),
            "dw vs gemm",
            &p,
        );
    }
}

/// The channel-vectorised forward and grad weight (16 output channels per group): pixel
/// counts that leave every remainder of its tiles and of the 8 x 8
/// transposes, padded and unpadded, groups, batch 1; and 8 channels per
/// group on the same shapes (not taken by it: the kernels along the pixels).
#[test]
fn channel_vectorised_shapes() {
    let mut checked = 0;
    for (c_out, groups) in [(16, 1), (32, 2), (8, 1), (32, 4)] {
        for out_w in 1..=11usize {
            for (kh, kw, padding) in [
                (5usize, 5usize, [0usize; 4]),
                (3, 2, [1, 0, 2, 1]),
                (1, 3, [0, 2, 0, 0]),
            ] {
                let c_in = groups * (1 + out_w % 3);
                let Some(w @ 1..) = (out_w + kw - 1).checked_sub(padding[2] + padding[3]) else {
                    continue;
                };
                let h = 1 + out_w % 4 + kh - 1;
                let batch = 1 + out_w % 2;
                let p = params(
                    [batch, c_in, h, w],
                    [c_out, c_in / groups, kh, kw],
                    padding,
                    groups,
                );
                assert_eq!(p.out_w, out_w);
                check_direct(&p);
                checked += 1;
            }
        }
    }
    assert!(checked > 110, "only {checked} shapes");
}

/// Both layouts on shapes that take them (the padded one where the shifted
/// planes of an image would not stay in L1): with odd widths, asymmetric
/// padding, groups and batch 1.
#[test]
fn both_layouts() {
    let shifted = |p: &Conv2dParams| direct::Flat::new(p).shifted;
    let lenet2 = params([1, 6, 14, 14], [16, 6, 5, 5], [0; 4], 1);
    assert!(shifted(&lenet2));
    assert!(shifted(&params([2, 1, 28, 28], [6, 1, 5, 5], [2; 4], 1)));
    for p in [
        params([2, 16, 12, 21], [8, 16, 3, 3], [1; 4], 1),
        params([1, 32, 12, 13], [6, 16, 4, 3], [2, 0, 1, 3], 2),
        params([3, 32, 16, 16], [16, 32, 3, 3], [1; 4], 1),
        params([1, 20, 11, 30], [32, 20, 3, 5], [0, 1, 0, 2], 1),
    ] {
        assert!(!shifted(&p), "{p:?} should take the padded layout");
        check_direct(&p);
    }
    check_direct(&lenet2);
    // Wider than the AVX2 grad-input unshift takes (kw > 8): the portable one.
    let wide = params([2, 3, 5, 12], [4, 3, 2, 9], [0, 1, 3, 2], 1);
    assert!(shifted(&wide));
    check_direct(&wide);
}
