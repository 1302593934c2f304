//! Pure-Rust numerical kernels: no Python types below this module.
//!
//! Every tensor is float32, C-contiguous, NCHW. Each op family lives in its own
//! file with its forward and backward.

pub mod conv;
pub mod elementwise;
pub mod gemm;
pub mod loss;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod simd;
