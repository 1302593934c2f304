//! Single-precision matrix multiply: C = alpha * A * B + beta * C.
//!
//! CONTRACT (other kernels and the bindings rely on it):
//! - `gemm` may run on the cnnrs pool; `gemm_serial` never spawns work, for
//!   callers that already parallelise an outer loop (no nested `par_iter`).
//! - `beta == 0.0` overwrites C without reading it (BLAS semantics).
//! - Results do not depend on the thread count.
//!
//! PLACEHOLDER: a straightforward row-parallel loop; the packed AVX2 kernel replaces it.

use rayon::prelude::*;

use crate::threading::{self, PARALLEL_MIN_FLOPS};

/// A read-only matrix view with arbitrary row and column strides: a transpose is
/// a stride swap, so no op ever copies a matrix just to transpose it.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows x cols` matrix stored densely in `data`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        debug_assert!(data.len() >= rows * cols);
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    #[inline(always)]
    pub fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
    }
}

/// C (`a.rows x b.cols`, row stride `ldc`) = alpha * A * B + beta * C, possibly multithreaded.
pub fn gemm(alpha: f32, a: MatRef, b: MatRef, beta: f32, c: &mut [f32], ldc: usize) {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    assert_eq!(b.rows, k, "gemm: inner dimensions differ");
    if m == 0 || n == 0 {
        return;
    }
    if 2 * m * n * k < PARALLEL_MIN_FLOPS || m == 1 {
        gemm_serial(alpha, a, b, beta, c, ldc);
        return;
    }
    threading::install(|| {
        c[..(m - 1) * ldc + n]
            .par_chunks_mut(ldc)
            .enumerate()
            .for_each(|(i, row)| gemm_row(alpha, a, b, beta, i, &mut row[..n]));
    });
}

/// Same as [`gemm`], on the calling thread only.
pub fn gemm_serial(alpha: f32, a: MatRef, b: MatRef, beta: f32, c: &mut [f32], ldc: usize) {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    assert_eq!(b.rows, k, "gemm: inner dimensions differ");
    for i in 0..m {
        gemm_row(alpha, a, b, beta, i, &mut c[i * ldc..i * ldc + n]);
    }
}

fn gemm_row(alpha: f32, a: MatRef, b: MatRef, beta: f32, i: usize, c_row: &mut [f32]) {
    for (j, c) in c_row.iter_mut().enumerate() {
        let mut acc = 0.0f32;
        for p in 0..a.cols {
            acc += a.at(i, p) * b.at(p, j);
        }
        *c = if beta == 0.0 {
            alpha * acc
        } else {
            alpha * acc + beta * *c
        };
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn transposed_views_match_reference() {
        let (m, n, k) = (7, 5, 9);
        let a: Vec<f32> = (0..m * k).map(|v| (v % 13) as f32 - 6.0).collect();
        let b: Vec<f32> = (0..k * n).map(|v| (v % 7) as f32 * 0.5).collect();
        let at = MatRef::row_major(&a, k, m).t(); // the same buffer read as A^T^T
        let mut c = vec![f32::NAN; m * n];
        gemm(1.0, at, MatRef::row_major(&b, k, n), 0.0, &mut c, n);
        let want = naive(at, MatRef::row_major(&b, k, n));
        for (x, y) in c.iter().zip(&want) {
            assert!((*x as f64 - y).abs() < 1e-4);
        }
    }
}
