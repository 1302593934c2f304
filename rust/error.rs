//! One error type for every kernel. Pure Rust: the bindings in `py/errors.rs`
//! map each variant to its own Python exception class.

use std::fmt;

/// What went wrong, by kind; the message always names the op, the argument and the shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// Sizes that do not fit together (channels, groups, matrix dims, kernel larger than input).
    Shape(String),
    /// A scalar argument out of range (stride 0, negative padding, empty batch, ...).
    Argument(String),
    /// Wrong element type.
    DType(String),
    /// Not C-contiguous, or an array that cannot be borrowed.
    Layout(String),
    /// Sizes whose products overflow `usize` (or the index types the kernels store).
    Overflow(String),
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::Shape(m)
            | KernelError::Argument(m)
            | KernelError::DType(m)
            | KernelError::Layout(m)
            | KernelError::Overflow(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for KernelError {}

pub type Result<T> = std::result::Result<T, KernelError>;

/// Multiplies sizes, failing with a clear message instead of wrapping around.
pub fn checked_product(op: &str, what: &str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            KernelError::Overflow(format!(
                "{op}: {what} {dims:?} has more elements than fit in memory (size overflows)"
            ))
        })
}
