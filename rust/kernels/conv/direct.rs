//! Direct convolution (no im2col) for stride-1, dilation-1 layers with few
//! channels, such as LeNet-5's (1->6 and 6->16 channels, 5x5 kernels).
//!
//! Why: with C_out = 6 or 16 and K = C_in*kH*kW = 25 or 150, the GEMM path
//! uses each gathered im2col element only C_out times, so gathering and
//! scattering the im2col matrix took half of a LeNet step and the GEMM
//! micro-kernel a fifth. Here the input planes are copied once per image into
//! "source planes" and the kernels read them in place.
//!
//! Both layouts (`direct_layout.rs`) make one convolution of a whole plane a
//! 1-D correlation over "flat positions" j with one offset per tap,
//! vectorised along j across output rows:
//! - padded: zero-padded planes with rows of `wp = pad_left + w + pad_right`,
//!   output pixel (oy, ox) at `j = oy * wp + ox`, tap (ky, kx) at `j + ky*wp + kx`.
//!   Positions with `ox >= out_w` are computed on padding and dropped: (kW-1)/wp
//!   of the work (2/7 on LeNet's conv2).
//! - shifted: one plane per kernel column kx holding the padded input's
//!   columns `kx..kx + out_w`, so rows are `out_w` long, pixel (oy, ox) at `j =
//!   oy * out_w + ox` and tap (ky, kx) at `j + ky*out_w` in plane kx. Nothing is
//!   wasted but the last vector, y and dY are flat already, and the price is kW
//!   copies of the input: taken where they stay in L1 (LeNet's layers).
//!
//! - forward: `y[c][j] = bias[c] + sum over (s, ky, kx) of w[c][s][ky][kx] * x[s][tap + j]`
//! - grad input: `dx[s][tap + j] += sum over c of w[c][s][ky][kx] * dy[c][j]`, tap by
//!   tap (a scatter: the adjoint correlation would spend half its work on the
//!   kH-1 rows of zeros around small dY planes), then back to NCHW
//! - grad weight: `dw[c][s][ky][kx] = sum over images and j of dy[c][j] * x[s][tap + j]`
//!   with dY's junk positions zero, so they add nothing.
//!
//! Forward and grad weight of layers with 16 output channels per group that
//! take the shifted layout (LeNet's conv2) go along the output channels
//! instead (`direct_channels.rs`): x is read in place, no position is wasted.
//!
//! `direct_avx2.rs` holds the AVX2+FMA kernels, `direct_portable.rs` the
//! plain-Rust ones; this file the dispatch rule and threading.

use std::ops::Range;

#[cfg(target_arch = "x86_64")]
use super::direct_avx2;
use super::params::Conv2dParams;
use super::weight_grad::{batch_chunks, bias_grad_chunk, chunk_range, sum_partials};
use super::{direct_portable, Plan};
use crate::threading;
// Declared here so that mod.rs stays as it is.
#[cfg(target_arch = "x86_64")]
#[path = "direct_channels.rs"]
mod channels;
#[path = "direct_layout.rs"]
mod layout;
use layout::{copy_along, flat_runs, source_grad_to_input, source_runs};
pub(super) use layout::{Flat, Run};

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

/// Whether the source planes of one image (the scratch of every kernel
/// here, in either layout) can be indexed without overflow: with absurd
/// padding they may not, and the GEMM path, which never stores them, takes
/// the layer instead.
fn padded_scratch_fits(p: &Conv2dParams) -> bool {
    let [top, bottom, left, right] = p.padding;
    let rows = (p.h + p.kh).checked_add(top + bottom);
    let cols = (p.w + p.kw).checked_add(left + right);
    rows.zip(cols)
        .and_then(|(r, c)| r.checked_mul(c))
        .and_then(|n| n.checked_add(2 * STEP))
        .and_then(|n| n.checked_mul(p.kw))
        .and_then(|n| n.checked_mul(MAX_DIRECT_CHANNELS))
        .is_some_and(|n| n <= isize::MAX as usize / 8)
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

/// The grad-input kernel (see `direct_portable::scatter`), AVX2+FMA if
/// `simd`: overwrites the `n_dst` source planes of `dst`.
fn scatter(
    simd: bool,
    f: &Flat,
    src: &[f32],
    n_src: usize,
    w: &[f32],
    dst: &mut [f32],
    n_dst: usize,
) {
    // The kernels overwrite the first len positions of each plane; the
    // rest, which later taps add to, starts at zero.
    for plane in dst[..n_dst * f.tap_s].chunks_exact_mut(f.plane) {
        plane[f.len..].fill(0.0);
    }
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
    #[cfg(target_arch = "x86_64")]
    if simd && f.shifted && channels::suits_channels(cog) {
        return forward_by_channels(p, x, w, bias, relu, y);
    }
    let w_group = cog * p.k_size();
    let runs = source_runs(p, &f, cig);
    // Padded: the flat outputs go to a scratch, their pixels to y.
    let out_runs: Vec<Run> = flat_runs(p, &f, cog)
        .into_iter()
        .map(Run::reversed)
        .collect();
    let scratch = || {
        let flat_out = if f.shifted { 0 } else { cog * f.len };
        (vec![0.0; cig * f.tap_s], vec![0.0; flat_out])
    };
    let step = |(xs, yp): &mut (Vec<f32>, Vec<f32>), (b, y_img): (usize, &mut [f32])| {
        let x_img = &x[b * p.c_in * p.in_plane()..][..p.c_in * p.in_plane()];
        for g in 0..p.groups {
            copy_along(simd, &runs, &x_img[g * cig * p.in_plane()..], xs);
            let w_g = &w[g * w_group..][..w_group];
            let b_g = bias.map(|b| &b[g * cog..][..cog]);
            let y_g = &mut y_img[g * cog * p.out_plane()..][..cog * p.out_plane()];
            if f.shifted {
                correlate(simd, &f, xs, cig, w_g, b_g, relu, y_g, cog);
            } else {
                correlate(simd, &f, xs, cig, w_g, b_g, relu, yp, cog);
                copy_along(simd, &out_runs, yp, y_g);
            }
        }
    };
    over_images(p, y, p.c_out * p.out_plane(), scratch, step);
}

/// [`forward`] by the channel-vectorised kernel of `direct_channels.rs`
/// (AVX2+FMA; 16 output channels per group).
#[cfg(target_arch = "x86_64")]
fn forward_by_channels(
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
) {
    let (cig, cog, k) = (p.c_in_per_group(), p.c_out_per_group(), p.k_size());
    let (geometry, in_place) = channel_geometry(p);
    // The weights of each group tap-major: wt[g][t][c] = w[g * cog + c][t].
    let mut wt = vec![0.0; w.len()];
    for (w_g, wt_g) in w.chunks_exact(cog * k).zip(wt.chunks_exact_mut(cog * k)) {
        for (c, w_c) in w_g.chunks_exact(k).enumerate() {
            for (t, v) in w_c.iter().enumerate() {
                wt_g[t * cog + c] = *v;
            }
        }
    }
    let runs = source_runs(p, &Flat::padded(p), cig);
    let pixels = p.out_plane();
    let scratch = || {
        let planes = if in_place { 0 } else { cig * geometry.plane };
        (vec![0.0; planes], vec![0.0; pixels * cog])
    };
    let step = |(xp, tile_out): &mut (Vec<f32>, Vec<f32>), (b, y_img): (usize, &mut [f32])| {
        let x_img = &x[b * p.c_in * p.in_plane()..][..p.c_in * p.in_plane()];
        for g in 0..p.groups {
            let x_g = &x_img[g * cig * p.in_plane()..][..cig * p.in_plane()];
            let src = if in_place {
                x_g
            } else {
                copy_along(true, &runs, x_g, xp);
                &xp[..]
            };
            let wt_g = &wt[g * cog * k..][..cog * k];
            let b_g = bias.map(|b| &b[g * cog..][..cog]);
            let y_g = &mut y_img[g * cog * pixels..][..cog * pixels];
            // SAFETY: the CPU has AVX2 and FMA (simd); the kernel checks the lengths.
            unsafe { channels::forward(&geometry, src, wt_g, b_g, relu, tile_out, y_g) };
        }
    };
    over_images(p, y, p.c_out * pixels, scratch, step);
}

/// dx = d(loss)/dx given dy, as [`super::conv2d_backward_input`] (`simd` as in [`forward`]).
pub fn input_grad(p: &Conv2dParams, w: &[f32], dy: &[f32], dx: &mut [f32], simd: bool) {
    let f = Flat::new(p);
    let (cig, cog) = (p.c_in_per_group(), p.c_out_per_group());
    let w_group = cog * p.k_size();
    let y_image = p.c_out * p.out_plane();
    let dy_runs = flat_runs(p, &f, cog);
    let interior: Vec<Run> = source_runs(p, &f, cig)
        .into_iter()
        .map(Run::reversed)
        .collect();
    let in_place = f.dy_in_place(p);
    let scratch = || {
        let flat_dy = if in_place { 0 } else { cog * f.len };
        (vec![0.0; flat_dy], vec![0.0; cig * f.tap_s])
    };
    let step = |(dyp, dxs): &mut (Vec<f32>, Vec<f32>), (b, dx_img): (usize, &mut [f32])| {
        for g in 0..p.groups {
            let dy_g = &dy[b * y_image + g * cog * p.out_plane()..][..cog * p.out_plane()];
            let dy_flat = if in_place {
                dy_g
            } else {
                copy_along(simd, &dy_runs, dy_g, dyp);
                &dyp[..]
            };
            let w_g = &w[g * w_group..][..w_group];
            scatter(simd, &f, dy_flat, cog, w_g, dxs, cig);
            let dx_g = &mut dx_img[g * cig * p.in_plane()..][..cig * p.in_plane()];
            source_grad_to_input(simd, p, &f, &interior, dxs, cig, dx_g);
        }
    };
    over_images(p, dx, p.c_in * p.in_plane(), scratch, step);
}

/// The source planes and flat dY planes of up to this many floats are
/// prepared at a time in a grad-weight batch chunk (256 KiB: they stay in L2
/// while the kernel passes over them once per block of weights).
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
    // Unlike the forward, the grad weight takes the channel kernel with either
    // layout: on vgg_small's 16->16 layer at 32x32 (padded layout) it cut the
    // pass from 2.3 to 1.7-2.0 ms (benches/conv_passes.py, 2 threads, b64),
    // while the forward by channels was slower there (1.9-2.0 against 1.6-1.7).
    #[cfg(target_arch = "x86_64")]
    if simd && channels::suits_channels(cog) {
        return weight_grad_by_channels(p, x, dy, dw, db);
    }
    let in_place = f.dy_in_place(p);
    let flat_dy = if in_place { 0 } else { cog * f.len };
    // Images per pass: fixed by the shape, so the sums are too.
    let per_pass = (WEIGHT_GRAD_SCRATCH_FLOATS / (cig * f.tap_s + flat_dy)).clamp(1, p.batch);
    let copies = PassCopies {
        x: source_runs(p, &f, cig),
        dy: flat_runs(p, &f, cog),
        dy_in_place: in_place,
    };
    let scratch = || {
        (
            vec![0.0; per_pass * cig * f.tap_s],
            vec![0.0; per_pass * flat_dy],
        )
    };
    let chunk =
        |(xs, dyp): &mut (Vec<f32>, Vec<f32>), images: Range<usize>, dw_part: &mut [f32]| {
            for first in images.clone().step_by(per_pass) {
                let pass = first..(first + per_pass).min(images.end);
                weight_grad_pass(simd, p, &f, &copies, x, dy, pass, xs, dyp, dw_part);
            }
        };
    over_batch_chunks(simd, p, dy, dw, db, scratch, chunk);
}

/// Runs `chunk(scratch, images, dw_partial)` for the fixed batch chunks, adds
/// the grad bias of each chunk to its partial, and sums the partials in
/// chunk order into dw and db (`simd` as in [`forward`]).
fn over_batch_chunks<S>(
    simd: bool,
    p: &Conv2dParams,
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    scratch: impl Fn() -> S + Send + Sync,
    chunk: impl Fn(&mut S, Range<usize>, &mut [f32]) + Send + Sync,
) {
    let part_len = dw.len() + p.c_out;
    let n_chunks = batch_chunks(p);
    let per_chunk = |s: &mut S, (c, part): (usize, &mut [f32])| {
        let images = chunk_range(p.batch, n_chunks, c);
        let (dw_part, db_part) = part.split_at_mut(dw.len());
        chunk(s, images.clone(), dw_part);
        bias_grad(simd, p, dy, images, db_part);
    };
    let plan = Plan::choose(n_chunks, 2 * p.macs());
    let mut partials = vec![0.0; n_chunks * part_len];
    if plan == Plan::Serial {
        let mut s = scratch();
        partials
            .chunks_mut(part_len)
            .enumerate()
            .for_each(|item| per_chunk(&mut s, item));
    } else {
        threading::for_each_chunk_mut(&mut partials, part_len, scratch, per_chunk);
    }
    sum_partials(&partials, part_len, 0, dw, false);
    if let Some(db) = db {
        sum_partials(&partials, part_len, dw.len(), db, false);
    }
}

/// [`weight_grad`] by the channel-vectorised kernel of `direct_channels.rs`
/// (AVX2+FMA; 16 output channels per group): dY transposed pixel-major per
/// image, x read in place (padded layers: from their padded planes).
#[cfg(target_arch = "x86_64")]
fn weight_grad_by_channels(
    p: &Conv2dParams,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) {
    let (cig, cog, k) = (p.c_in_per_group(), p.c_out_per_group(), p.k_size());
    let (geometry, in_place) = channel_geometry(p);
    let offsets = channels::tap_offsets(&geometry);
    let runs = source_runs(p, &Flat::padded(p), cig);
    let pixels = p.out_plane();
    let (x_image, y_image) = (p.c_in * p.in_plane(), p.c_out * pixels);
    let scratch = || {
        let planes = if in_place { 0 } else { cig * geometry.plane };
        (
            vec![0.0; planes],
            vec![0.0; pixels * cog],
            vec![0.0; k * cog],
        )
    };
    type Scratch = (Vec<f32>, Vec<f32>, Vec<f32>);
    let chunk = |(xp, dyt, dwt): &mut Scratch, images: Range<usize>, dw_part: &mut [f32]| {
        for g in 0..p.groups {
            dwt.fill(0.0);
            for b in images.clone() {
                let x_g = &x[b * x_image + g * cig * p.in_plane()..][..cig * p.in_plane()];
                let src = if in_place {
                    x_g
                } else {
                    copy_along(true, &runs, x_g, xp);
                    &xp[..]
                };
                let dy_g = &dy[b * y_image + g * cog * pixels..][..cog * pixels];
                // SAFETY: the CPU has AVX2 and FMA (simd); the kernels check the lengths.
                unsafe {
                    channels::transpose_in(pixels, dy_g, dyt);
                    channels::weight_grad(&geometry, &offsets, src, dyt, dwt);
                }
            }
            // dw[g * cog + c][t] = dwt[t][c].
            let dw_g = &mut dw_part[g * cog * k..][..cog * k];
            for (t, row) in dwt.chunks_exact(cog).enumerate() {
                for (c, v) in row.iter().enumerate() {
                    dw_g[c * k + t] = *v;
                }
            }
        }
    };
    over_batch_chunks(true, p, dy, dw, db, scratch, chunk);
}

/// The geometry of the channel-vectorised kernels for this layer, and
/// whether x is read in place (no padding) rather than from padded planes.
#[cfg(target_arch = "x86_64")]
fn channel_geometry(p: &Conv2dParams) -> (channels::ChannelGeometry, bool) {
    let padded = Flat::padded(p);
    let in_place = p.padding == [0; 4];
    let geometry = channels::ChannelGeometry {
        n_src: p.c_in_per_group(),
        plane: if in_place { p.in_plane() } else { padded.tap_s },
        wp: padded.row,
        kh: p.kh,
        kw: p.kw,
        out_h: p.out_h,
        out_w: p.out_w,
        n_out: p.c_out_per_group(),
    };
    (geometry, in_place)
}

/// db over `images`, bitwise as `weight_grad::bias_grad_chunk` (whose
/// single chain of dependent adds per row took a tenth of LeNet conv1's grad
/// weight): the row sums of an image's channels are computed side by side.
fn bias_grad(simd: bool, p: &Conv2dParams, dy: &[f32], images: Range<usize>, db: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        let n = p.out_plane();
        let mut sums = vec![0.0; p.c_out];
        db.fill(0.0);
        for b in images {
            let rows = &dy[b * p.c_out * n..][..p.c_out * n];
            // SAFETY: the CPU has AVX2 and FMA; the kernel checks the lengths.
            unsafe { direct_avx2::row_sums(rows, n, &mut sums) };
            db.iter_mut().zip(&sums).for_each(|(d, s)| *d += s);
        }
        return;
    }
    let _ = simd;
    bias_grad_chunk(p, dy, images, db);
}

/// How a grad-weight pass prepares its images: the runs of x into the source
/// planes, of dY into flat planes (unless dY is read in place).
struct PassCopies {
    x: Vec<Run>,
    dy: Vec<Run>,
    dy_in_place: bool,
}

/// Adds the grad weight of the images `pass` to `dw_part`, group by group.
#[allow(clippy::too_many_arguments)]
fn weight_grad_pass(
    simd: bool,
    p: &Conv2dParams,
    f: &Flat,
    copies: &PassCopies,
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
    for g in 0..p.groups {
        for (j, b) in pass.clone().enumerate() {
            let x_g = &x[b * x_image + g * cig * p.in_plane()..];
            copy_along(simd, &copies.x, x_g, &mut xs[j * cig * f.tap_s..]);
            if !copies.dy_in_place {
                let dy_g = &dy[b * y_image + g * cog * p.out_plane()..];
                copy_along(simd, &copies.dy, dy_g, &mut dyp[j * cog * f.len..]);
            }
        }
        let x_pass = &xs[..images * cig * f.tap_s];
        let (dy_pass, dy_image) = if copies.dy_in_place {
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
