//! 2-D convolution (cross-correlation, as in PyTorch), NCHW, forward and backward,
//! as GEMMs over the im2col matrix of each image and group:
//!
//! - forward (`forward.rs`):         Y_g = W_g (C_out/g x K) * cols (K x pixels), bias + ReLU fused
//! - grad input (`input_grad.rs`):   dcols = W_g^T * dY_g, then col2im scatter-add into dx
//! - grad weight (`weight_grad.rs`): dW_g = sum over images of dY_g * cols^T, grad bias in the same pass
//!
//! with K = C_in/g * kH * kW. The im2col matrix is never stored: `implicit.rs`
//! makes it a GEMM operand that packs its blocks straight from x (rows are
//! gathered by `im2col.rs`). For one image the rows of Y_g are whole output
//! planes, so the forward GEMM writes straight into NCHW y. A 1x1 kernel with
//! stride 1 and no padding is a plain GEMM on x. Shape arithmetic and argument
//! checks live in `params.rs`.
//!
//! Stride-1, dilation-1 layers with at most 32 channels per group in and out
//! (LeNet's) skip im2col and take the direct path of `direct.rs` instead.
//!
//! Threading: one loop per op runs on the pool (see [`Plan`]): over images
//! (single-threaded GEMMs inside) when there are enough of them, else inside
//! each GEMM; tiny ops stay serial.
//!
//! CONTRACT: every function overwrites its whole output slice (callers pass
//! uninitialised memory). Results are bit-identical for any thread count: the
//! GEMM is, every tile / chunk boundary here depends on the problem size only,
//! and the grad-weight batch chunks are added in a fixed order.

mod direct;
#[cfg(target_arch = "x86_64")]
mod direct_avx2;
mod direct_portable;
#[cfg(test)]
mod direct_tests;
mod forward;
mod im2col;
mod implicit;
mod input_grad;
mod params;
#[cfg(test)]
mod tests;
mod weight_grad;
mod winograd;
#[cfg(test)]
mod winograd_tests;
mod winograd_transforms;

pub use forward::conv2d_forward;
pub use input_grad::conv2d_backward_input;
pub use params::{window_out_len, Conv2dParams};
pub use weight_grad::{conv2d_backward_bias, conv2d_backward_weight};
pub use winograd::{enabled as winograd_enabled, set_enabled as set_winograd_enabled};

use crate::kernels::gemm::{gemm_ex, Epilogue, MatRef, PackB};
use crate::threading::{self, PARALLEL_MIN_FLOPS};

/// Which one loop of an op runs on several threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// Tiny work: waking the pool costs more than it saves.
    Serial,
    /// Enough images to keep every thread busy: one image at a time per
    /// thread, with single-threaded GEMMs inside.
    OverImages,
    /// Few, large images: the images in turn, each GEMM multithreaded.
    InsideGemm,
}

impl Plan {
    /// Both parallel plans give the same bits (the GEMM's result does not depend on
    /// how it is split), so the choice may look at the thread count.
    fn choose(batch: usize, flops: usize) -> Plan {
        let threads = threading::num_threads();
        if flops < PARALLEL_MIN_FLOPS || threads == 1 {
            Plan::Serial
        } else if batch >= threads {
            Plan::OverImages
        } else {
            Plan::InsideGemm
        }
    }

    /// C = epilogue(A * B + beta * C), on the pool only for `InsideGemm`.
    fn gemm(
        self,
        a: MatRef,
        b: &impl PackB,
        beta: f32,
        c: &mut [f32],
        ldc: usize,
        epilogue: &Epilogue,
    ) {
        gemm_ex(1.0, a, b, beta, c, ldc, epilogue, self == Plan::InsideGemm);
    }
}
