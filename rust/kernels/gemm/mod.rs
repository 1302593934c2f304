//! Single-precision matrix multiply: C = alpha * A * B + beta * C, then an
//! optional epilogue (bias per row of C, ReLU).
//!
//! CONTRACT (other kernels and the bindings rely on it):
//! - `gemm` may run on the cnnrs pool; `gemm_serial` never spawns work, for
//!   callers that already parallelise an outer loop (no nested `par_iter`).
//! - `beta == 0.0` overwrites C without reading it (BLAS semantics); so does
//!   `alpha == 0.0 || k == 0` skip A and B (C = beta * C).
//! - Results are bit-identical for any thread count, and `gemm` == `gemm_serial`
//!   bitwise: the k-reduction of every C element runs on one thread, over K
//!   blocks whose boundaries depend on k alone (see `blocking`).
//! - The AVX2+FMA and the portable path agree within float32 rounding.
//!
//! Structure (BLIS/Goto, `driver`): for each NC-column panel of B and each
//! KC-deep block of K (in increasing k), B is packed into NR-wide strips
//! (`PackB`) and A into MR-high strips (at most MB rows at a time), both in
//! parallel; then the C tiles are computed as many small tasks (MC rows x a
//! run of strips) by the MR x NR register-blocked micro-kernel (`avx2`, or
//! `portable` when AVX2+FMA is missing or forced off), with narrower kernels
//! for the edge tiles (`tile`).
//!
//! Shapes where packing costs more than it saves, when B is a plain
//! [`MatRef`]: fewer than MR rows run row by row (`thin`); small products, few
//! rows with a short k, or few columns read A and B in place (`direct`). The
//! choice depends on the shape alone, never on the thread count.
//!
//! Files: `blocking` (block sizes, thresholds), `pack` (packed layouts,
//! `PackB`), `driver` (the packed path, threads, buffers), `direct`, `thin`,
//! `tile` (operands, kernel choice, edge tiles), `avx2` and `portable`
//! (micro-kernels).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod blocking;
mod direct;
mod driver;
mod pack;
mod portable;
mod thin;
mod tile;

#[cfg(test)]
mod tests;

pub use blocking::{MR, NR};
pub use pack::{pack_transposed_strip, PackB};

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

    /// Whether every element the view addresses lies inside `data`.
    fn in_bounds(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1)
            .checked_mul(self.row_stride)
            .zip((self.cols - 1).checked_mul(self.col_stride))
            .and_then(|(r, c)| r.checked_add(c));
        matches!(last, Some(l) if l < self.data.len())
    }
}

/// What happens to C once its k-reduction is complete: `c += row_bias[i]` for
/// every element of row `i`, then `c = max(c, 0)` if `relu` (NaN stays NaN).
/// Lets convolution fuse its bias and activation into the GEMM's last pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// One value per row of C (at least `m` values).
    pub row_bias: Option<&'a [f32]>,
    pub relu: bool,
}

impl Epilogue<'_> {
    /// No bias, no activation.
    pub const NONE: Epilogue<'static> = Epilogue {
        row_bias: None,
        relu: false,
    };
}

/// C (`a.rows x b.cols`, row stride `ldc`) = alpha * A * B + beta * C, possibly multithreaded.
pub fn gemm(alpha: f32, a: MatRef, b: MatRef, beta: f32, c: &mut [f32], ldc: usize) {
    gemm_ex(alpha, a, &b, beta, c, ldc, &Epilogue::NONE, true);
}

/// Same as [`gemm`], on the calling thread only.
pub fn gemm_serial(alpha: f32, a: MatRef, b: MatRef, beta: f32, c: &mut [f32], ldc: usize) {
    gemm_ex(alpha, a, &b, beta, c, ldc, &Epilogue::NONE, false);
}

/// The general entry point: C (`a.rows x b.cols()`, row stride `ldc`) =
/// epilogue(alpha * A * B + beta * C), where B is anything that can pack itself
/// into the micro-kernel's layout (a [`MatRef`], or an implicit im2col matrix).
///
/// `parallel` allows the cnnrs pool (above `PARALLEL_MIN_FLOPS`); with `false`
/// the call never leaves the calling thread. The result is the same bitwise.
///
/// Panics (a caller bug, checked by the bindings before) if the shapes disagree,
/// `ldc < n`, `c` is too short, a view reaches past its data, or the bias has
/// fewer than `m` values.
#[allow(clippy::too_many_arguments)]
pub fn gemm_ex<B: PackB + ?Sized>(
    alpha: f32,
    a: MatRef,
    b: &B,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
    epilogue: &Epilogue,
    parallel: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols());
    assert_eq!(
        b.rows(),
        k,
        "gemm: inner dimensions differ: A is {m}x{k}, B is {}x{n}",
        b.rows()
    );
    if m == 0 || n == 0 {
        return;
    }
    assert!(ldc >= n, "gemm: ldc={ldc} < n={n}");
    let c_needed = (m - 1).saturating_mul(ldc).saturating_add(n);
    assert!(
        c.len() >= c_needed,
        "gemm: C has {} elements, {m}x{n} with ldc={ldc} needs {c_needed}",
        c.len(),
    );
    assert!(a.in_bounds(), "gemm: the view of A reaches past its data");
    if let Some(bias) = epilogue.row_bias {
        assert!(
            bias.len() >= m,
            "gemm: row_bias has {} values, C has {m} rows",
            bias.len()
        );
    }
    if k == 0 || alpha == 0.0 {
        driver::scale_only(beta, c, m, n, ldc, epilogue);
        return;
    }
    let kernels = tile::Kernels::select();
    if let Some(b) = b.as_matref().filter(|b| thin::suits(m, b)) {
        assert!(b.in_bounds(), "gemm: the view of B reaches past its data");
        thin::run(alpha, a, b, beta, c, ldc, epilogue, parallel);
        return;
    }
    if let Some(b) = b.as_matref().filter(|_| direct::suits(m, n, k)) {
        assert!(b.in_bounds(), "gemm: the view of B reaches past its data");
        direct::run(alpha, a, b, beta, c, ldc, epilogue, parallel, kernels);
        return;
    }
    driver::run(alpha, a, b, beta, c, ldc, epilogue, parallel, kernels);
}
