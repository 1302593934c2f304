//! Implicit im2col: the im2col matrices of a run of images as GEMM `B`
//! operands ([`PackB`]) that gather their packed blocks straight from the
//! NCHW input, so no im2col buffer is ever materialised.

use std::ops::Range;

use super::im2col::{copy_block, gather_row};
use super::params::Conv2dParams;
use crate::kernels::gemm::{pack_transposed_strip, PackB, NR};

/// The im2col matrices of consecutive images of one group, side by side:
/// column `q` is pixel `q % out_plane` of image `images.start + q / out_plane`.
/// Never stored: the two GEMM operand views below gather their packed blocks
/// straight from the NCHW input (implicit im2col).
#[derive(Clone)]
pub struct Im2colImages<'a> {
    pub p: &'a Conv2dParams,
    /// The whole input batch.
    pub x: &'a [f32],
    pub images: Range<usize>,
    pub group: usize,
}

impl Im2colImages<'_> {
    fn pixels(&self) -> usize {
        self.images.len() * self.p.out_plane()
    }

    /// dst = im2col row `r`, pixels `q0 .. q0 + dst.len()` of the images side by side.
    fn gather_pixels(&self, r: usize, q0: usize, dst: &mut [f32]) {
        let p = self.p;
        let (n, group_len) = (p.out_plane(), p.c_in_per_group() * p.in_plane());
        let mut done = 0;
        while done < dst.len() {
            let q = q0 + done;
            let (image, pixel) = (self.images.start + q / n, q % n);
            let len = (n - pixel).min(dst.len() - done);
            let x_group = &self.x[(image * p.groups + self.group) * group_len..][..group_len];
            gather_row(p, x_group, r, pixel, &mut dst[done..done + len]);
            done += len;
        }
    }
}

/// The im2col matrix (K x pixels): the GEMM `B` operand of the forward product
/// Y_g = W_g * cols.
pub struct Im2colMatrix<'a>(pub Im2colImages<'a>);

/// Columns gathered per pass in [`Im2colMatrix::pack`]: a multiple of NR whose
/// row buffer (4 KiB) stays in L1.
const PACK_COLS: usize = 64 * NR;

impl PackB for Im2colMatrix<'_> {
    fn rows(&self) -> usize {
        self.0.p.k_size()
    }

    fn cols(&self) -> usize {
        self.0.pixels()
    }

    fn pack(&self, k0: usize, kc: usize, j0: usize, nc: usize, out: &mut [f32]) {
        let mut row = [0.0f32; PACK_COLS];
        let strip_len = kc * NR;
        for c0 in (0..nc).step_by(PACK_COLS) {
            let width = PACK_COLS.min(nc - c0);
            let first_strip = c0 / NR;
            for p in 0..kc {
                // Gather one im2col row segment contiguously, then deal it out
                // to the NR-wide strips.
                self.0.gather_pixels(k0 + p, j0 + c0, &mut row[..width]);
                let full = row[..width].chunks_exact(NR);
                let (tail, strips) = (full.remainder(), width / NR);
                for (s, chunk) in full.enumerate() {
                    let dst = &mut out[(first_strip + s) * strip_len + p * NR..][..NR];
                    copy_block::<NR>(dst, chunk);
                }
                if !tail.is_empty() {
                    let dst = &mut out[(first_strip + strips) * strip_len + p * NR..][..NR];
                    dst[..tail.len()].copy_from_slice(tail);
                    dst[tail.len()..].fill(0.0);
                }
            }
        }
    }
}

/// The transposed im2col matrix (pixels x K): the GEMM `B` operand of the
/// grad-weight product dW_g = dY_g * cols^T.
pub struct Im2colTransposed<'a>(pub Im2colImages<'a>);

/// Pixels gathered per pass in [`Im2colTransposed::pack`].
const PACK_ROWS: usize = 256;

impl PackB for Im2colTransposed<'_> {
    fn rows(&self) -> usize {
        self.0.pixels()
    }

    fn cols(&self) -> usize {
        self.0.p.k_size()
    }

    fn pack(&self, k0: usize, kc: usize, j0: usize, nc: usize, out: &mut [f32]) {
        // The NR columns of a strip are NR contiguous im2col row segments:
        // gather them side by side (16 KiB, in L1), then write the strip row
        // by row, each row one contiguous NR-float store.
        let mut columns = [[0.0f32; PACK_ROWS]; NR];
        for (s, strip) in out.chunks_exact_mut(kc * NR).enumerate() {
            let first = j0 + s * NR;
            let width = NR.min(j0 + nc - first);
            for p0 in (0..kc).step_by(PACK_ROWS) {
                let len = PACK_ROWS.min(kc - p0);
                for (jj, column) in columns.iter_mut().enumerate() {
                    if jj < width {
                        self.0
                            .gather_pixels(first + jj, k0 + p0, &mut column[..len]);
                    } else {
                        column[..len].fill(0.0); // padding of the last strip
                    }
                }
                pack_transposed_strip(
                    columns.as_flattened(),
                    PACK_ROWS,
                    len,
                    &mut strip[p0 * NR..(p0 + len) * NR],
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::im2col::{im2col, tests::cases};

    #[test]
    fn implicit_packing_matches_the_explicit_matrix() {
        for p in cases() {
            let x: Vec<f32> = (0..2 * p.h * p.w).map(|v| v as f32 + 1.0).collect();
            let (k, n) = (p.k_size(), p.out_plane());
            let mut cols = vec![f32::NAN; k * n];
            im2col(&p, &x, &mut cols, n);
            let explicit = crate::kernels::gemm::MatRef::row_major(&cols, k, n);
            let implicit = Im2colMatrix(Im2colImages {
                p: &p,
                x: &x,
                images: 0..1,
                group: 0,
            });
            for (k0, kc, j0, nc) in [
                (0, k, 0, n),
                (1, k - 1, 0, n.min(5)),
                (k / 2, k - k / 2, n / 3, n - n / 3),
            ] {
                let len = nc.div_ceil(NR) * kc * NR;
                let (mut want, mut got) = (vec![f32::NAN; len], vec![f32::NAN; len]);
                explicit.pack(k0, kc, j0, nc, &mut want);
                implicit.pack(k0, kc, j0, nc, &mut got);
                assert_eq!(want, got, "{p:?} block {k0} {kc} {j0} {nc}");
            }
        }
    }

    #[test]
    fn transposed_packing_over_several_images_matches_the_explicit_matrix() {
        for p0 in cases() {
            // Three images, two groups of one channel each.
            let p = Conv2dParams::new(
                "test",
                [3, 2, p0.h, p0.w],
                [2, 1, p0.kh, p0.kw],
                p0.stride,
                p0.padding,
                p0.dilation,
                2,
            )
            .unwrap();
            let x: Vec<f32> = (0..3 * 2 * p.h * p.w).map(|v| v as f32 + 1.0).collect();
            let (k, n, group_len) = (p.k_size(), p.out_plane(), p.in_plane());
            for group in 0..2 {
                // Images 1 and 2 side by side, explicitly.
                let mut cols = vec![f32::NAN; k * 2 * n];
                for (j, image) in [1, 2].into_iter().enumerate() {
                    let x_group = &x[(image * 2 + group) * group_len..][..group_len];
                    for r in 0..k {
                        gather_row(&p, x_group, r, 0, &mut cols[r * 2 * n + j * n..][..n]);
                    }
                }
                let explicit = crate::kernels::gemm::MatRef::row_major(&cols, k, 2 * n).t();
                let images = Im2colImages {
                    p: &p,
                    x: &x,
                    images: 1..3,
                    group,
                };
                let implicit = Im2colTransposed(images.clone());
                let forward = Im2colMatrix(images);
                let len = (2 * n).div_ceil(NR) * k * NR;
                let (mut want, mut got) = (vec![f32::NAN; len], vec![f32::NAN; len]);
                explicit.t().pack(0, k, 0, 2 * n, &mut want);
                forward.pack(0, k, 0, 2 * n, &mut got);
                assert_eq!(want, got, "{p:?} group {group} forward view");
                let rows = 2 * n;
                for (k0, kc, j0, nc) in [
                    (0, rows, 0, k),
                    (1, rows - 1, 0, 1),
                    (n / 2, rows - n / 2, k / 2, k - k / 2),
                ] {
                    let len = nc.div_ceil(NR) * kc * NR;
                    let (mut want, mut got) = (vec![f32::NAN; len], vec![f32::NAN; len]);
                    explicit.pack(k0, kc, j0, nc, &mut want);
                    implicit.pack(k0, kc, j0, nc, &mut got);
                    assert_eq!(want, got, "{p:?} group {group} block {k0} {kc} {j0} {nc}");
                }
            }
        }
    }
}
