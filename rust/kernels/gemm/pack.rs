//! The packed layouts the micro-kernel reads, and the routines that fill them.
//!
//! Packed A (MC x KC block): MR-row strips one after the other; strip `s` holds
//! `kc` groups of MR floats, group `p` = A[i0 + s*MR .. + MR, k0 + p] (column
//! `p` of the strip), rows past the block zero-filled.
//!
//! Packed B (KC x NC panel): see [`PackB`].

use super::blocking::{MR, NR};
use super::MatRef;

/// A K x N matrix that can write blocks of itself in the micro-kernel's packed
/// B layout. [`MatRef`] implements it; convolution implements it to gather
/// im2col columns straight from the NCHW input without materialising them.
///
/// Layout written by `pack(k0, kc, j0, nc, out)` for the block
/// B[k0 .. k0+kc, j0 .. j0+nc]: `ceil(nc / NR)` strips of `kc * NR` floats, one
/// after the other (strip `s` starts at `out[s * kc * NR]`). Strip `s` covers
/// columns `j0 + s*NR .. j0 + s*NR + NR`; inside it row `p` is NR contiguous
/// floats: `out[s*kc*NR + p*NR + jj] = B[k0 + p, j0 + s*NR + jj]`, and 0.0
/// where `s*NR + jj >= nc` (the padding of the last strip must be written too,
/// not left as it was). `out.len()` is exactly `ceil(nc / NR) * kc * NR`.
///
/// The driver may call `pack` from several threads at once for disjoint column
/// ranges (j0 always a multiple of NR from the panel start), hence `Sync`.
pub trait PackB: Sync {
    /// K: the number of rows.
    fn rows(&self) -> usize;
    /// N: the number of columns.
    fn cols(&self) -> usize;
    /// Writes B[k0 .. k0+kc, j0 .. j0+nc] into `out` in the layout above.
    fn pack(&self, k0: usize, kc: usize, j0: usize, nc: usize, out: &mut [f32]);

    /// The matrix itself when it is a plain strided matrix, which lets small
    /// products read it without packing. Leave the default (`None`) otherwise.
    fn as_matref(&self) -> Option<MatRef<'_>> {
        None
    }
}

impl PackB for MatRef<'_> {
    fn rows(&self) -> usize {
        self.rows
    }

    fn cols(&self) -> usize {
        self.cols
    }

    fn as_matref(&self) -> Option<MatRef<'_>> {
        Some(*self)
    }

    fn pack(&self, k0: usize, kc: usize, j0: usize, nc: usize, out: &mut [f32]) {
        debug_assert_eq!(out.len(), nc.div_ceil(NR) * kc * NR);
        // The strided fast paths below rely on every addressed row existing.
        assert!(
            self.in_bounds(),
            "gemm: the view of B reaches past its data"
        );
        for (s, strip) in out.chunks_exact_mut(kc * NR).enumerate() {
            let j = j0 + s * NR;
            let width = NR.min(j0 + nc - j);
            if self.col_stride == 1 && width == NR && self.row_stride >= NR {
                // Rows of B are contiguous: copy NR floats (two vectors) per row.
                let rows = self.data[k0 * self.row_stride + j..].chunks(self.row_stride);
                for (dst, src) in strip.chunks_exact_mut(NR).zip(rows) {
                    dst.copy_from_slice(&src[..NR]);
                }
            } else if self.col_stride == 1 {
                for (p, dst) in strip.chunks_exact_mut(NR).enumerate() {
                    let start = (k0 + p) * self.row_stride + j;
                    dst[..width].copy_from_slice(&self.data[start..start + width]);
                    dst[width..].fill(0.0);
                }
            } else if self.row_stride == 1 && width == NR && transposed_pack_in_simd() {
                let start = j * self.col_stride + k0;
                // SAFETY: AVX2 is available; the function checks its slice bounds.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    super::avx2::pack_b_transposed_strip(
                        &self.data[start..],
                        self.col_stride,
                        kc,
                        strip,
                    );
                }
            } else {
                // Columns of B are contiguous (B is a transposed view): read each
                // column along k and scatter it with stride NR.
                for jj in 0..NR {
                    if jj < width {
                        let col = (j + jj) * self.col_stride + k0 * self.row_stride;
                        for p in 0..kc {
                            strip[p * NR + jj] = self.data[col + p * self.row_stride];
                        }
                    } else {
                        for p in 0..kc {
                            strip[p * NR + jj] = 0.0;
                        }
                    }
                }
            }
        }
    }
}

/// Writes one full NR-wide strip of packed B from NR contiguous columns:
/// column `jj` is `src[jj * col_stride ..][..kc]` and `strip[p * NR + jj]`
/// receives its element `p` (`strip.len() == kc * NR`). AVX2 8 x 8 register
/// transposes when the CPU has them; the same values either way.
pub fn pack_transposed_strip(src: &[f32], col_stride: usize, kc: usize, strip: &mut [f32]) {
    assert!(kc == 0 || src.len() >= (NR - 1) * col_stride + kc);
    assert_eq!(strip.len(), kc * NR);
    #[cfg(target_arch = "x86_64")]
    if transposed_pack_in_simd() {
        // SAFETY: AVX2 is available; the function checks its slice bounds.
        unsafe { super::avx2::pack_b_transposed_strip(src, col_stride, kc, strip) };
        return;
    }
    for (p, row) in strip.chunks_exact_mut(NR).enumerate() {
        for (jj, v) in row.iter_mut().enumerate() {
            *v = src[jj * col_stride + p];
        }
    }
}

/// Whether the AVX2 transposing packer can be used.
fn transposed_pack_in_simd() -> bool {
    cfg!(target_arch = "x86_64") && crate::kernels::simd::use_avx2_fma()
}

/// Packs A[i0 .. i0+mc, k0 .. k0+kc] into `out` (`ceil(mc / MR) * kc * MR`
/// floats) in the packed A layout described at the top of this file.
pub fn pack_a(a: &MatRef, i0: usize, mc: usize, k0: usize, kc: usize, out: &mut [f32]) {
    debug_assert_eq!(out.len(), mc.div_ceil(MR) * kc * MR);
    for (s, strip) in out.chunks_exact_mut(kc * MR).enumerate() {
        let i = i0 + s * MR;
        let height = MR.min(i0 + mc - i);
        if a.col_stride == 1 && height == MR {
            // Rows of A are contiguous: walk MR rows side by side along k, so
            // that the writes are sequential.
            let rows: [&[f32]; MR] = std::array::from_fn(|r| {
                let start = (i + r) * a.row_stride + k0;
                &a.data[start..start + kc]
            });
            for (p, dst) in strip.chunks_exact_mut(MR).enumerate() {
                let dst: &mut [f32; MR] = dst.try_into().expect("MR floats");
                // SAFETY: p < kc (the strip holds kc groups) and every row has kc floats.
                *dst = std::array::from_fn(|r| unsafe { *rows[r].get_unchecked(p) });
            }
        } else if a.row_stride == 1 && height == MR && a.col_stride >= MR {
            // Columns of A are contiguous (A is a transposed view): MR floats per k.
            let cols = a.data[k0 * a.col_stride + i..].chunks(a.col_stride);
            for (dst, src) in strip.chunks_exact_mut(MR).zip(cols) {
                dst.copy_from_slice(&src[..MR]);
            }
        } else {
            for (p, dst) in strip.chunks_exact_mut(MR).enumerate() {
                let base = (k0 + p) * a.col_stride;
                for (r, d) in dst.iter_mut().enumerate() {
                    *d = if r < height {
                        a.data[base + (i + r) * a.row_stride]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}
