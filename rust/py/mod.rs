//! PyO3 bindings only: numpy in, numpy out, GIL released around every kernel,
//! every invalid argument turned into a `cnnrs.errors` exception.

mod activation;
mod arrays;
mod conv;
mod errors;
mod linalg;
mod norm;
mod optim;
mod pool;
mod runtime;

use pyo3::prelude::*;

#[pymodule]
fn _cnnrs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(linalg::gemm, m)?)?;
    m.add_function(wrap_pyfunction!(conv::conv2d_forward, m)?)?;
    m.add_function(wrap_pyfunction!(conv::conv2d_backward, m)?)?;
    m.add_function(wrap_pyfunction!(pool::max_pool2d_forward, m)?)?;
    m.add_function(wrap_pyfunction!(pool::max_pool2d_backward, m)?)?;
    m.add_function(wrap_pyfunction!(pool::avg_pool2d_forward, m)?)?;
    m.add_function(wrap_pyfunction!(pool::avg_pool2d_backward, m)?)?;
    m.add_function(wrap_pyfunction!(activation::relu_forward, m)?)?;
    m.add_function(wrap_pyfunction!(activation::relu_backward, m)?)?;
    m.add_function(wrap_pyfunction!(activation::bias_add_, m)?)?;
    m.add_function(wrap_pyfunction!(activation::cross_entropy, m)?)?;
    m.add_function(wrap_pyfunction!(norm::batch_norm_forward, m)?)?;
    m.add_function(wrap_pyfunction!(norm::batch_norm_backward, m)?)?;
    m.add_function(wrap_pyfunction!(optim::sgd_step, m)?)?;
    m.add_function(wrap_pyfunction!(optim::adam_step, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::set_force_fallback, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::get_force_fallback, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::set_winograd, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::get_winograd, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::simd_path, m)?)?;
    Ok(())
}
