//! ReLU, bias add and fused cross-entropy bindings.

use numpy::{PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::arrays::{f32_in, f32_inout, i64_in, new_array, same_shape};
use crate::error::KernelError;
use crate::kernels::{elementwise, loss};

#[pyfunction]
pub fn relu_forward<'py>(py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let xa = f32_in("relu", "input", x, None)?;
    let y = new_array::<f32>(py, "relu", "output", xa.shape())?;
    {
        let mut rw = y.readwrite();
        let (xs, ys) = (xa.as_slice()?, rw.as_slice_mut()?);
        py.detach(|| elementwise::relu_forward(xs, ys));
    }
    Ok(y.into_any())
}

/// grad_input = grad_output where output > 0.
#[pyfunction]
pub fn relu_backward<'py>(
    py: Python<'py>,
    grad_output: &Bound<'py, PyAny>,
    output: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    const OP: &str = "relu_backward";
    let dy = f32_in(OP, "grad_output", grad_output, None)?;
    let y = f32_in(OP, "output", output, None)?;
    same_shape(OP, "grad_output", dy.shape(), "output", y.shape())?;
    let dx = new_array::<f32>(py, OP, "grad_input", dy.shape())?;
    {
        let mut rw = dx.readwrite();
        let (dys, ys, dxs) = (dy.as_slice()?, y.as_slice()?, rw.as_slice_mut()?);
        py.detach(|| elementwise::relu_backward(dys, ys, dxs));
    }
    Ok(dx.into_any())
}

/// y[:, c, ...] += bias[c], in place. y has shape (N, C, ...).
#[pyfunction]
pub fn bias_add_(py: Python<'_>, y: &Bound<'_, PyAny>, bias: &Bound<'_, PyAny>) -> PyResult<()> {
    const OP: &str = "bias_add_";
    let b = f32_in(OP, "bias", bias, Some(1))?;
    let mut ya = f32_inout(OP, "input", y, None)?;
    let shape = ya.shape().to_vec();
    if shape.len() < 2 || shape[1] != b.shape()[0] {
        return Err(KernelError::Shape(format!(
            "{OP}: input must be (N, C, ...) with C = {} (bias {:?}), got shape {shape:?}",
            b.shape()[0],
            b.shape()
        ))
        .into());
    }
    let inner: usize = shape[2..].iter().product();
    let bs = b.as_slice()?;
    let ys = ya.as_slice_mut()?;
    py.detach(|| elementwise::bias_add_inplace(ys, bs, inner));
    Ok(())
}

/// Returns (losses, grad): per-row cross-entropy of logits (N, C) against int64
/// targets (N,), and d(losses[i])/d(logits[i]) unless need_grad is False.
#[pyfunction]
#[pyo3(signature = (logits, target, label_smoothing=0.0, ignore_index=-100, need_grad=true))]
pub fn cross_entropy<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    label_smoothing: f32,
    ignore_index: i64,
    need_grad: bool,
) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, PyAny>>)> {
    const OP: &str = "cross_entropy";
    let z = f32_in(OP, "input", logits, Some(2))?;
    let t = i64_in(OP, "target", target, Some(1))?;
    let (n, c) = (z.shape()[0], z.shape()[1]);
    if t.shape()[0] != n || n == 0 || c == 0 {
        return Err(KernelError::Shape(format!(
            "{OP}: input (N, C) = {:?} and target (N,) = {:?} must agree on a non-zero N, with C > 0",
            z.shape(),
            t.shape()
        ))
        .into());
    }
    if !(0.0..=1.0).contains(&label_smoothing) {
        return Err(KernelError::Argument(format!(
            "{OP}: label_smoothing must be in [0, 1], got {label_smoothing}"
        ))
        .into());
    }
    let losses = new_array::<f32>(py, OP, "losses", &[n])?;
    let grad = need_grad
        .then(|| new_array::<f32>(py, OP, "grad", &[n, c]))
        .transpose()?;
    {
        let mut l_rw = losses.readwrite();
        let mut g_rw = grad.as_ref().map(|g| g.readwrite());
        let (zs, ts, ls) = (z.as_slice()?, t.as_slice()?, l_rw.as_slice_mut()?);
        let gs = g_rw.as_mut().map(|g| g.as_slice_mut()).transpose()?;
        py.detach(|| loss::cross_entropy(zs, c, ts, label_smoothing, ignore_index, ls, gs))?;
    }
    Ok((losses.into_any(), grad.map(|g| g.into_any())))
}
