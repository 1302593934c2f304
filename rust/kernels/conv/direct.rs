//! Direct convolution (no im2col) for stride-1, dilation-1 layers with few
//! channels, such as LeNet-5's (1->6 and 6->16 channels, 5x5 kernels).
//!
//! Why: with C_out = 6 or 16 and K = C_in*kH*kW = 25 or 150, the GEMM path
//! uses each gathered im2col element only C_out times, so gathering and
//! scattering the im2col matrix took half of a LeNet step and the GEMM
//! micro-kernel a fifth. Here the input planes are copied once per image into
//! a zero-padded scratch and the kernels read them in place.
//!
//! The flat layout: every padded plane has rows of `wp = pad_left + w +
//! pad_right` floats, and output pixel (oy, ox) is computed at flat position
//! `j = oy * wp + ox`. Then the input tap (ky, kx) of every output is at
//! `j + ky * wp + kx`: one convolution of a whole plane is a 1-D correlation
//! with kH*kW offsets, vectorised along j across output rows. Positions with
//! `ox >= out_w` (the last kW-1 of each row) and past the last pixel (up to a
//! whole number of vectors) are computed on padding and never copied out:
//! the price is (kW-1)/wp of the work (2/7 on LeNet's conv2).
//!
//! - forward: `y[c][j] = bias[c] + sum over (s, ky, kx) of w[c][s][ky][kx] * x[s][j + ky*wp + kx]`
//! - grad input: `dx[s][j + ky*wp + kx] += sum over c of w[c][s][ky][kx] * dy[c][j]`, tap by
//!   tap (a scatter: the adjoint correlation would spend half its work on the
//!   kH-1 rows of zeros around small dY planes)
//! - grad weight: `dw[c][s][ky][kx] = sum over images and j of dy[c][j] * x[s][j + ky*wp + kx]`
//!   with dY's junk positions zero, so they add nothing.
//!
//! `direct_avx2.rs` holds the AVX2+FMA kernels, `direct_portable.rs` the
//! plain-Rust ones; this file the dispatch rule, layouts and threading.

use std::ops::Range;

#[cfg(target_arch = "x86_64")]
use super::direct_avx2;
use super::params::Conv2dParams;
use super::weight_grad::{batch_chunks, bias_grad_chunk, chunk_range, sum_partials};
use super::{direct_portable, Plan};
use crate::threading;

/// Layers whose input and output channels per group are both at most this
/// many take the direct path. Measured on 1 thread (AVX2, dev-opt build, busy
/// 2-core VM, so +-15%; benches/convparts.py and the same loop on other
/// shapes), direct path time / GEMM path time for forward, grad input, grad
/// weight: LeNet's layers (1->6, 6->16, 5x5, batch 64) 0.4, 0.3-0.5, 0.2-0.4;
/// 32->32 3x3 on 16x16 and 32x32 planes 0.6-0.7 on all three passes; 64->64
/// 3x3 on 32x32 about even (0.95, 0.9, 1.02); 128->128 and 256->256 (VGG) the
/// direct path is 1.5-2.8x slower on the backward passes: there the GEMM's
/// 6x16 register tile reuses each loaded value as often, and a block's
/// weights (6 x C_in x kH x kW) no longer stay in L1 while its tile loops
/// over them. VGG's 64+ channel layers therefore keep the GEMM path.
const MAX_DIRECT_CHANNELS: usize = 32;

/// Flat positions are computed in whole 8-float vectors.
pub(super) const STEP: usize = 8;

/// Whether this layer takes the direct path: a function of the shape only.
pub fn suits(p: &Conv2dParams) -> bool {
    p.stride == [1, 1]
        && p.dilation == [1, 1]
        && !p.is_pointwise()
        && p.c_in_per_group() <= MAX_DIRECT_CHANNELS
        && p.c_out_per_group() <= MAX_DIRECT_CHANNELS
        && padded_scratch_fits(p)
}

/// Whether the shifted planes of one image (the scratch of every kernel
/// here) can be indexed without overflow: with absurd padding they may not,
/// and the GEMM path, which never stores them, takes the layer instead.
fn padded_scratch_fits(p: &Conv2dParams) -> bool {
    (p.out_h + p.kh)
        .checked_mul(p.out_w)
        .and_then(|n| n.checked_add(2 * STEP))
        .and_then(|n| n.checked_mul(p.kw))
        .and_then(|n| n.checked_mul(MAX_DIRECT_CHANNELS))
        .is_some_and(|n| n <= isize::MAX as usize / 8)
}

/// The layout of one layer: the "shifted planes" of the module comment.
#[derive(Clone, Copy, Debug)]
pub(super) struct Flat {
    pub kh: usize,
    pub kw: usize,
    /// Output width: the row length of every shifted plane and output plane.
    pub ow: usize,
    /// Output pixels per plane (`out_h * out_w`): the positions stored.
    pub pixels: usize,
    /// Flat positions computed per output plane: `out_h * out_w` rounded up
    /// to a multiple of [`STEP`].
    pub len: usize,
    /// Floats per shifted plane: its `out_h + kh - 1` rows of `ow`, and the
    /// zeros read by the computed positions past the last output pixel.
    pub plane: usize,
    /// Tap (s, ky, kx) of output position j is source float
    /// `s * tap_s + ky * tap_ky + kx * tap_kx + j` (source channel s has kw
    /// planes, one per kernel column).
    pub tap_s: usize,
    pub tap_ky: usize,
    pub tap_kx: usize,
}

impl Flat {
    pub(super) fn new(p: &Conv2dParams) -> Flat {
        let ow = p.out_w;
        let len = (p.out_h * ow).next_multiple_of(STEP);
        let plane = (len + (p.kh - 1) * ow).next_multiple_of(STEP);
        Flat {
            kh: p.kh,
            kw: p.kw,
            ow,
            pixels: p.out_h * ow,
            len,
            plane,
            tap_s: p.kw * plane,
            tap_ky: ow,
            tap_kx: plane,
        }
    }

    /// Whether `n` source channels fit in `floats`: every tap of every
    /// computed position of the last channel lies below `n * tap_s`.
    pub(super) fn sources_fit(&self, n: usize, floats: usize) -> bool {
        (self.kh - 1) * self.tap_ky + (self.kw - 1) * self.tap_kx + self.len <= self.tap_s
            && floats >= n * self.tap_s
    }
}

/// For each kernel column kx and row of a shifted plane: the run of output
/// columns `ox0..ox1` whose input column `ox + kx - pad_left` lies inside the
/// image, with its first input column (the other columns stay zero).
fn column_run(p: &Conv2dParams, kx: usize) -> Option<(usize, usize, usize)> {
    let left = p.padding[2];
    let ox0 = left.saturating_sub(kx);
    let ox1 = p.out_w.min((p.w + left).saturating_sub(kx));
    (ox0 < ox1).then(|| (ox0, ox1, ox0 + kx - left))
}

/// One run of `shift_planes`: `len` floats from `src` (offset in the input
/// planes of an image) to `dst` (offset in its shifted planes).
#[derive(Clone, Copy, Debug)]
pub(super) struct Run {
    pub src: usize,
    pub dst: usize,
    pub len: usize,
}

/// The runs that copy `planes` input planes (`p.h x p.w`) to their shifted
/// planes: plane (s, kx) row r, column ox holds input (r - pad_top, ox + kx -
/// pad_left). The padding positions are not in any run: they stay zero.
fn shift_runs(p: &Conv2dParams, f: &Flat, planes: usize) -> Vec<Run> {
    let mut runs = Vec::with_capacity(planes * f.kw * p.h);
    for s in 0..planes {
        for kx in 0..f.kw {
            let Some((ox0, ox1, ix0)) = column_run(p, kx) else {
                continue;
            };
            for iy in 0..p.h {
                runs.push(Run {
                    src: s * p.in_plane() + iy * p.w + ix0,
                    dst: s * f.tap_s + kx * f.plane + (iy + p.padding[0]) * f.ow + ox0,
                    len: ox1 - ox0,
                });
            }
        }
    }
    runs
}

/// Copies the input planes `src` to the shifted planes `dst` along `runs`
/// (a call to memcpy per short run would cost as much as the copy).
fn shift_planes(simd: bool, runs: &[Run], src: &[f32], dst: &mut [f32]) {
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

/// Adds the shifted planes `src` of `planes` channels into the input planes
/// of `dst` (`p.h x p.w`, overwritten): the adjoint of `shift_planes`.
fn unshift_planes(
    simd: bool,
    p: &Conv2dParams,
    f: &Flat,
    src: &[f32],
    planes: usize,
    dst: &mut [f32],
) {
    let (top, left) = (p.padding[0], p.padding[2]);
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: the CPU has AVX2 and FMA; the kernel checks the lengths.
        return unsafe { direct_avx2::unshift(f, [p.h, p.w], [top, left], src, planes, dst) };
    }
    let _ = simd;
    let runs: Vec<_> = (0..f.kw).map(|kx| column_run(p, kx)).collect();
    for (s_planes, d) in src
        .chunks_exact(f.tap_s)
        .zip(dst.chunks_exact_mut(p.in_plane()))
        .take(planes)
    {
        d.fill(0.0);
        for (kx, run) in runs.iter().enumerate() {
            let Some((ox0, ox1, ix0)) = *run else {
                continue;
            };
            let s_plane = &s_planes[kx * f.plane..][..f.plane];
            for (iy, row) in d.chunks_exact_mut(p.w).enumerate() {
                let at = (iy + top) * f.ow + ox0;
                for (d, s) in row[ix0..][..ox1 - ox0].iter_mut().zip(&s_plane[at..]) {
                    *d += *s;
                }
            }
        }
    }
}

/// Copies `planes` output planes (`out_h x out_w`) of `src` to the planes
/// of `f.len` floats of `dst` (the tails stay as they are: zero).
fn spread_outputs(p: &Conv2dParams, f: &Flat, src: &[f32], planes: usize, dst: &mut [f32]) {
    for (s, d) in src
        .chunks_exact(p.out_plane())
        .zip(dst.chunks_exact_mut(f.len))
        .take(planes)
    {
        d[..s.len()].copy_from_slice(s);
    }
}

/// The forward kernel (see `direct_portable::correlate`), AVX2+FMA if `simd`.
#[allow(clippy::too_many_arguments)]
fn correlate(
    simd: bool,
    f: &Flat,
    src: &[f32],
    n_src: usize,
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [f32],
    n_out: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: the CPU has AVX2 and FMA; the kernel checks the lengths.
        return unsafe { direct_avx2::correlate(f, src, n_src, w, bias, relu, out, n_out) };
    }
    let _ = simd;
    direct_portable::correlate(f, src, n_src, w, bias, relu, out, n_out);
}

/// The grad-input kernel (see `direct_portable::scatter`), AVX2+FMA if `simd`.
fn scatter(
    simd: bool,
    f: &Flat,
    src: &[f32],
    n_src: usize,
    w: &[f32],
    dst: &mut [f32],
    n_dst: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: the CPU has AVX2 and FMA; the kernel checks the lengths.
        return unsafe { direct_avx2::scatter(f, src, n_src, w, dst, n_dst) };
    }
    let _ = simd;
    direct_portable::scatter(f, src, n_src, w, dst, n_dst);
}

/// The grad-weight kernel (see `direct_portable::weight_grad`), AVX2+FMA if `simd`.
#[allow(clippy::too_many_arguments)]
fn weight_grad_kernel(
    simd: bool,
    f: &Flat,
    x: &[f32],
    n_x: usize,
    dy: &[f32],
    n_dy: usize,
    dy_image: usize,
    images: usize,
    dw: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: the CPU has AVX2 and FMA; the kernel checks the lengths.
        return unsafe { direct_avx2::weight_grad(f, x, n_x, dy, n_dy, dy_image, images, dw) };
    }
    let _ = simd;
    direct_portable::weight_grad(f, x, n_x, dy, n_dy, dy_image, images, dw);
}

/// Runs `step(scratch, (image, output))` for every image, on the pool unless tiny.
fn over_images<S: Send>(
    p: &Conv2dParams,
    out: &mut [f32],
    image_len: usize,
    scratch: impl Fn() -> S + Send + Sync,
    step: impl Fn(&mut S, (usize, &mut [f32])) + Send + Sync,
) {
    if Plan::choose(p.batch, 2 * p.macs()) == Plan::Serial {
        let mut s = scratch();
        out.chunks_mut(image_len)
            .enumerate()
            .for_each(|item| step(&mut s, item));
    } else {
        threading::for_each_chunk_mut(out, image_len, scratch, step);
    }
}

/// y = conv(x, w) + bias (then ReLU), as [`super::conv2d_forward`], with the
/// AVX2+FMA kernel if `simd` (the CPU must have them), else the portable one.
pub fn forward(
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
    simd: bool,
) {
    let f = Flat::new(p);
    let (cig, cog) = (p.c_in_per_group(), p.c_out_per_group());
    let w_group = cog * p.k_size();
    let runs = shift_runs(p, &f, cig);
    let scratch = || vec![0.0; cig * f.tap_s];
    let step = |xs: &mut Vec<f32>, (b, y_img): (usize, &mut [f32])| {
        let x_img = &x[b * p.c_in * p.in_plane()..][..p.c_in * p.in_plane()];
        for g in 0..p.groups {
            shift_planes(simd, &runs, &x_img[g * cig * p.in_plane()..], xs);
            let w_g = &w[g * w_group..][..w_group];
            let b_g = bias.map(|b| &b[g * cog..][..cog]);
            let y_g = &mut y_img[g * cog * p.out_plane()..][..cog * p.out_plane()];
            correlate(simd, &f, xs, cig, w_g, b_g, relu, y_g, cog);
        }
    };
    over_images(p, y, p.c_out * p.out_plane(), scratch, step);
}

/// dx = d(loss)/dx given dy, as [`super::conv2d_backward_input`] (`simd` as in [`forward`]).
pub fn input_grad(p: &Conv2dParams, w: &[f32], dy: &[f32], dx: &mut [f32], simd: bool) {
    let f = Flat::new(p);
    let (cig, cog) = (p.c_in_per_group(), p.c_out_per_group());
    let w_group = cog * p.k_size();
    let y_image = p.c_out * p.out_plane();
    // Whole dY planes (no padding past the last pixel) are read in place.
    let in_place = f.pixels == f.len;
    let scratch = || (vec![0.0; cog * f.len], vec![0.0; cig * f.tap_s]);
    let step = |(dyp, dxs): &mut (Vec<f32>, Vec<f32>), (b, dx_img): (usize, &mut [f32])| {
        for g in 0..p.groups {
            let dy_g = &dy[b * y_image + g * cog * p.out_plane()..][..cog * p.out_plane()];
            let dy_planes = if in_place {
                dy_g
            } else {
                spread_outputs(p, &f, dy_g, cog, dyp);
                &dyp[..]
            };
            dxs.fill(0.0);
            let w_g = &w[g * w_group..][..w_group];
            scatter(simd, &f, dy_planes, cog, w_g, dxs, cig);
            let dx_g = &mut dx_img[g * cig * p.in_plane()..][..cig * p.in_plane()];
            unshift_planes(simd, p, &f, dxs, cig, dx_g);
        }
    };
    over_images(p, dx, p.c_in * p.in_plane(), scratch, step);
}

/// The shifted x planes and dY planes of up to this many floats are prepared
/// at a time in a grad-weight batch chunk (256 KiB: they stay in L2 while the
/// kernel passes over them once per block of weights).
const WEIGHT_GRAD_SCRATCH_FLOATS: usize = 64 << 10;

/// dw and optionally db, as [`super::conv2d_backward_weight`]: the same fixed
/// batch chunks, each summed into a private partial, the partials added in
/// chunk order, so the result is the same for any thread count (`simd` as in [`forward`]).
pub fn weight_grad(
    p: &Conv2dParams,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    simd: bool,
) {
    let f = Flat::new(p);
    let (cig, cog) = (p.c_in_per_group(), p.c_out_per_group());
    let per_image = cig * f.tap_s + cog * f.len;
    // Images per pass: fixed by the shape, so the sums are too.
    let per_pass = (WEIGHT_GRAD_SCRATCH_FLOATS / per_image).clamp(1, p.batch);
    let part_len = dw.len() + p.c_out;
    let n_chunks = batch_chunks(p);
    let runs = shift_runs(p, &f, cig);
    let scratch = || {
        (
            vec![0.0; per_pass * cig * f.tap_s],
            vec![0.0; per_pass * cog * f.len],
        )
    };
    let chunk = |(xs, dyp): &mut (Vec<f32>, Vec<f32>), (c, part): (usize, &mut [f32])| {
        let images = chunk_range(p.batch, n_chunks, c);
        let (dw_part, db_part) = part.split_at_mut(dw.len());
        for first in images.clone().step_by(per_pass) {
            let pass = first..(first + per_pass).min(images.end);
            weight_grad_pass(simd, p, &f, &runs, x, dy, pass, xs, dyp, dw_part);
        }
        bias_grad_chunk(p, dy, images, db_part);
    };
    let plan = Plan::choose(n_chunks, 2 * p.macs());
    let mut partials = vec![0.0; n_chunks * part_len];
    if plan == Plan::Serial {
        let mut s = scratch();
        partials
            .chunks_mut(part_len)
            .enumerate()
            .for_each(|item| chunk(&mut s, item));
    } else {
        threading::for_each_chunk_mut(&mut partials, part_len, scratch, chunk);
    }
    sum_partials(&partials, part_len, 0, dw, false);
    if let Some(db) = db {
        sum_partials(&partials, part_len, dw.len(), db, false);
    }
}

/// Adds the grad weight of the images `pass` to `dw_part`, group by group.
#[allow(clippy::too_many_arguments)]
fn weight_grad_pass(
    simd: bool,
    p: &Conv2dParams,
    f: &Flat,
    runs: &[Run],
    x: &[f32],
    dy: &[f32],
    pass: Range<usize>,
    xs: &mut [f32],
    dyp: &mut [f32],
    dw_part: &mut [f32],
) {
    let (cig, cog) = (p.c_in_per_group(), p.c_out_per_group());
    let (x_image, y_image) = (p.c_in * p.in_plane(), p.c_out * p.out_plane());
    let images = pass.len();
    // Whole dY planes (no padding past the last pixel) are read in place.
    let in_place = f.pixels == f.len;
    for g in 0..p.groups {
        for (j, b) in pass.clone().enumerate() {
            let x_g = &x[b * x_image + g * cig * p.in_plane()..];
            shift_planes(simd, runs, x_g, &mut xs[j * cig * f.tap_s..]);
            if !in_place {
                let dy_g = &dy[b * y_image + g * cog * p.out_plane()..];
                spread_outputs(p, f, dy_g, cog, &mut dyp[j * cog * f.len..]);
            }
        }
        let x_pass = &xs[..images * cig * f.tap_s];
        let (dy_pass, dy_image) = if in_place {
            (
                &dy[pass.start * y_image + g * cog * p.out_plane()..],
                y_image,
            )
        } else {
            (&dyp[..images * cog * f.len], cog * f.len)
        };
        let dw_g = &mut dw_part[g * cog * p.k_size()..][..cog * p.k_size()];
        weight_grad_kernel(simd, f, x_pass, cig, dy_pass, cog, dy_image, images, dw_g);
    }
}

/// Splits `n` channels into blocks of at most `max`, as even as possible
/// (16 channels in blocks of 6: 6, 5, 5), so no block wastes registers.
pub(super) fn channel_blocks(n: usize, max: usize) -> impl Iterator<Item = Range<usize>> {
    let blocks = n.div_ceil(max);
    (0..blocks).map(move |i| i * n / blocks..(i + 1) * n / blocks)
}
