//! Implicit im2col: the im2col matrices of a run of images as GEMM `B`
//! operands ([`PackB`]) that gather their packed blocks straight from the
//! NCHW input, so no im2col buffer is ever materialised.

use std::cell::Cell;
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

thread_local! {
    /// Zero-padded input planes, kept per thread between calls.
    static PADDED_BUF: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// The forward GEMM's `B` operand: gathered from x ([`Im2colMatrix`]), or for
/// stride 1 and dilation 1 from zero-padded copies of the input planes
/// ([`PaddedIm2col`]).
pub enum ForwardCols<'a> {
    Gather(Im2colMatrix<'a>),
    Padded(PaddedIm2col<'a>),
}

impl PackB for ForwardCols<'_> {
    fn rows(&self) -> usize {
        match self {
            ForwardCols::Gather(m) => m.rows(),
            ForwardCols::Padded(m) => m.rows(),
        }
    }

    fn cols(&self) -> usize {
        match self {
            ForwardCols::Gather(m) => m.cols(),
            ForwardCols::Padded(m) => m.cols(),
        }
    }

    fn pack(&self, k0: usize, kc: usize, j0: usize, nc: usize, out: &mut [f32]) {
        match self {
            ForwardCols::Gather(m) => m.pack(k0, kc, j0, nc, out),
            ForwardCols::Padded(m) => m.pack(k0, kc, j0, nc, out),
        }
    }
}

/// Runs `f` with the forward operand of `im` that packs fastest.
pub fn with_forward_cols<R>(im: Im2colImages, f: impl FnOnce(&ForwardCols) -> R) -> R {
    if !unit_stride(im.p) {
        return f(&ForwardCols::Gather(Im2colMatrix(im)));
    }
    with_padded(im, |padded| f(&ForwardCols::Padded(padded)))
}

fn unit_stride(p: &Conv2dParams) -> bool {
    p.stride == [1, 1] && p.dilation == [1, 1]
}

/// Runs `f` on the images' input planes of the group copied into zero-padded
/// planes (a thread-local buffer, 1/(kh*kw) of the im2col volume), so that
/// packing needs no bounds checks at all. Stride 1 and dilation 1 only.
fn with_padded<R>(im: Im2colImages, f: impl FnOnce(PaddedIm2col) -> R) -> R {
    let p = im.p;
    let [top, bottom, left, right] = p.padding;
    let (pad_h, pad_w) = (p.h + top + bottom, p.w + left + right);
    let cig = p.c_in_per_group();
    let len = im.images.len() * cig * pad_h * pad_w;
    // Taken out and put back, so a re-entrant call (rayon may run another job
    // on this thread while the GEMM waits) gets a buffer of its own.
    let mut buf = PADDED_BUF.take();
    if buf.len() < len {
        buf = vec![0.0; len];
    }
    let xpad = &mut buf[..len];
    let group_len = cig * p.in_plane();
    for (j, image) in im.images.clone().enumerate() {
        let x_group = &im.x[(image * p.groups + im.group) * group_len..][..group_len];
        let dst = &mut xpad[j * cig * pad_h * pad_w..][..cig * pad_h * pad_w];
        for (plane, src) in dst
            .chunks_exact_mut(pad_h * pad_w)
            .zip(x_group.chunks_exact(p.in_plane()))
        {
            plane[..top * pad_w].fill(0.0);
            plane[(top + p.h) * pad_w..].fill(0.0);
            for (row, src_row) in plane[top * pad_w..(top + p.h) * pad_w]
                .chunks_exact_mut(pad_w)
                .zip(src.chunks_exact(p.w))
            {
                row[..left].fill(0.0);
                row[left..left + p.w].copy_from_slice(src_row);
                row[left + p.w..].fill(0.0);
            }
        }
    }
    let result = f(PaddedIm2col {
        p,
        xpad,
        images: im.images.len(),
        pad_h,
        pad_w,
    });
    PADDED_BUF.set(buf);
    result
}

/// The im2col matrix of consecutive images for stride 1 and dilation 1, read
/// from zero-padded planes: entry (tap (ic, ky, kx), pixel (oy, ox)) of image
/// j is `xpad[j][ic][oy + ky][ox + kx]`, so an output row's run of pixels is a
/// contiguous run of a padded row.
pub struct PaddedIm2col<'a> {
    p: &'a Conv2dParams,
    /// `images` x C_in/groups planes of `pad_h` x `pad_w`.
    xpad: &'a [f32],
    images: usize,
    pad_h: usize,
    pad_w: usize,
}

/// One contiguous piece of a packed strip row: `len` floats at offset `dst`
/// of the strip area (plus `p * NR` for row p), read from `src` (plus the
/// tap's offset) in the padded planes.
struct StripRun {
    dst: usize,
    src: usize,
    len: usize,
}

impl PackB for PaddedIm2col<'_> {
    fn rows(&self) -> usize {
        self.p.k_size()
    }

    fn cols(&self) -> usize {
        self.images * self.p.out_plane()
    }

    fn pack(&self, k0: usize, kc: usize, j0: usize, nc: usize, out: &mut [f32]) {
        let p = self.p;
        let (n, pad_plane) = (p.out_plane(), self.pad_h * self.pad_w);
        let image_len = p.c_in_per_group() * pad_plane;
        // The panel's pixels as runs that stay within one output row and one strip.
        let mut runs = Vec::with_capacity(nc.div_ceil(NR) * 2);
        let mut q = 0;
        while q < nc {
            let (image, pixel) = ((j0 + q) / n, (j0 + q) % n);
            let (oy, ox) = (pixel / p.out_w, pixel % p.out_w);
            let (strip, lane) = (q / NR, q % NR);
            let len = (p.out_w - ox).min(NR - lane).min(nc - q);
            runs.push(StripRun {
                dst: strip * kc * NR + lane,
                src: image * image_len + oy * self.pad_w + ox,
                len,
            });
            q += len;
        }
        if !nc.is_multiple_of(NR) {
            let last = &mut out[(nc / NR) * kc * NR..];
            for row in last.chunks_exact_mut(NR) {
                row[nc % NR..].fill(0.0);
            }
        }
        let khw = p.kh * p.kw;
        let (mut ic, mut ky, mut kx) = (k0 / khw, k0 / p.kw % p.kh, k0 % p.kw);
        for row in 0..kc {
            let tap = ic * pad_plane + ky * self.pad_w + kx;
            for run in &runs {
                let dst = &mut out[run.dst + row * NR..][..run.len];
                let src = &self.xpad[run.src + tap..][..run.len];
                match run.len {
                    NR => copy_block::<NR>(dst, src),
                    8 => copy_block::<8>(dst, src),
                    _ => dst.copy_from_slice(src),
                }
            }
            kx += 1;
            if kx == p.kw {
                kx = 0;
                ky += 1;
                if ky == p.kh {
                    ky = 0;
                    ic += 1;
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
        // gather them side by side (16 KiB, in L1), then transpose them into
        // the strip (8 x 8 register transposes with AVX2).
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
                // The operand the forward pass uses (padded planes at unit stride).
                let mut fast = vec![f32::NAN; len];
                let images = Im2colImages {
                    p: &p,
                    x: &x,
                    images: 0..1,
                    group: 0,
                };
                with_forward_cols(images, |b| b.pack(k0, kc, j0, nc, &mut fast));
                assert_eq!(
                    want, fast,
                    "{p:?} block {k0} {kc} {j0} {nc} (forward operand)"
                );
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
                let mut fast = vec![f32::NAN; len];
                let two = Im2colImages {
                    p: &p,
                    x: &x,
                    images: 1..3,
                    group,
                };
                with_forward_cols(two, |b| b.pack(0, k, 0, 2 * n, &mut fast));
                assert_eq!(want, fast, "{p:?} group {group} forward operand");
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
