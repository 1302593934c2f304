//! 2-D convolution (cross-correlation, as in PyTorch), NCHW, forward and backward,
//! as GEMMs over the im2col matrix of each image and group:
//!
//! - forward:      Y_g  (C_out/g x pixels) = W_g (C_out/g x K) * cols (K x pixels)
//! - grad input:   dcols (K x pixels) = W_g^T * dY_g, then col2im scatter-add
//! - grad weight:  dW_g (C_out/g x K) = sum over images of dY_g * cols^T
//!
//! with K = C_in/g * kH * kW. For one image, the rows of Y_g are whole output
//! channel planes, so each GEMM writes straight into the NCHW output. A 1x1
//! kernel with stride 1 and no padding needs no im2col at all (cols = x).
//!
//! CONTRACT: every function overwrites its whole output slice (callers pass
//! uninitialised memory). Results are bit-identical for any thread count: the
//! GEMM is, and the only reduction split here (grad weight over the batch) uses
//! chunks fixed by the batch size, added in a fixed order.

mod backward;
mod forward;
mod im2col;
mod params;
#[cfg(test)]
mod tests;

pub use backward::{conv2d_backward_bias, conv2d_backward_input, conv2d_backward_weight};
pub use forward::conv2d_forward;
pub use params::{window_out_len, Conv2dParams};

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
