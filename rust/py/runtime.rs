//! Thread count and SIMD path controls.

use pyo3::prelude::*;

use crate::error::KernelError;
use crate::kernels::simd;
use crate::threading;

/// Sets the number of threads every kernel uses (1 ..= threading::MAX_THREADS).
#[pyfunction]
pub fn set_num_threads(n: i64) -> PyResult<()> {
    let max = threading::MAX_THREADS;
    if n < 1 || n > max as i64 {
        return Err(KernelError::Argument(format!(
            "set_num_threads: n must be between 1 and {max}, got {n}"
        ))
        .into());
    }
    threading::set_num_threads(n as usize).map_err(|e| {
        KernelError::Argument(format!(
            "set_num_threads: cannot start {n} threads ({e}); the previous pool stays"
        ))
        .into()
    })
}

#[pyfunction]
pub fn get_num_threads() -> usize {
    threading::num_threads()
}

/// Forces the portable (non-SIMD) kernels when True; for testing and comparison.
#[pyfunction]
pub fn set_force_fallback(force: bool) {
    simd::set_force_fallback(force);
}

#[pyfunction]
pub fn get_force_fallback() -> bool {
    simd::force_fallback()
}

/// Turns the Winograd F(2x2, 3x3) convolution for 3x3 stride-1 layers with 64+
/// channels on (the default) or off (every layer then takes the im2col GEMM).
#[pyfunction]
pub fn set_winograd(enabled: bool) {
    crate::kernels::conv::set_winograd_enabled(enabled);
}

#[pyfunction]
pub fn get_winograd() -> bool {
    crate::kernels::conv::winograd_enabled()
}

/// The kernel path in use now: "avx512+avx2+fma" (AVX2 kernels, AVX-512 in
/// the GEMM), "avx2+fma" or "portable".
#[pyfunction]
pub fn simd_path() -> &'static str {
    if simd::use_avx512() {
        "avx512+avx2+fma"
    } else if simd::use_avx2_fma() {
        "avx2+fma"
    } else {
        "portable"
    }
}
