//! cnnrs: multithreaded SIMD CPU kernels for convolutional networks.
//!
//! `kernels` is pure Rust (usable and tested without Python); `py` holds the
//! PyO3 bindings that make up the `cnnrs._cnnrs` extension module.

pub mod error;
pub mod kernels;
pub mod threading;

mod py;
