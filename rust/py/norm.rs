//! Batch-norm bindings.

use numpy::{PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::arrays::{f32_in, new_array, same_shape};
use crate::error::KernelError;
use crate::kernels::norm::{self, ChannelStats, NormShape};

/// The (batch, channels, inner) view of `x`, which must be (N, C, ...).
fn norm_shape(op: &str, x: &PyReadonlyArrayDyn<'_, f32>) -> PyResult<NormShape> {
    let s = x.shape();
    if s.len() < 2 {
        return Err(KernelError::Shape(format!(
            "{op}: input must have at least 2 dimensions (N, C, ...), got shape {s:?}"
        ))
        .into());
    }
    Ok(NormShape {
        batch: s[0],
        channels: s[1],
        inner: s[2..].iter().product(),
    })
}

/// A per-channel vector argument: 1-D float32 of length `channels`, or None.
fn channel_vec<'py>(
    op: &str,
    name: &str,
    obj: Option<&Bound<'py, PyAny>>,
    x_shape: &[usize],
) -> PyResult<Option<PyReadonlyArrayDyn<'py, f32>>> {
    let Some(obj) = obj else { return Ok(None) };
    let a = f32_in(op, name, obj, Some(1))?;
    if a.shape()[0] != x_shape[1] {
        return Err(KernelError::Shape(format!(
            "{op}: {name} has shape {:?} but the input {x_shape:?} has {} channels",
            a.shape(),
            x_shape[1]
        ))
        .into());
    }
    Ok(Some(a))
}

fn check_eps(op: &str, eps: f32) -> PyResult<()> {
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(
            KernelError::Argument(format!("{op}: eps must be finite and >= 0, got {eps}")).into(),
        );
    }
    Ok(())
}

/// Returns (y, mean, var, inv_std): y normalised per channel (axis 1) and
/// scaled by weight, shifted by bias, then ReLU if `relu`. Without mean/var
/// the batch statistics are used (var is the biased variance); with both, those.
#[pyfunction]
#[pyo3(signature = (x, weight=None, bias=None, mean=None, var=None, eps=1e-5, relu=false))]
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
pub fn batch_norm_forward<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    weight: Option<&Bound<'py, PyAny>>,
    bias: Option<&Bound<'py, PyAny>>,
    mean: Option<&Bound<'py, PyAny>>,
    var: Option<&Bound<'py, PyAny>>,
    eps: f32,
    relu: bool,
) -> PyResult<(
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
)> {
    const OP: &str = "batch_norm_forward";
    check_eps(OP, eps)?;
    let xa = f32_in(OP, "x", x, None)?;
    let shape = norm_shape(OP, &xa)?;
    let x_shape = xa.shape().to_vec();
    let w = channel_vec(OP, "weight", weight, &x_shape)?;
    let b = channel_vec(OP, "bias", bias, &x_shape)?;
    let m = channel_vec(OP, "mean", mean, &x_shape)?;
    let v = channel_vec(OP, "var", var, &x_shape)?;
    if m.is_some() != v.is_some() {
        return Err(KernelError::Argument(format!(
            "{OP}: give both mean and var (evaluation) or neither (batch statistics)"
        ))
        .into());
    }
    if m.is_none() && shape.count() == 0 {
        return Err(KernelError::Shape(format!(
            "{OP}: batch statistics need at least one value per channel, got input shape {x_shape:?}"
        ))
        .into());
    }
    let y = new_array::<f32>(py, OP, "output", &x_shape)?;
    let c = [shape.channels];
    let (mean_out, var_out, inv_out) = (
        new_array::<f32>(py, OP, "mean", &c)?,
        new_array::<f32>(py, OP, "var", &c)?,
        new_array::<f32>(py, OP, "inv_std", &c)?,
    );
    {
        let (mut yw, mut mw, mut vw, mut iw) = (
            y.readwrite(),
            mean_out.readwrite(),
            var_out.readwrite(),
            inv_out.readwrite(),
        );
        let xs = xa.as_slice()?;
        let (ws, bs) = (
            w.as_ref().map(|a| a.as_slice()).transpose()?,
            b.as_ref().map(|a| a.as_slice()).transpose()?,
        );
        let given = match (&m, &v) {
            (Some(m), Some(v)) => Some((m.as_slice()?, v.as_slice()?)),
            _ => None,
        };
        let (ys, stats) = (
            yw.as_slice_mut()?,
            ChannelStats {
                mean: mw.as_slice_mut()?,
                var: vw.as_slice_mut()?,
                inv_std: iw.as_slice_mut()?,
            },
        );
        py.detach(|| norm::batch_norm_forward(&shape, xs, ws, bs, given, eps, relu, ys, stats));
    }
    Ok((
        y.into_any(),
        mean_out.into_any(),
        var_out.into_any(),
        inv_out.into_any(),
    ))
}

/// Returns (grad_input or None, grad_weight, grad_bias) of batch_norm_forward,
/// given its x and the mean and inv_std it used. `training`: those were the
/// batch's own statistics (they then depend on x). `relu_output`: the forward
/// ran with relu and returned this; grad_output is the gradient of it.
#[pyfunction]
#[pyo3(signature = (grad_output, x, mean, inv_std, weight=None, training=true, need_input=true, relu_output=None))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn batch_norm_backward<'py>(
    py: Python<'py>,
    grad_output: &Bound<'py, PyAny>,
    x: &Bound<'py, PyAny>,
    mean: &Bound<'py, PyAny>,
    inv_std: &Bound<'py, PyAny>,
    weight: Option<&Bound<'py, PyAny>>,
    training: bool,
    need_input: bool,
    relu_output: Option<&Bound<'py, PyAny>>,
) -> PyResult<(
    Option<Bound<'py, PyAny>>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
)> {
    const OP: &str = "batch_norm_backward";
    let g = f32_in(OP, "grad_output", grad_output, None)?;
    let xa = f32_in(OP, "x", x, None)?;
    same_shape(OP, "grad_output", g.shape(), "x", xa.shape())?;
    let shape = norm_shape(OP, &xa)?;
    let x_shape = xa.shape().to_vec();
    let relu_out = relu_output
        .map(|y| f32_in(OP, "relu_output", y, None))
        .transpose()?;
    if let Some(y) = &relu_out {
        same_shape(OP, "relu_output", y.shape(), "x", xa.shape())?;
    }
    let m = channel_vec(OP, "mean", Some(mean), &x_shape)?.expect("given");
    let inv = channel_vec(OP, "inv_std", Some(inv_std), &x_shape)?.expect("given");
    let w = channel_vec(OP, "weight", weight, &x_shape)?;
    let gx = need_input
        .then(|| new_array::<f32>(py, OP, "grad_input", &x_shape))
        .transpose()?;
    let c = [shape.channels];
    let (gw, gb) = (
        new_array::<f32>(py, OP, "grad_weight", &c)?,
        new_array::<f32>(py, OP, "grad_bias", &c)?,
    );
    {
        let mut gx_w = gx.as_ref().map(|a| a.readwrite());
        let (mut gw_w, mut gb_w) = (gw.readwrite(), gb.readwrite());
        let (gs, xs, ms, is) = (
            g.as_slice()?,
            xa.as_slice()?,
            m.as_slice()?,
            inv.as_slice()?,
        );
        let ws = w.as_ref().map(|a| a.as_slice()).transpose()?;
        let ys = relu_out.as_ref().map(|a| a.as_slice()).transpose()?;
        let gx_s = gx_w.as_mut().map(|a| a.as_slice_mut()).transpose()?;
        let (gw_s, gb_s) = (gw_w.as_slice_mut()?, gb_w.as_slice_mut()?);
        py.detach(|| {
            norm::batch_norm_backward(&shape, gs, xs, ms, is, ws, training, ys, gx_s, gw_s, gb_s)
        });
    }
    Ok((gx.map(|a| a.into_any()), gw.into_any(), gb.into_any()))
}
