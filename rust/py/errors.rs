//! Maps [`KernelError`] to the exception classes of `cnnrs.errors`, which
//! subclass ValueError / TypeError so that existing `except ValueError` works.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::error::KernelError;

fn class_name(e: &KernelError) -> &'static str {
    match e {
        KernelError::Shape(_) => "ShapeError",
        KernelError::Argument(_) => "ArgumentError",
        KernelError::DType(_) => "DTypeError",
        KernelError::Layout(_) => "LayoutError",
        KernelError::Overflow(_) => "SizeOverflowError",
    }
}

impl From<KernelError> for PyErr {
    fn from(e: KernelError) -> PyErr {
        let message = e.to_string();
        Python::attach(|py| {
            let class = py
                .import("cnnrs.errors")
                .and_then(|m| m.getattr(class_name(&e)))
                .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
            match class {
                Ok(class) => PyErr::from_type(class, message),
                // Only if the Python package is broken; still a ValueError with the message.
                Err(_) => PyValueError::new_err(message),
            }
        })
    }
}
