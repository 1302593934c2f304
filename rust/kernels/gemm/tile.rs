//! One MR x NR tile of C: the micro-kernel choice and the edge tiles.

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

/// A micro-kernel: `kc` steps over a packed A strip (`kc * MR` floats) and a
/// packed B strip (`kc * NR` floats), then the update of the full MR x NR tile
/// at `c` (row stride `ldc`), with `bias` holding one value per tile row.
///
/// # Safety
/// `a`, `b` must be readable for `kc * MR` / `kc * NR` floats and `c` must be
/// readable and writable for MR rows of NR floats with row stride `ldc`.
pub type MicroKernel =
    unsafe fn(usize, *const f32, *const f32, *mut f32, usize, &TileUpdate, Option<&[f32; MR]>);

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
/// As for [`MicroKernel`], with `c` valid for `mr` rows of `nr` floats.
#[allow(clippy::too_many_arguments)]
#[inline]
pub unsafe fn compute_tile(
    kernel: MicroKernel,
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    update: &TileUpdate,
    bias: Option<&[f32]>,
) {
    if mr == MR && nr == NR {
        let bias = bias.map(|v| <&[f32; MR]>::try_from(&v[..MR]).expect("MR values"));
        kernel(kc, a, b, c, ldc, update, bias);
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
    kernel(
        kc,
        a,
        b,
        tile.as_mut_ptr(),
        NR,
        update,
        bias.map(|_| &local_bias),
    );
    for r in 0..mr {
        let dst = std::slice::from_raw_parts_mut(c.add(r * ldc), nr);
        dst.copy_from_slice(&tile[r * NR..r * NR + nr]);
    }
}
