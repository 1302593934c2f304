//! `gemm`: the matrix multiply behind Linear layers and `Tensor.matmul`.

use numpy::{PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::arrays::{f32_in, f32_inout, new_array};
use crate::error::{checked_product, KernelError};
use crate::kernels::elementwise;
use crate::kernels::gemm::{gemm as gemm_kernel, MatRef};

/// out = alpha * op(a) @ op(b) + beta * out, where op transposes when asked,
/// then `out[i, j] += bias[j]` and ReLU if asked (a Linear layer in one call).
/// Without `out`, a new (m, n) array is returned and beta must be 0.
#[pyfunction]
#[pyo3(signature = (a, b, trans_a=false, trans_b=false, alpha=1.0, beta=0.0, out=None, bias=None, relu=false))]
#[allow(clippy::too_many_arguments)]
pub fn gemm<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    trans_a: bool,
    trans_b: bool,
    alpha: f32,
    beta: f32,
    out: Option<&Bound<'py, PyAny>>,
    bias: Option<&Bound<'py, PyAny>>,
    relu: bool,
) -> PyResult<Bound<'py, PyAny>> {
    const OP: &str = "gemm";
    let a_arr = f32_in(OP, "a", a, Some(2))?;
    let b_arr = f32_in(OP, "b", b, Some(2))?;
    let (sa, sb) = (a_arr.shape().to_vec(), b_arr.shape().to_vec());
    let a_view = MatRef::row_major(a_arr.as_slice()?, sa[0], sa[1]);
    let b_view = MatRef::row_major(b_arr.as_slice()?, sb[0], sb[1]);
    let a_view = if trans_a { a_view.t() } else { a_view };
    let b_view = if trans_b { b_view.t() } else { b_view };
    let (m, k, n) = (a_view.rows, a_view.cols, b_view.cols);
    if b_view.rows != k {
        return Err(KernelError::Shape(format!(
            "{OP}: inner dimensions differ: op(a) is {m}x{k} (a {sa:?}, trans_a={trans_a}) but op(b) is {}x{n} (b {sb:?}, trans_b={trans_b})",
            b_view.rows
        ))
        .into());
    }
    checked_product(OP, "output", &[m, n])?;
    let bias_arr = bias.map(|b| f32_in(OP, "bias", b, Some(1))).transpose()?;
    if let Some(b) = &bias_arr {
        if b.shape() != [n] {
            return Err(KernelError::Shape(format!(
                "{OP}: bias has shape {:?} but the product has {n} columns (op(b) is {k}x{n}, b {sb:?})",
                b.shape()
            ))
            .into());
        }
    }
    // `out` is validated and borrowed for writing once; a new output array
    // cannot be borrowed by anyone else yet.
    let (out_arr, mut rw) = match out {
        Some(o) => {
            let rw = f32_inout(OP, "out", o, Some(2))?;
            if rw.shape() != [m, n] {
                return Err(KernelError::Shape(format!(
                    "{OP}: `out` has shape {:?} but the product is ({m}, {n})",
                    rw.shape()
                ))
                .into());
            }
            (o.clone(), rw)
        }
        None if beta != 0.0 => {
            return Err(KernelError::Argument(format!(
                "{OP}: beta={beta} needs an `out` array to accumulate into"
            ))
            .into())
        }
        None => {
            let arr = new_array::<f32>(py, OP, "output", &[m, n])?;
            let rw = arr.try_readwrite().map_err(|_| {
                PyErr::from(KernelError::Layout(format!(
                    "{OP}: the new output array is in use elsewhere"
                )))
            })?;
            (arr.into_any(), rw)
        }
    };
    {
        let c = rw.as_slice_mut()?;
        let bias = bias_arr.as_ref().map(|b| b.as_slice()).transpose()?;
        py.detach(|| {
            gemm_kernel(alpha, a_view, b_view, beta, c, n);
            if let Some(bias) = bias {
                elementwise::bias_add_inplace(c, bias, 1);
            }
            if relu {
                elementwise::relu_inplace(c);
            }
        });
    }
    drop(rw);
    Ok(out_arr)
}
