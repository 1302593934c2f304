//! max_pool2d / avg_pool2d forward and backward bindings.

use numpy::{PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::arrays::{f32_in, i32_in, new_array, same_shape, shape4, shape_arg4, usizes};
use crate::error::KernelError;
use crate::kernels::pool::{self, Pool2dParams};

fn params(
    op: &str,
    x_shape: [usize; 4],
    kernel_size: (i64, i64),
    stride: (i64, i64),
    padding: (i64, i64),
    dilation: (i64, i64),
    ceil_mode: bool,
) -> PyResult<Pool2dParams> {
    let kernel = usizes(op, "kernel_size", [kernel_size.0, kernel_size.1], 1)?;
    let stride = usizes(op, "stride", [stride.0, stride.1], 1)?;
    let padding = usizes(op, "padding", [padding.0, padding.1], 0)?;
    let dilation = usizes(op, "dilation", [dilation.0, dilation.1], 1)?;
    Ok(Pool2dParams::new(
        op, x_shape, kernel, stride, padding, dilation, ceil_mode,
    )?)
}

fn check_grad_shape(op: &str, got: &[usize], p: &Pool2dParams) -> PyResult<()> {
    if got != p.y_shape() {
        return Err(KernelError::Shape(format!(
            "{op}: grad_output has shape {got:?} but pooling input {:?} gives {:?}",
            p.x_shape(),
            p.y_shape()
        ))
        .into());
    }
    Ok(())
}

fn divisor(op: &str, divisor_override: Option<i64>) -> PyResult<Option<usize>> {
    divisor_override
        .map(|d| usizes(op, "divisor_override", [d], 1).map(|[d]| d))
        .transpose()
}

/// Returns (y, argmax): argmax holds int32 flat indices (y*W + x) into each input
/// plane, -1 where no input gets a gradient. `relu=True` returns
/// max_pool(relu(x)) (argmax -1 where the output was clamped to 0).
#[pyfunction]
#[pyo3(signature = (x, kernel_size, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=false, relu=false))]
#[allow(clippy::too_many_arguments)]
pub fn max_pool2d_forward<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    kernel_size: (i64, i64),
    stride: (i64, i64),
    padding: (i64, i64),
    dilation: (i64, i64),
    ceil_mode: bool,
    relu: bool,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    const OP: &str = "max_pool2d";
    let x_arr = f32_in(OP, "input", x, Some(4))?;
    let p = params(
        OP,
        shape4(&x_arr),
        kernel_size,
        stride,
        padding,
        dilation,
        ceil_mode,
    )?;
    let y = new_array::<f32>(py, OP, "output", &p.y_shape())?;
    let idx = new_array::<i32>(py, OP, "argmax", &p.y_shape())?;
    {
        let (mut y_rw, mut i_rw) = (y.readwrite(), idx.readwrite());
        let (xs, ys, is) = (
            x_arr.as_slice()?,
            y_rw.as_slice_mut()?,
            i_rw.as_slice_mut()?,
        );
        py.detach(|| pool::max_pool2d_forward(&p, relu, xs, ys, is));
    }
    Ok((y.into_any(), idx.into_any()))
}

#[pyfunction]
#[pyo3(signature = (grad_output, argmax, input_shape, kernel_size, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=false))]
#[allow(clippy::too_many_arguments)]
pub fn max_pool2d_backward<'py>(
    py: Python<'py>,
    grad_output: &Bound<'py, PyAny>,
    argmax: &Bound<'py, PyAny>,
    input_shape: Vec<i64>,
    kernel_size: (i64, i64),
    stride: (i64, i64),
    padding: (i64, i64),
    dilation: (i64, i64),
    ceil_mode: bool,
) -> PyResult<Bound<'py, PyAny>> {
    const OP: &str = "max_pool2d_backward";
    let dy = f32_in(OP, "grad_output", grad_output, Some(4))?;
    let am = i32_in(OP, "argmax", argmax, Some(4))?;
    let p = params(
        OP,
        shape_arg4(OP, "input_shape", input_shape)?,
        kernel_size,
        stride,
        padding,
        dilation,
        ceil_mode,
    )?;
    check_grad_shape(OP, dy.shape(), &p)?;
    same_shape(OP, "argmax", am.shape(), "grad_output", dy.shape())?;
    let ams = am.as_slice()?;
    let plane = (p.h * p.w) as i32;
    // Min and max in one branch-free pass (it vectorises), then the culprit.
    let (lo, hi) = ams
        .iter()
        .fold((i32::MAX, i32::MIN), |(lo, hi), &i| (lo.min(i), hi.max(i)));
    let out_of_range = lo < -1 || hi >= plane;
    if let Some(bad) = ams
        .iter()
        .find(|&&i| out_of_range && (i >= plane || i < -1))
    {
        return Err(KernelError::Argument(format!(
            "{OP}: argmax holds index {bad}, outside an input plane of {}x{}; pass the argmax that max_pool2d_forward returned",
            p.h, p.w
        ))
        .into());
    }
    let dx = new_array::<f32>(py, OP, "grad_input (input_shape)", &p.x_shape())?;
    {
        let mut dx_rw = dx.readwrite();
        let (dys, dxs) = (dy.as_slice()?, dx_rw.as_slice_mut()?);
        py.detach(|| pool::max_pool2d_backward(&p, dys, ams, dxs));
    }
    Ok(dx.into_any())
}

#[pyfunction]
#[pyo3(signature = (x, kernel_size, stride, padding=(0, 0), ceil_mode=false, count_include_pad=true, divisor_override=None))]
#[allow(clippy::too_many_arguments)]
pub fn avg_pool2d_forward<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    kernel_size: (i64, i64),
    stride: (i64, i64),
    padding: (i64, i64),
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    const OP: &str = "avg_pool2d";
    let x_arr = f32_in(OP, "input", x, Some(4))?;
    let p = params(
        OP,
        shape4(&x_arr),
        kernel_size,
        stride,
        padding,
        (1, 1),
        ceil_mode,
    )?;
    let div = divisor(OP, divisor_override)?;
    let y = new_array::<f32>(py, OP, "output", &p.y_shape())?;
    {
        let mut y_rw = y.readwrite();
        let (xs, ys) = (x_arr.as_slice()?, y_rw.as_slice_mut()?);
        py.detach(|| pool::avg_pool2d_forward(&p, count_include_pad, div, xs, ys));
    }
    Ok(y.into_any())
}

#[pyfunction]
#[pyo3(signature = (grad_output, input_shape, kernel_size, stride, padding=(0, 0), ceil_mode=false, count_include_pad=true, divisor_override=None))]
#[allow(clippy::too_many_arguments)]
pub fn avg_pool2d_backward<'py>(
    py: Python<'py>,
    grad_output: &Bound<'py, PyAny>,
    input_shape: Vec<i64>,
    kernel_size: (i64, i64),
    stride: (i64, i64),
    padding: (i64, i64),
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    const OP: &str = "avg_pool2d_backward";
    let dy = f32_in(OP, "grad_output", grad_output, Some(4))?;
    let p = params(
        OP,
        shape_arg4(OP, "input_shape", input_shape)?,
        kernel_size,
        stride,
        padding,
        (1, 1),
        ceil_mode,
    )?;
    check_grad_shape(OP, dy.shape(), &p)?;
    let div = divisor(OP, divisor_override)?;
    let dx = new_array::<f32>(py, OP, "grad_input (input_shape)", &p.x_shape())?;
    {
        let mut dx_rw = dx.readwrite();
        let (dys, dxs) = (dy.as_slice()?, dx_rw.as_slice_mut()?);
        py.detach(|| pool::avg_pool2d_backward(&p, count_include_pad, div, dys, dxs));
    }
    Ok(dx.into_any())
}
