//! One call updates every parameter of an optimiser, in place.

use numpy::{PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::arrays::{f32_in, f32_inout};
use crate::error::KernelError;
use crate::kernels::optim::{self, AdamConfig, AdamTensor, SgdConfig, SgdTensor};

fn inouts<'py>(
    op: &str,
    name: &str,
    objs: &[Bound<'py, PyAny>],
) -> PyResult<Vec<PyReadwriteArrayDyn<'py, f32>>> {
    objs.iter()
        .enumerate()
        .map(|(i, o)| f32_inout(op, &format!("{name}[{i}]"), o, None))
        .collect()
}

fn inputs<'py>(
    op: &str,
    name: &str,
    objs: &[Bound<'py, PyAny>],
) -> PyResult<Vec<PyReadonlyArrayDyn<'py, f32>>> {
    objs.iter()
        .enumerate()
        .map(|(i, o)| f32_in(op, &format!("{name}[{i}]"), o, None))
        .collect()
}

/// Every list must have as many arrays as `params`, each of the same shape as its parameter.
fn check_same<'py>(
    op: &str,
    params: &[PyReadwriteArrayDyn<'py, f32>],
    name: &str,
    shapes: Vec<Vec<usize>>,
) -> PyResult<()> {
    if shapes.len() != params.len() {
        return Err(KernelError::Shape(format!(
            "{op}: {name} has {} arrays but params has {}",
            shapes.len(),
            params.len()
        ))
        .into());
    }
    for (i, (p, s)) in params.iter().zip(&shapes).enumerate() {
        if p.shape() != s.as_slice() {
            return Err(KernelError::Shape(format!(
                "{op}: {name}[{i}] has shape {s:?} but params[{i}] has {:?}",
                p.shape()
            ))
            .into());
        }
    }
    Ok(())
}

fn shapes_ro(v: &[PyReadonlyArrayDyn<'_, f32>]) -> Vec<Vec<usize>> {
    v.iter().map(|a| a.shape().to_vec()).collect()
}
fn shapes_rw(v: &[PyReadwriteArrayDyn<'_, f32>]) -> Vec<Vec<usize>> {
    v.iter().map(|a| a.shape().to_vec()).collect()
}

#[pyfunction]
#[pyo3(signature = (params, grads, momentum_buffers, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                    nesterov=false, maximize=false, first_step=false))]
#[allow(clippy::too_many_arguments)]
pub fn sgd_step(
    py: Python<'_>,
    params: Vec<Bound<'_, PyAny>>,
    grads: Vec<Bound<'_, PyAny>>,
    momentum_buffers: Option<Vec<Bound<'_, PyAny>>>,
    lr: f32,
    momentum: f32,
    dampening: f32,
    weight_decay: f32,
    nesterov: bool,
    maximize: bool,
    first_step: bool,
) -> PyResult<()> {
    const OP: &str = "sgd_step";
    let mut ps = inouts(OP, "params", &params)?;
    let gs = inputs(OP, "grads", &grads)?;
    check_same(OP, &ps, "grads", shapes_ro(&gs))?;
    let mut bufs = momentum_buffers
        .map(|b| inouts(OP, "momentum_buffers", &b))
        .transpose()?;
    if let Some(b) = &bufs {
        check_same(OP, &ps, "momentum_buffers", shapes_rw(b))?;
    } else if momentum != 0.0 {
        return Err(KernelError::Argument(format!(
            "{OP}: momentum={momentum} needs momentum_buffers"
        ))
        .into());
    }
    let cfg = SgdConfig {
        lr,
        momentum,
        dampening,
        weight_decay,
        nesterov,
        maximize,
    };
    let g_s: Vec<&[f32]> = gs.iter().map(|g| g.as_slice()).collect::<Result<_, _>>()?;
    let mut b_s: Vec<Option<&mut [f32]>> = match bufs.as_mut() {
        Some(b) => b
            .iter_mut()
            .map(|a| a.as_slice_mut().map(Some))
            .collect::<Result<_, _>>()?,
        None => ps.iter().map(|_| None).collect(),
    };
    let mut tensors = Vec::with_capacity(ps.len());
    for ((p, g), b) in ps.iter_mut().zip(g_s).zip(b_s.iter_mut()) {
        tensors.push(SgdTensor {
            param: p.as_slice_mut()?,
            grad: g,
            momentum_buf: b.take(),
        });
    }
    py.detach(|| optim::sgd_step(&cfg, tensors, first_step));
    Ok(())
}

#[pyfunction]
#[pyo3(signature = (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step, lr, beta1=0.9, beta2=0.999,
                    eps=1e-8, weight_decay=0.0, decoupled_weight_decay=false, amsgrad=false, maximize=false))]
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    py: Python<'_>,
    params: Vec<Bound<'_, PyAny>>,
    grads: Vec<Bound<'_, PyAny>>,
    exp_avgs: Vec<Bound<'_, PyAny>>,
    exp_avg_sqs: Vec<Bound<'_, PyAny>>,
    max_exp_avg_sqs: Option<Vec<Bound<'_, PyAny>>>,
    step: i64,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    decoupled_weight_decay: bool,
    amsgrad: bool,
    maximize: bool,
) -> PyResult<()> {
    const OP: &str = "adam_step";
    if step < 1 {
        return Err(KernelError::Argument(format!(
            "{OP}: step must be >= 1 (the step number after this update), got {step}"
        ))
        .into());
    }
    let mut ps = inouts(OP, "params", &params)?;
    let gs = inputs(OP, "grads", &grads)?;
    check_same(OP, &ps, "grads", shapes_ro(&gs))?;
    let mut ms = inouts(OP, "exp_avgs", &exp_avgs)?;
    check_same(OP, &ps, "exp_avgs", shapes_rw(&ms))?;
    let mut vs = inouts(OP, "exp_avg_sqs", &exp_avg_sqs)?;
    check_same(OP, &ps, "exp_avg_sqs", shapes_rw(&vs))?;
    let mut vmax = max_exp_avg_sqs
        .map(|b| inouts(OP, "max_exp_avg_sqs", &b))
        .transpose()?;
    match &vmax {
        Some(v) => check_same(OP, &ps, "max_exp_avg_sqs", shapes_rw(v))?,
        None if amsgrad => {
            return Err(
                KernelError::Argument(format!("{OP}: amsgrad needs max_exp_avg_sqs")).into(),
            )
        }
        None => {}
    }
    let cfg = AdamConfig {
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
        decoupled_weight_decay,
        amsgrad,
        maximize,
        step: step as u64,
    };
    let mut tensors = Vec::with_capacity(ps.len());
    let mut vmax_iter = vmax.as_mut().map(|v| v.iter_mut());
    for (((p, g), m), v) in ps.iter_mut().zip(&gs).zip(ms.iter_mut()).zip(vs.iter_mut()) {
        let vm = match vmax_iter.as_mut().and_then(|it| it.next()) {
            Some(a) if amsgrad => Some(a.as_slice_mut()?),
            _ => None,
        };
        tensors.push(AdamTensor {
            param: p.as_slice_mut()?,
            grad: g.as_slice()?,
            exp_avg: m.as_slice_mut()?,
            exp_avg_sq: v.as_slice_mut()?,
            max_exp_avg_sq: vm,
        });
    }
    py.detach(|| optim::adam_step(&cfg, tensors));
    Ok(())
}
