//! conv2d forward and backward bindings.

use numpy::{PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::arrays::{f32_in, new_array, shape4, usizes};
use crate::error::KernelError;
use crate::kernels::conv::{self, Conv2dParams};

fn params(
    op: &str,
    x_shape: [usize; 4],
    w_shape: [usize; 4],
    stride: (i64, i64),
    padding: (i64, i64, i64, i64),
    dilation: (i64, i64),
    groups: i64,
) -> PyResult<Conv2dParams> {
    let stride = usizes(op, "stride", [stride.0, stride.1], 1)?;
    let padding = usizes(
        op,
        "padding",
        [padding.0, padding.1, padding.2, padding.3],
        0,
    )?;
    let dilation = usizes(op, "dilation", [dilation.0, dilation.1], 1)?;
    let [groups] = usizes(op, "groups", [groups], 1)?;
    Ok(Conv2dParams::new(
        op, x_shape, w_shape, stride, padding, dilation, groups,
    )?)
}

/// y = conv2d(x, weight) + bias (then ReLU if `relu`). padding is (top, bottom, left, right).
#[pyfunction]
#[pyo3(signature = (x, weight, bias=None, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1, relu=false))]
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    weight: &Bound<'py, PyAny>,
    bias: Option<&Bound<'py, PyAny>>,
    stride: (i64, i64),
    padding: (i64, i64, i64, i64),
    dilation: (i64, i64),
    groups: i64,
    relu: bool,
) -> PyResult<Bound<'py, PyAny>> {
    const OP: &str = "conv2d";
    let x_arr = f32_in(OP, "input", x, Some(4))?;
    let w_arr = f32_in(OP, "weight", weight, Some(4))?;
    let p = params(
        OP,
        shape4(&x_arr),
        shape4(&w_arr),
        stride,
        padding,
        dilation,
        groups,
    )?;
    let b_arr = bias.map(|b| f32_in(OP, "bias", b, Some(1))).transpose()?;
    if let Some(b) = &b_arr {
        if b.shape()[0] != p.c_out {
            return Err(KernelError::Shape(format!(
                "{OP}: bias has shape {:?} but weight {:?} has {} output channels",
                b.shape(),
                p.w_shape(),
                p.c_out
            ))
            .into());
        }
    }
    let y = new_array::<f32>(py, OP, "output", &p.y_shape())?;
    {
        let mut y_rw = y.readwrite();
        let (xs, ws) = (x_arr.as_slice()?, w_arr.as_slice()?);
        let bs = b_arr.as_ref().map(|b| b.as_slice()).transpose()?;
        let ys = y_rw.as_slice_mut()?;
        py.detach(|| conv::conv2d_forward(&p, xs, ws, bs, relu, ys));
    }
    Ok(y.into_any())
}

/// Gradients of conv2d: returns (grad_input, grad_weight, grad_bias), each None unless asked for.
#[pyfunction]
#[pyo3(signature = (x, weight, grad_output, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1,
                    need_input=true, need_weight=true, need_bias=true))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn conv2d_backward<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    weight: &Bound<'py, PyAny>,
    grad_output: &Bound<'py, PyAny>,
    stride: (i64, i64),
    padding: (i64, i64, i64, i64),
    dilation: (i64, i64),
    groups: i64,
    need_input: bool,
    need_weight: bool,
    need_bias: bool,
) -> PyResult<(
    Option<Bound<'py, PyAny>>,
    Option<Bound<'py, PyAny>>,
    Option<Bound<'py, PyAny>>,
)> {
    const OP: &str = "conv2d_backward";
    let x_arr = f32_in(OP, "input", x, Some(4))?;
    let w_arr = f32_in(OP, "weight", weight, Some(4))?;
    let dy_arr = f32_in(OP, "grad_output", grad_output, Some(4))?;
    let p = params(
        OP,
        shape4(&x_arr),
        shape4(&w_arr),
        stride,
        padding,
        dilation,
        groups,
    )?;
    if shape4(&dy_arr) != p.y_shape() {
        return Err(KernelError::Shape(format!(
            "{OP}: grad_output has shape {:?} but the convolution of input {:?} with weight {:?} gives {:?}",
            dy_arr.shape(),
            p.x_shape(),
            p.w_shape(),
            p.y_shape()
        ))
        .into());
    }
    let dx = need_input
        .then(|| new_array::<f32>(py, OP, "grad_input", &p.x_shape()))
        .transpose()?;
    let dw = need_weight
        .then(|| new_array::<f32>(py, OP, "grad_weight", &p.w_shape()))
        .transpose()?;
    let db = need_bias
        .then(|| new_array::<f32>(py, OP, "grad_bias", &[p.c_out]))
        .transpose()?;
    {
        let (xs, ws, dys) = (x_arr.as_slice()?, w_arr.as_slice()?, dy_arr.as_slice()?);
        let mut dx_rw = dx.as_ref().map(|a| a.readwrite());
        let mut dw_rw = dw.as_ref().map(|a| a.readwrite());
        let mut db_rw = db.as_ref().map(|a| a.readwrite());
        let dx_s = dx_rw.as_mut().map(|a| a.as_slice_mut()).transpose()?;
        let dw_s = dw_rw.as_mut().map(|a| a.as_slice_mut()).transpose()?;
        let db_s = db_rw.as_mut().map(|a| a.as_slice_mut()).transpose()?;
        py.detach(|| {
            if let Some(dx_s) = dx_s {
                conv::conv2d_backward_input(&p, ws, dys, dx_s);
            }
            match (dw_s, db_s) {
                (Some(dw_s), db_s) => conv::conv2d_backward_weight(&p, xs, dys, dw_s, db_s),
                (None, Some(db_s)) => conv::conv2d_backward_bias(&p, dys, db_s),
                (None, None) => {}
            }
        });
    }
    Ok((
        dx.map(|a| a.into_any()),
        dw.map(|a| a.into_any()),
        db.map(|a| a.into_any()),
    ))
}
