//! The two layouts of the direct path (see the module comment of
//! `direct.rs`) and the copies between them and NCHW tensors.

use super::STEP;
#[cfg(target_arch = "x86_64")]
use crate::kernels::conv::direct_avx2;
use crate::kernels::conv::Conv2dParams;

/// Layers whose shifted planes of one image (all source channels of a group)
/// are at most this many floats (32 KiB: L1) take the shifted layout; the
/// others the padded one. Measured on 1 thread, shifted / padded time for
/// forward, grad input, grad weight: LeNet's conv1 0.85, -, 0.85 and conv2
/// 0.8, 0.9, 0.85 (they also shed the padded layout's row copies); on
/// vgg_small's 3x3 layers (16-32 channels, 16x16 and 32x32 planes, 55-210 KiB
/// of shifted planes) grad input was up to 1.8x slower and the others mixed.
const SHIFTED_MAX_FLOATS: usize = 8 << 10;

/// The layout of one layer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flat {
    pub kh: usize,
    pub kw: usize,
    /// Shifted planes (rows of `out_w`, one plane per kernel column) or padded ones (rows of `wp`).
    pub shifted: bool,
    /// Row length of the source planes and of the flat output planes.
    pub row: usize,
    /// Flat positions computed per output plane (a multiple of [`STEP`]):
    /// shifted, `out_h * out_w` rounded up; padded, `(out_h - 1) * wp + out_w` rounded up.
    pub len: usize,
    /// Floats per source plane: its rows and the zeros read by the computed
    /// positions past the last output pixel.
    pub plane: usize,
    /// Tap (s, ky, kx) of flat position j is source float
    /// `s * tap_s + ky * tap_ky + kx * tap_kx + j`.
    pub tap_s: usize,
    pub tap_ky: usize,
    pub tap_kx: usize,
    /// Floats between the output planes the forward kernel writes; it stores
    /// their first `out_stride` positions (shifted: `out_h * out_w`, straight
    /// into y; padded: `len`, into a scratch).
    pub out_stride: usize,
}

impl Flat {
    pub(crate) fn new(p: &Conv2dParams) -> Flat {
        let shifted = Flat::shifted(p);
        if shifted.kw * shifted.plane * p.c_in_per_group() <= SHIFTED_MAX_FLOATS {
            shifted
        } else {
            Flat::padded(p)
        }
    }

    /// One plane per (source channel, kernel column kx) holding rows
    /// `0..out_h + kh - 1` of the padded input, columns `kx..kx + out_w`:
    /// tap (ky, kx) of output pixel j = oy * out_w + ox is at `j + ky * out_w`
    /// in plane kx, so no computed position is wasted on padding columns.
    fn shifted(p: &Conv2dParams) -> Flat {
        let row = p.out_w;
        let len = (p.out_h * row).next_multiple_of(STEP);
        let plane = (len + (p.kh - 1) * row).next_multiple_of(STEP);
        Flat {
            kh: p.kh,
            kw: p.kw,
            shifted: true,
            row,
            len,
            plane,
            tap_s: p.kw * plane,
            tap_ky: row,
            tap_kx: plane,
            out_stride: p.out_h * p.out_w,
        }
    }

    /// One zero-padded plane per source channel with rows of `wp = pad_left +
    /// w + pad_right`: tap (ky, kx) of flat position j = oy * wp + ox is at
    /// `j + ky * wp + kx`; the positions with `ox >= out_w` are computed on
    /// padding and never copied out.
    pub(crate) fn padded(p: &Conv2dParams) -> Flat {
        let [top, bottom, left, right] = p.padding;
        let row = left + p.w + right;
        let len = ((p.out_h - 1) * row + p.out_w).next_multiple_of(STEP);
        let reach = len + (p.kh - 1) * row + p.kw - 1;
        let plane = reach.max((top + p.h + bottom) * row).next_multiple_of(STEP);
        Flat {
            kh: p.kh,
            kw: p.kw,
            shifted: false,
            row,
            len,
            plane,
            tap_s: plane,
            tap_ky: row,
            tap_kx: 1,
            out_stride: len,
        }
    }

    /// Whether `n` source channels fit in `floats`: every tap of every
    /// computed position of the last channel lies below `n * tap_s`.
    pub(crate) fn sources_fit(&self, n: usize, floats: usize) -> bool {
        (self.kh - 1) * self.tap_ky + (self.kw - 1) * self.tap_kx + self.len <= self.tap_s
            && floats >= n * self.tap_s
    }

    /// Whether dY's NCHW planes are already flat output planes (read in place).
    pub(crate) fn dy_in_place(&self, p: &Conv2dParams) -> bool {
        self.shifted && self.len == p.out_plane()
    }
}

/// One copy of `len` floats from offset `src` to offset `dst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub src: usize,
    pub dst: usize,
    pub len: usize,
}

impl Run {
    /// The same copy the other way.
    pub(crate) fn reversed(self) -> Run {
        Run {
            src: self.dst,
            dst: self.src,
            len: self.len,
        }
    }
}

/// `runs` with each run that continues the one before (in both source and
/// destination) merged into it.
fn merged(runs: impl IntoIterator<Item = Run>) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for r in runs {
        match out.last_mut() {
            Some(last) if last.src + last.len == r.src && last.dst + last.len == r.dst => {
                last.len += r.len;
            }
            _ => out.push(r),
        }
    }
    out
}

/// For kernel column kx of a shifted plane: the output columns `ox0..ox1`
/// whose input column `ox + kx - pad_left` lies inside the image, and the
/// first of those input columns (the other columns stay zero).
fn column_run(p: &Conv2dParams, kx: usize) -> Option<(usize, usize, usize)> {
    let left = p.padding[2];
    let ox0 = left.saturating_sub(kx);
    let ox1 = p.out_w.min((p.w + left).saturating_sub(kx));
    (ox0 < ox1).then(|| (ox0, ox1, ox0 + kx - left))
}

/// The runs that copy `planes` input planes (`p.h x p.w`, NCHW) into their
/// source planes. The padding positions are in no run: they stay zero.
pub(crate) fn source_runs(p: &Conv2dParams, f: &Flat, planes: usize) -> Vec<Run> {
    let (top, left) = (p.padding[0], p.padding[2]);
    let mut runs = Vec::new();
    for s in 0..planes {
        if !f.shifted {
            runs.extend((0..p.h).map(|iy| Run {
                src: s * p.in_plane() + iy * p.w,
                dst: s * f.tap_s + (iy + top) * f.row + left,
                len: p.w,
            }));
            continue;
        }
        for kx in 0..f.kw {
            let Some((ox0, ox1, ix0)) = column_run(p, kx) else {
                continue;
            };
            runs.extend((0..p.h).map(|iy| Run {
                src: s * p.in_plane() + iy * p.w + ix0,
                dst: s * f.tap_s + kx * f.plane + (iy + top) * f.row + ox0,
                len: ox1 - ox0,
            }));
        }
    }
    merged(runs)
}

/// The runs that copy `planes` output planes (`out_h x out_w`, NCHW) to flat
/// output planes of `f.len` floats (the other positions stay zero).
pub(crate) fn flat_runs(p: &Conv2dParams, f: &Flat, planes: usize) -> Vec<Run> {
    merged((0..planes * p.out_h).map(|i| {
        let (c, oy) = (i / p.out_h, i % p.out_h);
        Run {
            src: i * p.out_w,
            dst: c * f.len + oy * f.row,
            len: p.out_w,
        }
    }))
}

/// Copies `src` to `dst` along `runs` (AVX2 if `simd`: a call to memcpy per
/// short run would cost as much as the copy).
pub(crate) fn copy_along(simd: bool, runs: &[Run], src: &[f32], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { direct_avx2::copy_runs(runs, src, dst) };
    }
    let _ = simd;
    for r in runs {
        dst[r.dst..][..r.len].copy_from_slice(&src[r.src..][..r.len]);
    }
}

/// Grad input from the grad of the source planes `src` (`planes` channels)
/// into the NCHW input planes `dst` (`p.h x p.w`, overwritten): padded, the
/// interior of each plane; shifted, the sum over kernel columns of the
/// positions each input pixel was copied to (the adjoint of the copy).
pub(crate) fn source_grad_to_input(
    simd: bool,
    p: &Conv2dParams,
    f: &Flat,
    interior: &[Run],
    src: &[f32],
    planes: usize,
    dst: &mut [f32],
) {
    if !f.shifted {
        return copy_along(simd, interior, src, dst);
    }
    let (top, left) = (p.padding[0], p.padding[2]);
    #[cfg(target_arch = "x86_64")]
    if simd && f.kw <= direct_avx2::UNSHIFT_MAX_KW {
        // SAFETY: the CPU has AVX2 and FMA; the kernel checks the lengths.
        return unsafe { direct_avx2::unshift(f, [p.h, p.w], [top, left], src, planes, dst) };
    }
    let columns: Vec<_> = (0..f.kw).map(|kx| column_run(p, kx)).collect();
    for (s_planes, d) in src
        .chunks_exact(f.tap_s)
        .zip(dst.chunks_exact_mut(p.in_plane()))
        .take(planes)
    {
        d.fill(0.0);
        for (kx, run) in columns.iter().enumerate() {
            let Some((ox0, ox1, ix0)) = *run else {
                continue;
            };
            let s_plane = &s_planes[kx * f.plane..][..f.plane];
            for (iy, row) in d.chunks_exact_mut(p.w).enumerate() {
                let at = (iy + top) * f.row + ox0;
                for (d, s) in row[ix0..][..ox1 - ox0].iter_mut().zip(&s_plane[at..]) {
                    *d += *s;
                }
            }
        }
    }
}
