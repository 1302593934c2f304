//! Products with fewer than MR rows (a batch of one through Linear, say):
//! the 6-row micro-kernel would waste most of its work and walk B across
//! rows, so each row of C is computed on its own, reading B in its storage
//! order: as `acc += a[p] * B[p, :]` row by row when B's rows are contiguous,
//! as dot products with B's columns when its columns are (a transposed view).
//!
//! Every C element is summed in a fixed order by one task (tasks split the
//! columns), and both the SIMD and the portable builds of the loops use the
//! same separate multiply and add, so the results are bitwise the same for
//! any thread count and either path.

use rayon::prelude::*;

use super::blocking::MR;
use super::driver::{with_buffer, worth_parallel, CPtr, EDGE_BUF};
use super::{Epilogue, MatRef};
use crate::threading;

/// Lanes of the dot-product accumulators (two ymm).
const LANES: usize = 16;
/// Columns per parallel task: a multiple of 16 large enough to amortise the task.
const COLS_PER_TASK: usize = 256;

/// Whether this path takes the product.
pub fn suits(m: usize, b: &MatRef) -> bool {
    m < MR && (b.col_stride == 1 || b.row_stride == 1)
}

/// C = epilogue(alpha * A * B + beta * C); arguments validated by `gemm_ex`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    alpha: f32,
    a: MatRef,
    b: MatRef,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
    epilogue: &Epilogue,
    parallel: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let c = CPtr(c.as_mut_ptr());
    let simd = crate::kernels::simd::use_avx2_fma();
    let columns = |j0: usize, j1: usize| {
        with_buffer(&EDGE_BUF, (j1 - j0).max(k), |buf| {
            for i in 0..m {
                let bias = epilogue.row_bias.map_or(0.0, |v| v[i]);
                // SAFETY: row i, columns j0..j1 lie inside C (checked by
                // `gemm_ex`) and belong to this task alone.
                let c_row =
                    unsafe { std::slice::from_raw_parts_mut(c.get().add(i * ldc + j0), j1 - j0) };
                if b.col_stride == 1 {
                    let acc = &mut buf[..j1 - j0];
                    acc.fill(0.0);
                    let b_row = |p: usize| {
                        let start = p * b.row_stride + j0;
                        &b.data[start..start + (j1 - j0)]
                    };
                    // Four rows of B per pass over `acc` (a quarter of the
                    // traffic), still added in increasing p order.
                    let mut p = 0;
                    while p + 4 <= k {
                        let coef = [a.at(i, p), a.at(i, p + 1), a.at(i, p + 2), a.at(i, p + 3)];
                        let rows = [b_row(p), b_row(p + 1), b_row(p + 2), b_row(p + 3)];
                        axpy4(simd, coef, rows, acc);
                        p += 4;
                    }
                    for p in p..k {
                        for (s, &v) in acc.iter_mut().zip(b_row(p)) {
                            *s += a.at(i, p) * v;
                        }
                    }
                    for (cv, &acc_v) in c_row.iter_mut().zip(acc.iter()) {
                        *cv = finish(acc_v, *cv, alpha, beta, bias, epilogue.relu);
                    }
                } else {
                    let a_row = &mut buf[..k];
                    for (p, v) in a_row.iter_mut().enumerate() {
                        *v = a.at(i, p);
                    }
                    for (jj, cv) in c_row.iter_mut().enumerate() {
                        let start = (j0 + jj) * b.col_stride;
                        let dot = dot(simd, a_row, &b.data[start..start + k]);
                        *cv = finish(dot, *cv, alpha, beta, bias, epilogue.relu);
                    }
                }
            }
        });
    };
    if parallel && worth_parallel(m, n, k) && n > COLS_PER_TASK {
        threading::install(|| {
            (0..n.div_ceil(COLS_PER_TASK))
                .into_par_iter()
                .for_each(|t| {
                    let j0 = t * COLS_PER_TASK;
                    columns(j0, (j0 + COLS_PER_TASK).min(n));
                });
        });
    } else {
        columns(0, n);
    }
}

/// alpha * acc + beta * c (c unread when beta == 0), + bias, ReLU (NaN kept).
#[inline]
fn finish(acc: f32, c: f32, alpha: f32, beta: f32, bias: f32, relu: bool) -> f32 {
    let mut v = alpha * acc;
    if beta != 0.0 {
        v += beta * c;
    }
    v += bias;
    if relu && v < 0.0 {
        0.0
    } else {
        v
    }
}

fn axpy4(simd: bool, a: [f32; 4], x: [&[f32]; 4], acc: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is true only when the CPU has AVX2.
        return unsafe { axpy4_avx2(a, x, acc) };
    }
    let _ = simd;
    axpy4_generic(a, x, acc);
}

fn dot(simd: bool, x: &[f32], y: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is true only when the CPU has AVX2.
        return unsafe { dot_avx2(x, y) };
    }
    let _ = simd;
    dot_generic(x, y)
}

/// The same loops compiled for AVX2: wider vectors, the same arithmetic.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn axpy4_avx2(a: [f32; 4], x: [&[f32]; 4], acc: &mut [f32]) {
    axpy4_generic(a, x, acc);
}

/// `dot_generic` with explicit vectors (LLVM vectorised the generic loop with
/// 2-float pieces, 3x slower): lanes 0-7 and 8-15 in two registers, the same
/// separate multiply and add per lane, then the same tail and reduction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(x: &[f32], y: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let len = x.len().min(y.len());
    let full = len / LANES * LANES;
    let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for i in (0..full).step_by(LANES) {
        // SAFETY: i + LANES <= full <= len of both slices.
        let (xp, yp) = (x.as_ptr().add(i), y.as_ptr().add(i));
        lo = _mm256_add_ps(lo, _mm256_mul_ps(_mm256_loadu_ps(xp), _mm256_loadu_ps(yp)));
        hi = _mm256_add_ps(
            hi,
            _mm256_mul_ps(_mm256_loadu_ps(xp.add(8)), _mm256_loadu_ps(yp.add(8))),
        );
    }
    let mut lanes = [0.0f32; LANES];
    _mm256_storeu_ps(lanes.as_mut_ptr(), lo);
    _mm256_storeu_ps(lanes.as_mut_ptr().add(8), hi);
    finish_dot(lanes, &x[full..len], &y[full..len])
}

/// acc = (((acc + a0 x0) + a1 x1) + a2 x2) + a3 x3, element-wise: the same
/// roundings as four single-row updates in turn.
#[inline(always)]
fn axpy4_generic(a: [f32; 4], x: [&[f32]; 4], acc: &mut [f32]) {
    let len = acc.len();
    let (x0, x1, x2, x3) = (&x[0][..len], &x[1][..len], &x[2][..len], &x[3][..len]);
    for j in 0..len {
        acc[j] = acc[j] + a[0] * x0[j] + a[1] * x1[j] + a[2] * x2[j] + a[3] * x3[j];
    }
}

/// Dot product with LANES independent partial sums (so that it vectorises
/// without reassociating), added up in a fixed order at the end.
#[inline(always)]
fn dot_generic(x: &[f32], y: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (xc, yc) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    let (x_tail, y_tail) = (xc.remainder(), yc.remainder());
    for (xs, ys) in xc.zip(yc) {
        for l in 0..LANES {
            lanes[l] += xs[l] * ys[l];
        }
    }
    finish_dot(lanes, x_tail, y_tail)
}

/// The tail of a dot product (fewer than LANES products, into the first
/// lanes), then the lanes added pairwise in a fixed order.
#[inline(always)]
fn finish_dot(mut lanes: [f32; LANES], x_tail: &[f32], y_tail: &[f32]) -> f32 {
    for (l, (&xv, &yv)) in x_tail.iter().zip(y_tail).enumerate() {
        lanes[l] += xv * yv;
    }
    // Pairwise, in a fixed order.
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            lanes[l] += lanes[l + width];
        }
    }
    lanes[0]
}
