//! One MR x NR tile of C: the operands a micro-kernel reads, the kernel choice
//! and the edge tiles.

use super::blocking::{MR, NR};

/// How a finished accumulator tile `acc` (= A_strip * B_strip over one K
/// block) updates C: `c = alpha * acc + beta * c` (C is not read when
/// `beta == 0.0`), then, on the last K block only, `+ bias[row]` and ReLU.
#[derive(Clone, Copy, Debug)]
pub struct TileUpdate {
    pub alpha: f32,
    pub beta: f32,
    pub relu: bool,
}

/// The MR rows of A a tile reads: A[r, p] is at `rows[r] + p * step`.
/// A packed strip is `rows[r] = strip + r`, `step = MR` (`packed` set, which
/// lets the kernel use constant offsets); an unpacked row-major A has
/// `rows[r]` = start of row r and `step = 1`.
#[derive(Clone, Copy, Debug)]
pub struct AOperand {
    pub rows: [*const f32; MR],
    pub step: usize,
    pub packed: bool,
}

impl AOperand {
    /// A packed strip (`kc * MR` floats).
    pub fn packed(strip: &[f32]) -> Self {
        let base = strip.as_ptr();
        AOperand {
            rows: std::array::from_fn(|r| base.wrapping_add(r)),
            step: MR,
            packed: true,
        }
    }
}

/// A micro-kernel: `kc` steps over the A rows of `a` and the B rows
/// `b + p * b_step` (NR floats each), then the update of the full MR x NR tile
/// at `c` (row stride `ldc`), with `bias` holding one value per tile row.
/// A packed B strip is `b_step = NR`.
///
/// # Safety
/// Every A and B element of the `kc` steps must be readable; `c` must be
/// readable and writable for MR rows of NR floats with row stride `ldc`.
pub type MicroKernel = unsafe fn(
    usize,
    &AOperand,
    *const f32,
    usize,
    *mut f32,
    usize,
    &TileUpdate,
    Option<&[f32; MR]>,
);

/// The micro-kernel for this CPU: AVX2+FMA when available and not forced off.
pub fn select_kernel() -> MicroKernel {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::kernels::simd::use_avx2_fma() {
            return super::avx2::kernel_6x16;
        }
    }
    super::portable::kernel_6x16
}

/// Computes the `mr x nr` tile of C at `c` (`mr <= MR`, `nr <= NR`). Full tiles
/// go straight to C; edge tiles run the same kernel on a local MR x NR copy so
/// that the arithmetic, and hence the rounding, is the same everywhere.
///
/// # Safety
/// As for [`MicroKernel`], with `c` valid for `mr` rows of `nr` floats (and
/// all MR rows of A and NR columns of B readable; callers point the rows past
/// the edge at valid memory).
#[allow(clippy::too_many_arguments)]
#[inline]
pub unsafe fn compute_tile(
    kernel: MicroKernel,
    kc: usize,
    a: &AOperand,
    b: *const f32,
    b_step: usize,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    update: &TileUpdate,
    bias: Option<&[f32]>,
) {
    if mr == MR && nr == NR {
        let bias = bias.map(|v| <&[f32; MR]>::try_from(&v[..MR]).expect("MR values"));
        kernel(kc, a, b, b_step, c, ldc, update, bias);
        return;
    }
    let mut tile = [0.0f32; MR * NR];
    if update.beta != 0.0 {
        for r in 0..mr {
            let src = std::slice::from_raw_parts(c.add(r * ldc), nr);
            tile[r * NR..r * NR + nr].copy_from_slice(src);
        }
    }
    let mut local_bias = [0.0f32; MR];
    if let Some(v) = bias {
        local_bias[..mr].copy_from_slice(&v[..mr]);
    }
    let local_bias = bias.map(|_| &local_bias);
    kernel(kc, a, b, b_step, tile.as_mut_ptr(), NR, update, local_bias);
    for r in 0..mr {
        let dst = std::slice::from_raw_parts_mut(c.add(r * ldc), nr);
        dst.copy_from_slice(&tile[r * NR..r * NR + nr]);
    }
}
