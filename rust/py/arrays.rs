//! Turning Python arguments into validated Rust values, with messages that name
//! the op, the argument and the shapes, and say how to fix the input.

use numpy::npyffi::{npy_intp, PY_ARRAY_API};
use numpy::{
    Element, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn,
    PyReadwriteArrayDyn, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::prelude::*;

use crate::error::{checked_product, KernelError};

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Checks that `obj` is a C-contiguous numpy array of `T` with `ndim` dimensions.
fn checked<'py, T: Element>(
    op: &str,
    name: &str,
    obj: &Bound<'py, PyAny>,
    ndim: Option<usize>,
    want: &str,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let Ok(untyped) = obj.cast::<PyUntypedArray>() else {
        return Err(KernelError::DType(format!(
            "{op}: argument `{name}` must be a numpy.ndarray of {want}, got {}",
            type_name(obj)
        ))
        .into());
    };
    let shape = untyped.shape().to_vec();
    let dtype = untyped.dtype();
    if !dtype.is_equiv_to(&numpy::dtype::<T>(obj.py())) {
        return Err(KernelError::DType(format!(
            "{op}: argument `{name}` must have dtype {want}, got {} with shape {shape:?}; convert it with .astype(numpy.{want})",
            dtype.str()?
        ))
        .into());
    }
    if let Some(n) = ndim {
        if shape.len() != n {
            return Err(KernelError::Shape(format!(
                "{op}: argument `{name}` must have {n} dimensions, got shape {shape:?}"
            ))
            .into());
        }
    }
    if !untyped.is_c_contiguous() {
        return Err(KernelError::Layout(format!(
            "{op}: argument `{name}` (shape {shape:?}) is not C-contiguous; pass numpy.ascontiguousarray({name})"
        ))
        .into());
    }
    Ok(obj.cast::<PyArrayDyn<T>>()?.clone())
}

fn borrow_error(op: &str, name: &str) -> PyErr {
    KernelError::Layout(format!(
        "{op}: argument `{name}` is already borrowed: the same array (or a view of it) is passed twice, or another call is using it right now"
    ))
    .into()
}

/// A read-only float32 input.
pub fn f32_in<'py>(
    op: &str,
    name: &str,
    obj: &Bound<'py, PyAny>,
    ndim: Option<usize>,
) -> PyResult<PyReadonlyArrayDyn<'py, f32>> {
    checked::<f32>(op, name, obj, ndim, "float32")?
        .try_readonly()
        .map_err(|_| borrow_error(op, name))
}

/// A float32 array updated in place.
pub fn f32_inout<'py>(
    op: &str,
    name: &str,
    obj: &Bound<'py, PyAny>,
    ndim: Option<usize>,
) -> PyResult<PyReadwriteArrayDyn<'py, f32>> {
    let arr = checked::<f32>(op, name, obj, ndim, "float32")?;
    arr.try_readwrite().map_err(|e| match e {
        numpy::BorrowError::NotWriteable => KernelError::Layout(format!(
            "{op}: argument `{name}` is read-only; pass a writeable array"
        ))
        .into(),
        _ => borrow_error(op, name),
    })
}

pub fn i64_in<'py>(
    op: &str,
    name: &str,
    obj: &Bound<'py, PyAny>,
    ndim: Option<usize>,
) -> PyResult<PyReadonlyArrayDyn<'py, i64>> {
    checked::<i64>(op, name, obj, ndim, "int64")?
        .try_readonly()
        .map_err(|_| borrow_error(op, name))
}

pub fn i32_in<'py>(
    op: &str,
    name: &str,
    obj: &Bound<'py, PyAny>,
    ndim: Option<usize>,
) -> PyResult<PyReadonlyArrayDyn<'py, i32>> {
    checked::<i32>(op, name, obj, ndim, "int32")?
        .try_readonly()
        .map_err(|_| borrow_error(op, name))
}

/// A new uninitialised C-contiguous array that the kernel will overwrite completely.
/// A failed allocation (absurd sizes) raises MemoryError / SizeOverflowError
/// instead of panicking.
pub fn new_array<'py, T: Element>(
    py: Python<'py>,
    op: &str,
    what: &str,
    shape: &[usize],
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let elems = checked_product(op, what, shape)?;
    if elems > isize::MAX as usize / std::mem::size_of::<T>() {
        return Err(KernelError::Overflow(format!(
            "{op}: {what} of shape {shape:?} needs more bytes than an array can hold"
        ))
        .into());
    }
    let mut dims: Vec<npy_intp> = shape.iter().map(|&d| d as npy_intp).collect();
    // SAFETY: PyArray_Empty gets a valid dims buffer and steals the dtype reference;
    // a NULL result is turned into the pending Python error. Every kernel
    // overwrites its whole output, so the uninitialised memory is never read.
    unsafe {
        let ptr = PY_ARRAY_API.PyArray_Empty(
            py,
            dims.len() as std::os::raw::c_int,
            dims.as_mut_ptr(),
            T::get_dtype(py).into_dtype_ptr(),
            0,
        );
        Ok(Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked())
    }
}

/// That argument `name` (shape `shape`) has the shape of `other` (`other_shape`):
/// "op: name has shape [..] but other has [..]" otherwise.
pub fn same_shape(
    op: &str,
    name: &str,
    shape: &[usize],
    other: &str,
    other_shape: &[usize],
) -> PyResult<()> {
    if shape == other_shape {
        return Ok(());
    }
    Err(KernelError::Shape(format!(
        "{op}: {name} has shape {shape:?} but {other} has {other_shape:?}"
    ))
    .into())
}

/// Shape as a fixed array, e.g. NCHW.
pub fn shape4(a: &PyReadonlyArrayDyn<'_, f32>) -> [usize; 4] {
    let s = a.shape();
    [s[0], s[1], s[2], s[3]]
}

/// Non-negative (or positive, with `min = 1`) integer tuple arguments.
pub fn usizes<const N: usize>(op: &str, name: &str, v: [i64; N], min: i64) -> PyResult<[usize; N]> {
    if v.iter().any(|&x| x < min) {
        let what = if min > 0 { "positive" } else { "non-negative" };
        return Err(
            KernelError::Argument(format!("{op}: {name} must be {what}, got {v:?}")).into(),
        );
    }
    Ok(v.map(|x| x as usize))
}

/// Input shape given as a tuple (for backward ops that never saw the input).
pub fn shape_arg4(op: &str, name: &str, v: Vec<i64>) -> PyResult<[usize; 4]> {
    let arr: [i64; 4] = v.clone().try_into().map_err(|_| {
        PyErr::from(KernelError::Shape(format!(
            "{op}: {name} must have 4 entries (N, C, H, W), got {v:?}"
        )))
    })?;
    usizes(op, name, arr, 0)
}
