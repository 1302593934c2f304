//! The GEMM kernel's own speed, without the Python binding: one thread,
//! 64-byte aligned row-major operands, best of 7 timed rounds.
//!
//! `cargo run --release --example gemm_timing -- M K N` (`OFF=4` shifts the
//! operands by 4 floats off the alignment; `PARALLEL=1` times the pool's
//! product instead, on `CNNRS_NUM_THREADS` threads).

use cnnrs::kernels::gemm::{gemm, gemm_serial, MatRef};
use std::time::Instant;

fn main() {
    let dims: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().expect("M K N as integers"))
        .collect();
    let [m, k, n] = dims[..] else {
        eprintln!("usage: gemm_timing M K N");
        std::process::exit(2);
    };
    let off: usize = std::env::var("OFF").map_or(0, |s| s.parse().expect("OFF as an integer"));
    let product = if std::env::var("PARALLEL").is_ok_and(|v| v == "1") {
        gemm
    } else {
        gemm_serial
    };
    let mut a_buf = vec![0f32; m * k + 32];
    let mut b_buf = vec![0f32; k * n + 32];
    let mut c_buf = vec![0f32; m * n + 32];
    let start = |v: &Vec<f32>| v.as_ptr().align_offset(64) + off;
    let (a0, b0, c0) = (start(&a_buf), start(&b_buf), start(&c_buf));
    let a = &mut a_buf[a0..a0 + m * k];
    a.iter_mut()
        .enumerate()
        .for_each(|(i, x)| *x = (i % 7) as f32 * 0.1);
    let b = &mut b_buf[b0..b0 + k * n];
    b.iter_mut()
        .enumerate()
        .for_each(|(i, x)| *x = (i % 5) as f32 * 0.1);
    let (a, b) = (&*a, &*b);
    let c = &mut c_buf[c0..c0 + m * n];
    let flops = 2.0 * (m * n * k) as f64;
    // About 2 GFLOP per round.
    let reps = (2e9 / flops) as usize + 1;
    let mut best = f64::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..reps {
            product(
                1.0,
                MatRef::row_major(a, m, k),
                MatRef::row_major(b, k, n),
                0.0,
                c,
                n,
            );
            std::hint::black_box(&mut *c);
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    println!(
        "{m}x{k}x{n}: {:.2} us, {:.1} GFLOP/s",
        best * 1e6,
        flops / best / 1e9
    );
}
