//! The im2col matrix of one image and one group, and its adjoint (col2im).
//!
//! Row `r` of the matrix is (input channel, kernel row, kernel column) =
//! (`r / (kh*kw)`, `r / kw % kh`, `r % kw`); column `n` is the output pixel
//! (`n / out_w`, `n % out_w`). Entry (r, n) is the input value that kernel tap
//! `r` sees at output pixel `n`, or 0 where the tap falls into the padding.
//!
//! Everything works one matrix row segment at a time (`gather_row` /
//! `scatter_add_row`), so the same code fills a whole per-image matrix or a
//! narrow panel of it. Along an output row the valid taps form one contiguous
//! range (computed once per row segment), so the inner loops are plain copies
//! (stride 1) or strided gathers without per-element bounds checks.

use super::params::Conv2dParams;
use crate::kernels::gemm::{PackB, NR};

/// (input channel, kernel row, kernel column) of im2col row `r`.
#[inline(always)]
fn split_row(p: &Conv2dParams, r: usize) -> (usize, usize, usize) {
    (r / (p.kh * p.kw), r / p.kw % p.kh, r % p.kw)
}

/// Calls `visit(oy, ox0, range)` for each output-row run of the pixels
/// `n0..n0 + len`, where `range` is the run's position in the segment.
#[inline(always)]
fn for_each_run(
    p: &Conv2dParams,
    n0: usize,
    len: usize,
    mut visit: impl FnMut(usize, usize, std::ops::Range<usize>),
) {
    let (mut oy, mut ox) = (n0 / p.out_w, n0 % p.out_w);
    let mut done = 0;
    while done < len {
        let run = (p.out_w - ox).min(len - done);
        visit(oy, ox, done..done + run);
        done += run;
        oy += 1;
        ox = 0;
    }
}

/// The output columns `lo..hi` of kernel column `kx` whose taps lie inside the
/// input, and the input column `ix_lo` of output column `lo` (see
/// [`Conv2dParams::valid_out_x`]). Computed once per row segment: it divides.
#[derive(Clone, Copy)]
struct ValidX {
    lo: usize,
    hi: usize,
    ix_lo: usize,
    stride: usize,
}

impl ValidX {
    fn new(p: &Conv2dParams, kx: usize) -> Self {
        let (lo, hi, ix_lo) = p.valid_out_x(kx);
        ValidX {
            lo,
            hi,
            ix_lo,
            stride: p.stride[1],
        }
    }

    /// The part `a..b` of the output columns `ox0..ox0 + len` whose taps are
    /// inside the input, as offsets into the run, and the input column of its
    /// first entry.
    #[inline(always)]
    fn part(&self, ox0: usize, len: usize) -> (usize, usize, usize) {
        let end = ox0 + len;
        let (a, b) = (self.lo.clamp(ox0, end), self.hi.clamp(ox0, end));
        if a >= b {
            return (0, 0, 0); // the whole run is padding
        }
        (a - ox0, b - ox0, self.ix_lo + (a - self.lo) * self.stride)
    }
}

/// dst = row `r` of the im2col matrix of `x_group` (the `c_in/groups` input
/// planes of one image and group), pixels `n0..n0 + dst.len()`.
pub fn gather_row(p: &Conv2dParams, x_group: &[f32], r: usize, n0: usize, dst: &mut [f32]) {
    let (ic, ky, kx) = split_row(p, r);
    let plane = &x_group[ic * p.in_plane()..][..p.in_plane()];
    let (sx, valid) = (p.stride[1], ValidX::new(p, kx));
    for_each_run(p, n0, dst.len(), |oy, ox0, range| {
        let out = &mut dst[range];
        let Some(iy) = p.in_y(oy, ky) else {
            out.fill(0.0);
            return;
        };
        let row = &plane[iy * p.w..][..p.w];
        let (a, b, ix) = valid.part(ox0, out.len());
        out[..a].fill(0.0);
        out[b..].fill(0.0);
        let seg = &mut out[a..b];
        if sx == 1 {
            seg.copy_from_slice(&row[ix..ix + seg.len()]);
        } else {
            for (i, v) in seg.iter_mut().enumerate() {
                *v = row[ix + i * sx];
            }
        }
    });
}

/// The adjoint of [`gather_row`]: adds `src` (row `r`, pixels `n0..`) into the
/// input-gradient planes `dx_group` at the positions the row was gathered from.
pub fn scatter_add_row(p: &Conv2dParams, dx_group: &mut [f32], r: usize, n0: usize, src: &[f32]) {
    let (ic, ky, kx) = split_row(p, r);
    let plane = &mut dx_group[ic * p.in_plane()..][..p.in_plane()];
    let (sx, valid) = (p.stride[1], ValidX::new(p, kx));
    for_each_run(p, n0, src.len(), |oy, ox0, range| {
        let Some(iy) = p.in_y(oy, ky) else { return };
        let inp = &src[range];
        let row = &mut plane[iy * p.w..][..p.w];
        let (a, b, ix) = valid.part(ox0, inp.len());
        let seg = &inp[a..b];
        if sx == 1 {
            for (d, s) in row[ix..ix + seg.len()].iter_mut().zip(seg) {
                *d += s;
            }
        } else {
            for (i, s) in seg.iter().enumerate() {
                row[ix + i * sx] += s;
            }
        }
    });
}

/// Writes the whole im2col matrix (`k_size` rows of `out_plane` pixels, row
/// stride `ld`) of one image and group into `cols`. The kernels pack it
/// implicitly instead; the tests compare against this explicit form.
#[cfg(test)]
pub fn im2col(p: &Conv2dParams, x_group: &[f32], cols: &mut [f32], ld: usize) {
    let n = p.out_plane();
    for r in 0..p.k_size() {
        gather_row(p, x_group, r, 0, &mut cols[r * ld..][..n]);
    }
}

/// dx_group += col2im of the pixel columns `n0 .. n0 + width` of the im2col
/// matrix, given as `k_size` rows of `width` floats in `dcols`. Rows are added
/// in a fixed order, so the result does not depend on threads.
pub fn col2im_add(p: &Conv2dParams, dcols: &[f32], n0: usize, dx_group: &mut [f32]) {
    let width = dcols.len() / p.k_size();
    for (r, row) in dcols.chunks_exact(width).enumerate() {
        scatter_add_row(p, dx_group, r, n0, row);
    }
}

/// The im2col matrices of consecutive images of one group, side by side:
/// column `q` is pixel `q % out_plane` of image `images.start + q / out_plane`.
/// Never stored: the two GEMM operand views below gather their packed blocks
/// straight from the NCHW input (implicit im2col).
#[derive(Clone)]
pub struct Im2colImages<'a> {
    pub p: &'a Conv2dParams,
    /// The whole input batch.
    pub x: &'a [f32],
    pub images: std::ops::Range<usize>,
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
                for (s, chunk) in row[..width].chunks(NR).enumerate() {
                    let dst = &mut out[(first_strip + s) * strip_len + p * NR..][..NR];
                    dst[..chunk.len()].copy_from_slice(chunk);
                    dst[chunk.len()..].fill(0.0);
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
        let mut column = [0.0f32; PACK_ROWS];
        for (s, strip) in out.chunks_exact_mut(kc * NR).enumerate() {
            for jj in 0..NR {
                let r = j0 + s * NR + jj;
                if r >= j0 + nc {
                    strip.iter_mut().skip(jj).step_by(NR).for_each(|v| *v = 0.0);
                    continue;
                }
                // A column of B is a contiguous im2col row segment: gather it,
                // then write it down the strip with stride NR.
                for p0 in (0..kc).step_by(PACK_ROWS) {
                    let len = PACK_ROWS.min(kc - p0);
                    self.0.gather_pixels(r, k0 + p0, &mut column[..len]);
                    for (p, v) in column[..len].iter().enumerate() {
                        strip[(p0 + p) * NR + jj] = *v;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(
        hw: [usize; 2],
        k: [usize; 2],
        s: [usize; 2],
        pad: [usize; 4],
        d: [usize; 2],
    ) -> Conv2dParams {
        Conv2dParams::new(
            "test",
            [1, 2, hw[0], hw[1]],
            [1, 2, k[0], k[1]],
            s,
            pad,
            d,
            1,
        )
        .unwrap()
    }

    /// The im2col entry by its definition, one element at a time.
    fn entry(p: &Conv2dParams, x: &[f32], r: usize, n: usize) -> f32 {
        let (ic, ky, kx) = split_row(p, r);
        let (oy, ox) = (n / p.out_w, n % p.out_w);
        let iy = (oy * p.stride[0] + ky * p.dilation[0]) as isize - p.padding[0] as isize;
        let ix = (ox * p.stride[1] + kx * p.dilation[1]) as isize - p.padding[2] as isize;
        if iy < 0 || ix < 0 || iy >= p.h as isize || ix >= p.w as isize {
            0.0
        } else {
            x[ic * p.h * p.w + iy as usize * p.w + ix as usize]
        }
    }

    fn cases() -> Vec<Conv2dParams> {
        vec![
            params([5, 7], [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]),
            params([6, 9], [2, 4], [2, 3], [0, 2, 3, 1], [1, 1]),
            params([7, 8], [3, 2], [1, 2], [2, 0, 0, 4], [2, 3]),
            params([4, 4], [4, 4], [1, 1], [0; 4], [1, 1]),
            params([1, 1], [3, 3], [5, 5], [1, 1, 1, 1], [1, 1]),
            params([3, 11], [1, 5], [3, 1], [0, 0, 5, 6], [1, 2]),
        ]
    }

    #[test]
    fn gathered_segments_match_the_definition() {
        for p in cases() {
            let x: Vec<f32> = (0..2 * p.h * p.w).map(|v| v as f32 + 1.0).collect();
            let (k, n) = (p.k_size(), p.out_plane());
            for r in 0..k {
                // Every segment start and length, so runs split across output rows are covered.
                for n0 in 0..n {
                    for len in 1..=(n - n0).min(2 * p.out_w + 1) {
                        let mut dst = vec![f32::NAN; len];
                        gather_row(&p, &x, r, n0, &mut dst);
                        for (j, v) in dst.iter().enumerate() {
                            assert_eq!(*v, entry(&p, &x, r, n0 + j), "{p:?} r={r} n={}", n0 + j);
                        }
                    }
                }
            }
        }
    }

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

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        for p in cases() {
            let (k, n, xs) = (p.k_size(), p.out_plane(), 2 * p.h * p.w);
            let x: Vec<f32> = (0..xs).map(|v| ((v * 7) % 11) as f32 - 5.0).collect();
            let c: Vec<f32> = (0..k * n).map(|v| ((v * 5) % 13) as f32 - 6.0).collect();
            let mut cols = vec![f32::NAN; k * n];
            im2col(&p, &x, &mut cols, n);
            let mut dx = vec![0.0; xs];
            col2im_add(&p, &c, 0, &mut dx);
            // <im2col(x), c> == <x, col2im(c)>, exactly in integers.
            let lhs: f64 = cols.iter().zip(&c).map(|(a, b)| (a * b) as f64).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| (a * b) as f64).sum();
            assert_eq!(lhs, rhs, "{p:?}");
        }
    }
}
