//! Unit tests of the GEMM: packing layouts, edge tiles, transposed views,
//! SIMD vs portable agreement, epilogue, thread-count independence.

use super::blocking::{MR, NR};
use super::pack::{pack_a, PackB};
use super::*;

fn naive(a: MatRef, b: MatRef) -> Vec<f64> {
    let mut out = vec![0.0; a.rows * b.cols];
    for i in 0..a.rows {
        for j in 0..b.cols {
            out[i * b.cols + j] = (0..a.cols)
                .map(|p| a.at(i, p) as f64 * b.at(p, j) as f64)
                .sum();
        }
    }
    out
}

/// Deterministic pseudo-random values in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn assert_close(got: &[f32], want: &[f64], k: usize) {
    let tol = 1e-5 * (k as f64).sqrt().max(1.0) * 4.0;
    for (idx, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= tol * (1.0 + w.abs()),
            "element {idx}: got {g}, want {w}"
        );
    }
}

#[test]
fn pack_b_layout_matches_the_documented_one() {
    let (k, n) = (30, 37);
    let data = values(k * n, 1);
    for b in [
        MatRef::row_major(&data, k, n),
        MatRef::row_major(&data, n, k).t(),
    ] {
        let (k0, kc, j0, nc): (usize, usize, usize, usize) = (1, 27, 2, 35);
        let strips = nc.div_ceil(NR);
        let mut out = vec![f32::NAN; strips * kc * NR];
        b.pack(k0, kc, j0, nc, &mut out);
        for s in 0..strips {
            for p in 0..kc {
                for jj in 0..NR {
                    let want = if s * NR + jj < nc {
                        b.at(k0 + p, j0 + s * NR + jj)
                    } else {
                        0.0
                    };
                    assert_eq!(out[s * kc * NR + p * NR + jj], want);
                }
            }
        }
    }
}

#[test]
fn pack_a_layout_matches_the_documented_one() {
    let (m, k) = (17, 9);
    let data = values(m * k, 2);
    for a in [
        MatRef::row_major(&data, m, k),
        MatRef::row_major(&data, k, m).t(),
    ] {
        let (i0, mc, k0, kc): (usize, usize, usize, usize) = (2, 14, 3, 5);
        let strips = mc.div_ceil(MR);
        let mut out = vec![f32::NAN; strips * kc * MR];
        pack_a(&a, i0, mc, k0, kc, &mut out);
        for s in 0..strips {
            for p in 0..kc {
                for r in 0..MR {
                    let want = if s * MR + r < mc {
                        a.at(i0 + s * MR + r, k0 + p)
                    } else {
                        0.0
                    };
                    assert_eq!(out[s * kc * MR + p * MR + r], want);
                }
            }
        }
    }
}

/// Runs gemm on all four transpose combinations and checks against float64.
fn check_shape(m: usize, n: usize, k: usize, parallel: bool) {
    let a_data = values(m * k, (m * 31 + k) as u64);
    let b_data = values(k * n, (n * 17 + k) as u64);
    let a_views = [
        MatRef::row_major(&a_data, m, k),
        MatRef::row_major(&a_data, k, m).t(),
    ];
    let b_views = [
        MatRef::row_major(&b_data, k, n),
        MatRef::row_major(&b_data, n, k).t(),
    ];
    for a in a_views {
        for b in b_views {
            let mut c = vec![f32::NAN; m * n];
            gemm_ex(1.0, a, &b, 0.0, &mut c, n, &Epilogue::NONE, parallel);
            assert_close(&c, &naive(a, b), k);
        }
    }
}

#[test]
fn edge_tiles_and_odd_shapes_match_reference() {
    for &(m, n, k) in &[
        (1, 1, 1),
        (1, 37, 5),
        (37, 1, 5),
        (5, 7, 1),
        (MR, NR, 4),
        (MR + 1, NR + 1, 9),
        (MR - 1, NR - 1, 3),
        (13, 33, 257),
        (150, 20, 300),
        (7, 4100, 3),
        (150, 200, 300),
        (25, 33, 600),
    ] {
        check_shape(m, n, k, false);
        check_shape(m, n, k, true);
    }
}

/// Both paths (packed and direct), both kernels, serial and parallel, on
/// shapes that exercise every edge.
#[test]
fn packed_and_direct_paths_match_reference() {
    let mut kernels = vec![tile::Kernels::portable()];
    #[cfg(target_arch = "x86_64")]
    kernels.push(tile::Kernels::avx2());
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::simd::cpu_has_avx512f() {
        kernels.push(tile::Kernels::avx512());
    }
    for &(m, n, k) in &[
        (1, 1, 1),
        (7, 17, 9),
        (13, 35, 300),
        (40, 50, 600),
        (150, 3, 20),
    ] {
        let a_data = values(m * k, 14);
        let b_data = values(k * n, 15);
        for a in [
            MatRef::row_major(&a_data, m, k),
            MatRef::row_major(&a_data, k, m).t(),
        ] {
            for b in [
                MatRef::row_major(&b_data, k, n),
                MatRef::row_major(&b_data, n, k).t(),
            ] {
                let want = naive(a, b);
                for &kernel in &kernels {
                    for parallel in [false, true] {
                        let mut c = vec![f32::NAN; m * n];
                        driver::run(
                            1.0,
                            a,
                            &b,
                            0.0,
                            &mut c,
                            n,
                            &Epilogue::NONE,
                            parallel,
                            kernel,
                        );
                        assert_close(&c, &want, k);
                        let mut c = vec![f32::NAN; m * n];
                        direct::run(1.0, a, b, 0.0, &mut c, n, &Epilogue::NONE, parallel, kernel);
                        assert_close(&c, &want, k);
                    }
                }
            }
        }
    }
}

/// The row-by-row path for fewer than MR rows, both B layouts, with an
/// epilogue, serial and parallel (n above one task's columns).
#[test]
fn thin_path_matches_reference() {
    for &(m, n, k) in &[(1, 1, 1), (1, 300, 7), (5, 33, 130), (3, 1000, 401)] {
        let a_data = values(m * k, 16);
        let b_data = values(k * n, 17);
        let bias = values(m, 18);
        let a = MatRef::row_major(&a_data, m, k);
        for b in [
            MatRef::row_major(&b_data, k, n),
            MatRef::row_major(&b_data, n, k).t(),
        ] {
            let ab = naive(a, b);
            let c0 = values(m * n, 19);
            let mut results = Vec::new();
            for parallel in [false, true] {
                let mut c = c0.clone();
                let epilogue = Epilogue {
                    row_bias: Some(&bias),
                    relu: true,
                };
                thin::run(0.5, a, b, 2.0, &mut c, n, &epilogue, parallel);
                for (idx, &got) in c.iter().enumerate() {
                    let want =
                        (0.5 * ab[idx] + 2.0 * c0[idx] as f64 + bias[idx / n] as f64).max(0.0);
                    assert!(
                        (got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "{got} vs {want}"
                    );
                }
                results.push(c);
            }
            assert!(results[0]
                .iter()
                .zip(&results[1])
                .all(|(x, y)| x.to_bits() == y.to_bits()));
        }
    }
}

#[test]
fn serial_and_parallel_are_bitwise_equal() {
    let (m, n, k) = (157, 203, 531);
    let a_data = values(m * k, 3);
    let b_data = values(k * n, 4);
    let a = MatRef::row_major(&a_data, m, k);
    let b = MatRef::row_major(&b_data, k, n);
    let mut serial = vec![0.0; m * n];
    let mut parallel = vec![0.0; m * n];
    gemm_serial(1.0, a, b, 0.0, &mut serial, n);
    gemm(1.0, a, b, 0.0, &mut parallel, n);
    assert!(serial
        .iter()
        .zip(&parallel)
        .all(|(x, y)| x.to_bits() == y.to_bits()));
}

#[test]
fn alpha_beta_ldc_and_epilogue() {
    // Direct path with narrow edges; direct and packed paths with full-width
    // bottom-edge tiles (m = 6q + 4, n a multiple of NR), which the AVX2 edge
    // kernels compute in C itself.
    for (m, n, k, ldc) in [(9, 19, 300, 23), (64, 48, 70, 50), (100, 160, 600, 170)] {
        check_alpha_beta_ldc_and_epilogue(m, n, k, ldc);
    }
}

fn check_alpha_beta_ldc_and_epilogue(m: usize, n: usize, k: usize, ldc: usize) {
    let a_data = values(m * k, 5);
    let b_data = values(k * n, 6);
    let bias = values(m, 7);
    let a = MatRef::row_major(&a_data, m, k);
    let b = MatRef::row_major(&b_data, k, n);
    let c0 = values(m * ldc, 8);
    let (alpha, beta) = (0.5f32, -1.5f32);
    for relu in [false, true] {
        let mut c = c0.clone();
        let epilogue = Epilogue {
            row_bias: Some(&bias),
            relu,
        };
        gemm_ex(alpha, a, &b, beta, &mut c, ldc, &epilogue, true);
        let ab = naive(a, b);
        for i in 0..m {
            for j in 0..ldc {
                let got = c[i * ldc + j] as f64;
                if j >= n {
                    assert_eq!(got as f32, c0[i * ldc + j], "padding column written");
                    continue;
                }
                let mut want = alpha as f64 * ab[i * n + j]
                    + beta as f64 * c0[i * ldc + j] as f64
                    + bias[i] as f64;
                if relu {
                    want = want.max(0.0);
                }
                assert!(
                    (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                    "({i},{j}): {got} vs {want}"
                );
            }
        }
    }
}

#[test]
fn zero_alpha_or_empty_k_scales_c() {
    let (m, n) = (3, 4);
    let nan = vec![f32::NAN; m * 2];
    let b_data = vec![1.0; 2 * n];
    let mut c = vec![2.0; m * n];
    gemm(
        0.0,
        MatRef::row_major(&nan, m, 2),
        MatRef::row_major(&b_data, 2, n),
        0.5,
        &mut c,
        n,
    );
    assert!(c.iter().all(|&v| v == 1.0));
    let mut c = vec![f32::NAN; m * n];
    let empty: [f32; 0] = [];
    gemm(
        1.0,
        MatRef::row_major(&empty, m, 0),
        MatRef::row_major(&empty, 0, n),
        0.0,
        &mut c,
        n,
    );
    assert!(c.iter().all(|&v| v == 0.0));
}

#[cfg(target_arch = "x86_64")]
#[test]
fn simd_and_portable_kernels_agree() {
    assert!(
        crate::kernels::simd::cpu_has_avx2_fma(),
        "this test needs an AVX2+FMA CPU"
    );
    let kc = 37;
    let a = values(kc * MR, 9);
    let b = values(kc * NR, 10);
    let c0 = values(MR * NR, 11);
    let bias: [f32; MR] = std::array::from_fn(|r| r as f32 - 2.5);
    let update = tile::TileUpdate {
        alpha: 1.25,
        beta: 0.75,
        relu: true,
    };
    let mut simd = c0.clone();
    let mut portable = c0.clone();
    let a_operand = tile::AOperand::packed(&a);
    // SAFETY: the CPU has AVX2+FMA; buffers have the documented sizes.
    unsafe {
        avx2::kernel_6x16(
            kc,
            &a_operand,
            b.as_ptr(),
            NR,
            simd.as_mut_ptr(),
            NR,
            &update,
            Some(&bias),
        );
        portable::kernel_6x16(
            kc,
            &a_operand,
            b.as_ptr(),
            NR,
            portable.as_mut_ptr(),
            NR,
            &update,
            Some(&bias),
        );
    }
    for (x, y) in simd.iter().zip(&portable) {
        assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{x} vs {y}");
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn simd_and_portable_drivers_agree() {
    assert!(crate::kernels::simd::cpu_has_avx2_fma());
    let (m, n, k) = (29, 45, 600);
    let a_data = values(m * k, 12);
    let b_data = values(k * n, 13);
    let a = MatRef::row_major(&a_data, m, k);
    let b = MatRef::row_major(&b_data, n, k).t();
    let run = |kernel: tile::Kernels| {
        let mut c = vec![f32::NAN; m * n];
        driver::run(1.0, a, &b, 0.0, &mut c, n, &Epilogue::NONE, true, kernel);
        c
    };
    let simd = run(tile::Kernels::avx2());
    let portable = run(tile::Kernels::portable());
    assert_close(&simd, &naive(a, b), k);
    assert_close(&portable, &naive(a, b), k);
    for (x, y) in simd.iter().zip(&portable) {
        assert!((x - y).abs() <= 1e-4 * (1.0 + x.abs()), "{x} vs {y}");
    }
}

/// The AVX-512 pair kernel gives bitwise the AVX2 kernel's results, with
/// alpha, beta, ldc, bias, ReLU and a NaN, on products whose strips pair up
/// and on ones with an odd strip, a narrow right edge and a bottom edge, on
/// the packed and the direct path, serial and parallel.
/// Prints a note and checks nothing more on a CPU without AVX-512.
#[cfg(target_arch = "x86_64")]
#[test]
fn avx512_pair_kernel_gives_the_avx2_bits() {
    if !crate::kernels::simd::cpu_has_avx512f() {
        eprintln!("avx512_pair_kernel_gives_the_avx2_bits: no AVX-512F on this CPU, not run");
        return;
    }
    for (m, n, k, ldc) in [
        (12, 64, 40, 64),
        (100, 160, 600, 170),
        (31, 3 * NR, 130, 50),
        (29, 5 * NR + 7, 700, 90),
        (7, 3 * NR + 5, 60, 60),
    ] {
        for relu in [false, true] {
            for parallel in [false, true] {
                for packed in [true, false] {
                    check_avx512_bits(m, n, k, ldc, relu, parallel, packed);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn check_avx512_bits(
    m: usize,
    n: usize,
    k: usize,
    ldc: usize,
    relu: bool,
    parallel: bool,
    packed: bool,
) {
    let mut a_data = values(m * k, 30);
    a_data[k + 3] = f32::NAN; // row 1 of C becomes NaN, ReLU or not
    let b_data = values(k * n, 31);
    let bias = values(m, 32);
    let c0 = values(m * ldc, 33);
    let a = MatRef::row_major(&a_data, m, k);
    let b = MatRef::row_major(&b_data, k, n);
    let epilogue = Epilogue {
        row_bias: Some(&bias),
        relu,
    };
    let run = |kernels: tile::Kernels| {
        let mut c = c0.clone();
        if packed {
            driver::run(0.5, a, &b, -1.5, &mut c, ldc, &epilogue, parallel, kernels);
        } else {
            direct::run(0.5, a, b, -1.5, &mut c, ldc, &epilogue, parallel, kernels);
        }
        c
    };
    let (avx2, avx512) = (run(tile::Kernels::avx2()), run(tile::Kernels::avx512()));
    let what = format!("{m}x{n}x{k}, relu {relu}, parallel {parallel}, packed {packed}");
    assert!(avx512[ldc].is_nan(), "{what}: NaN lost");
    for (idx, (x, y)) in avx2.iter().zip(&avx512).enumerate() {
        assert_eq!(x.to_bits(), y.to_bits(), "{what} at {idx}: {x} vs {y}");
    }
    let plain = naive(a, b);
    let (i, j) = (m - 1, n - 1);
    let want = 0.5 * plain[i * n + j] - 1.5 * c0[i * ldc + j] as f64 + bias[i] as f64;
    let want = if relu { want.max(0.0) } else { want };
    let got = avx512[i * ldc + j] as f64;
    assert!(
        (got - want).abs() < 1e-4 * (1.0 + want.abs()),
        "{what}: {got} vs {want}"
    );
}

/// Not a test: `cargo test --profile dev-opt --lib timing_breakdown -- --ignored --nocapture`
/// prints the best-of-many time of the packing routines and of the whole call.
#[test]
#[ignore]
fn timing_breakdown() {
    use std::time::Instant;
    fn best(reps: usize, mut f: impl FnMut()) -> f64 {
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
            * 1e6
    }
    for n in [64usize, 256, 512, 1024] {
        let a_data = values(n * n, 1);
        let b_data = values(n * n, 2);
        let a = MatRef::row_major(&a_data, n, n);
        let b = MatRef::row_major(&b_data, n, n);
        let kc = n.min(256);
        let mut pa = vec![0.0; n.div_ceil(MR) * kc * MR];
        let mut pb = vec![0.0; n.div_ceil(NR) * kc * NR];
        let mut c = vec![0.0; n * n];
        let reps = (2e8 / (n * n * n) as f64) as usize + 5;
        let t_pa = best(reps, || pack_a(&a, 0, n, 0, kc, &mut pa));
        let t_pb = best(reps, || b.pack(0, kc, 0, n, &mut pb));
        let t_pat = best(reps, || pack_a(&b.t(), 0, n, 0, kc, &mut pa));
        let t_pbt = best(reps, || a.t().pack(0, kc, 0, n, &mut pb));
        let t_all = best(reps, || gemm_serial(1.0, a, b, 0.0, &mut c, n));
        let gf = 2.0 * (n * n * n) as f64 / t_all / 1e3;
        println!(
            "n={n} kc={kc}: pack_a {t_pa:.2}us (A^T {t_pat:.2}) pack_b {t_pb:.2}us (B^T {t_pbt:.2}) gemm {t_all:.2}us = {gf:.1} GF/s"
        );
    }
}

/// Every AVX2 edge kernel gives bitwise the same values as the full kernel on
/// the part of the tile it computes, and leaves the rest alone.
#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_edge_kernels_match_the_full_kernel() {
    assert!(crate::kernels::simd::cpu_has_avx2_fma());
    let kc = 29;
    let a = values(kc * MR, 20);
    let b = values(kc * NR, 21);
    let c0 = values(MR * NR, 22);
    let bias: [f32; MR] = std::array::from_fn(|r| 0.5 - r as f32);
    let update = tile::TileUpdate {
        alpha: 0.75,
        beta: 1.5,
        relu: true,
    };
    let a_operand = tile::AOperand::packed(&a);
    let kernels = tile::Kernels::avx2();
    let mut full = c0.clone();
    // SAFETY: AVX2+FMA present; buffers sized MR x NR and kc x MR / kc x NR.
    unsafe {
        (kernels.full)(
            kc,
            &a_operand,
            b.as_ptr(),
            NR,
            full.as_mut_ptr(),
            NR,
            &update,
            Some(&bias),
        );
    }
    for mr in 1..=MR {
        for (v, width) in [(0, NR / 2), (1, NR)] {
            let mut edge = c0.clone();
            // SAFETY: as above.
            unsafe {
                (kernels.edge[mr - 1][v])(
                    kc,
                    &a_operand,
                    b.as_ptr(),
                    NR,
                    edge.as_mut_ptr(),
                    NR,
                    &update,
                    Some(&bias),
                );
            }
            for r in 0..MR {
                for j in 0..NR {
                    let want = if r < mr && j < width {
                        full[r * NR + j]
                    } else {
                        c0[r * NR + j]
                    };
                    assert_eq!(
                        edge[r * NR + j].to_bits(),
                        want.to_bits(),
                        "mr={mr} width={width} ({r},{j})"
                    );
                }
            }
        }
    }
}

/// A B matrix that is not a `MatRef` (as convolution's implicit im2col is
/// not): always takes the packed path, whatever the shape.
struct Opaque<'a>(MatRef<'a>);

impl PackB for Opaque<'_> {
    fn rows(&self) -> usize {
        self.0.rows
    }
    fn cols(&self) -> usize {
        self.0.cols
    }
    fn pack(&self, k0: usize, kc: usize, j0: usize, nc: usize, out: &mut [f32]) {
        self.0.pack(k0, kc, j0, nc, out);
    }
}

/// gemm_ex through a custom PackB: small and edge shapes, several K blocks
/// (bias and ReLU applied once, after the last), beta, a padded ldc, and the
/// same bits serial and parallel.
#[test]
fn custom_pack_b_with_epilogue() {
    for &(m, n, k) in &[(1, 1, 1), (5, 17, 3), (16, 40, 1100), (103, 301, 515)] {
        let ldc = n + 3;
        let a_data = values(m * k, 23);
        let b_data = values(k * n, 24);
        let bias = values(m, 25);
        let c0 = values(m * ldc, 26);
        let a = MatRef::row_major(&a_data, m, k);
        let b = MatRef::row_major(&b_data, n, k).t();
        let ab = naive(a, b);
        let epilogue = Epilogue {
            row_bias: Some(&bias),
            relu: true,
        };
        let mut results = Vec::new();
        for parallel in [false, true] {
            let mut c = c0.clone();
            gemm_ex(1.5, a, &Opaque(b), -0.5, &mut c, ldc, &epilogue, parallel);
            for i in 0..m {
                for j in 0..ldc {
                    let got = c[i * ldc + j];
                    if j >= n {
                        assert_eq!(got.to_bits(), c0[i * ldc + j].to_bits());
                        continue;
                    }
                    let want = (1.5 * ab[i * n + j] - 0.5 * c0[i * ldc + j] as f64
                        + bias[i] as f64)
                        .max(0.0);
                    let tol = 4e-5 * (k as f64).sqrt() * (1.0 + want.abs());
                    assert!(
                        (got as f64 - want).abs() <= tol,
                        "{m}x{n}x{k} ({i},{j}): {got} vs {want}"
                    );
                }
            }
            results.push(c);
        }
        assert!(results[0]
            .iter()
            .zip(&results[1])
            .all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}
