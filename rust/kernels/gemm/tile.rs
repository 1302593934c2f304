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

/// One vector of a finished tile row into C, with one SIMD width's
/// intrinsics: `c = alpha * acc + beta * c` (C unread when beta == 0; the
/// multiply skipped when alpha == 1, same bits), then `+ bias`, then ReLU
/// (max returns its second operand when either is NaN: NaN stays NaN). The
/// AVX2 and AVX-512 kernels both store through this, so that they give the
/// same bits.
#[cfg(target_arch = "x86_64")]
macro_rules! store_vector {
    ($acc:expr, $dst:expr, $update:expr, $bias:expr,
     $set1:ident, $mul:ident, $fmadd:ident, $load:ident, $add:ident, $max:ident, $zero:ident, $store:ident) => {{
        let (update, dst): (&TileUpdate, *mut f32) = ($update, $dst);
        let mut x = if update.alpha == 1.0 {
            $acc
        } else {
            $mul($set1(update.alpha), $acc)
        };
        if update.beta != 0.0 {
            x = $fmadd($set1(update.beta), $load(dst), x);
        }
        if let Some(bias) = $bias {
            x = $add(x, $set1(bias));
        }
        if update.relu {
            x = $max($zero(), x);
        }
        $store(dst, x);
    }};
}
#[cfg(target_arch = "x86_64")]
pub(super) use store_vector;

/// Starts fetching the C tile (MR rows of `width` floats at `c`, row stride
/// `ldc`) into L1: a kernel reads or writes it only after its k loop, so the
/// misses overlap the arithmetic. `width` is at most 32 (two cache lines).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn prefetch_c_tile(c: *mut f32, ldc: usize, width: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    for r in 0..MR {
        let row = c.wrapping_add(r * ldc) as *const i8;
        // SAFETY: prefetching never faults, whatever the address.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(row);
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(4 * (width - 1)));
        }
    }
}

/// The MR rows of A a tile reads: A[r, p] is at `rows[r] + p * step`.
/// `consecutive` says that `rows[r] = rows[0] + r`, which lets the kernel
/// address all six with one pointer: a packed strip (`step = MR`) or the
/// columns of a transposed A read in place (`step` = its row length). An
/// unpacked row-major A has `rows[r]` = start of row r and `step = 1`.
#[derive(Clone, Copy, Debug)]
pub struct AOperand {
    pub rows: [*const f32; MR],
    pub step: usize,
    pub consecutive: bool,
}

impl AOperand {
    /// A packed strip (`kc * MR` floats).
    pub fn packed(strip: &[f32]) -> Self {
        let base = strip.as_ptr();
        AOperand {
            rows: std::array::from_fn(|r| base.wrapping_add(r)),
            step: MR,
            consecutive: true,
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

/// A micro-kernel for two full tiles side by side (MR x 2NR): as
/// [`MicroKernel`], with the B rows of the left tile at `b0 + p * b_step` and
/// those of the right one at `b1 + p * b_step`, and `c` valid for MR rows of
/// 2 * NR floats. Gives the same bits as two calls of the path's `full`.
pub type PairKernel = unsafe fn(
    usize,
    &AOperand,
    *const f32,
    *const f32,
    usize,
    *mut f32,
    usize,
    &TileUpdate,
    Option<&[f32; MR]>,
);

/// The micro-kernels of one path: `full` for MR x NR tiles, `edge[mr - 1][v]`
/// for edge tiles of `mr` rows and at most `8 * (v + 1)` columns, and `pair`
/// (where the CPU has one) for two full tiles side by side.
/// `edge_rows_only`: the edge kernels read and write only their `mr` rows of
/// C (the AVX2 ones), so a full-width edge tile can be computed in C itself.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub full: MicroKernel,
    pub edge: [[MicroKernel; 2]; MR],
    pub edge_rows_only: bool,
    pub pair: Option<PairKernel>,
}

impl Kernels {
    /// The kernels for this CPU: AVX-512 pairs and AVX2+FMA when available and
    /// not switched off, else AVX2+FMA, else portable.
    pub fn select() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::kernels::simd;
            if simd::use_avx512() {
                return Self::avx512();
            }
            if simd::use_avx2_fma() {
                return Self::avx2();
            }
        }
        Self::portable()
    }

    /// The portable kernel, for every tile shape.
    pub fn portable() -> Self {
        let k: MicroKernel = super::portable::kernel_6x16;
        Kernels {
            full: k,
            edge: [[k; 2]; MR],
            edge_rows_only: false,
            pair: None,
        }
    }

    /// The AVX2+FMA kernels; only for CPUs that have AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    pub fn avx2() -> Self {
        use super::avx2::{kernel_6x16, kernel_edge};
        Kernels {
            full: kernel_6x16,
            edge: [
                [kernel_edge::<1, 1>, kernel_edge::<1, 2>],
                [kernel_edge::<2, 1>, kernel_edge::<2, 2>],
                [kernel_edge::<3, 1>, kernel_edge::<3, 2>],
                [kernel_edge::<4, 1>, kernel_edge::<4, 2>],
                [kernel_edge::<5, 1>, kernel_edge::<5, 2>],
                [kernel_edge::<6, 1>, kernel_6x16],
            ],
            edge_rows_only: true,
            pair: None,
        }
    }

    /// The AVX2+FMA kernels plus the AVX-512 pair kernel; only for CPUs that
    /// have AVX-512F (which implies AVX2 and FMA on every CPU made).
    #[cfg(target_arch = "x86_64")]
    pub fn avx512() -> Self {
        Kernels {
            pair: Some(super::avx512::kernel_6x32),
            ..Self::avx2()
        }
    }
}

/// Computes the `mr x nr` tile of C at `c` (`1 <= mr <= MR`, `nr <= NR`). Full
/// tiles go straight to C; edge tiles run an edge kernel (the same arithmetic
/// per element, hence the same rounding) on a local MR x NR copy.
///
/// # Safety
/// As for [`MicroKernel`], with `c` valid for `mr` rows of `nr` floats (and
/// all MR rows of A and NR columns of B readable; callers point the rows past
/// the edge at valid memory).
#[allow(clippy::too_many_arguments)]
#[inline]
pub unsafe fn compute_tile(
    kernels: &Kernels,
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
        (kernels.full)(kc, a, b, b_step, c, ldc, update, bias);
        return;
    }
    let kernel = kernels.edge[mr - 1][usize::from(nr > NR / 2)];
    let mut local_bias = [0.0f32; MR];
    if let Some(v) = bias {
        local_bias[..mr].copy_from_slice(&v[..mr]);
    }
    let local_bias = bias.map(|_| &local_bias);
    if nr == NR && kernels.edge_rows_only {
        // A bottom-edge tile of full width whose kernel reads and writes
        // only its `mr` rows: it can work on C itself.
        kernel(kc, a, b, b_step, c, ldc, update, local_bias);
        return;
    }
    let mut tile = [0.0f32; MR * NR];
    if update.beta != 0.0 {
        for r in 0..mr {
            let src = std::slice::from_raw_parts(c.add(r * ldc), nr);
            tile[r * NR..r * NR + nr].copy_from_slice(src);
        }
    }
    kernel(kc, a, b, b_step, tile.as_mut_ptr(), NR, update, local_bias);
    for r in 0..mr {
        let dst = std::slice::from_raw_parts_mut(c.add(r * ldc), nr);
        dst.copy_from_slice(&tile[r * NR..r * NR + nr]);
    }
}
