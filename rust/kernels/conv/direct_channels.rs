//! The channel-vectorised kernels of the direct path (AVX2+FMA): forward
//! and grad weight of groups of 16 output channels (LeNet's conv2: 6 -> 16;
//! the grad weight also for padded-layout layers such as vgg_small's 16 -> 16
//! at 32x32).
//!
//! Why: along the pixels, conv2's 10 x 10 output needs the shifted planes of
//! `direct_layout.rs` (5 copies of the input) and computes 104 positions per
//! 100 pixels. Along the output channels, one broadcast input value times
//! one vector of 8 channels' weights (or dY values) is 8 useful products;
//! the input is read in place (padded layers: one padded copy) and nothing
//! is wasted. The price: an 8 x 8 transpose of y (forward) or dY (grad
//! weight) per image.
//!
//! Forward tile: P = 4 output pixels (any 4 consecutive pixels in row-major
//! order, rows may change inside a tile) x V = 2 vectors of 8 channels, in 8
//! accumulators; per tap, 2 weight vectors are loaded and 4 input values
//! broadcast. (6 pixels spill: LLVM loads the 6 broadcasts before the FMAs,
//! 20 vector registers for 16; the same tile in inline assembly was no
//! faster than 4 pixels. 8 channels, 1 vector, was slower than the kernels
//! along the pixels, so it is not taken.) The tile goes to a pixel-major
//! scratch, transposed 8 x 8 into the NCHW output at the end.
//!
//! Sums: forward, acc = bias, then + w * x over (s, ky, kx) in order, as the
//! other kernels of the direct path; grad weight, per (tap, channel) over
//! the images of a batch chunk in order and their pixels in order.

use std::arch::x86_64::*;

use crate::kernels::simd;

/// The shape of one image and group for [`forward`] and [`weight_grad`].
#[derive(Clone, Copy, Debug)]
pub(super) struct ChannelGeometry {
    /// Source (input) channels and the floats per padded source plane.
    pub n_src: usize,
    pub plane: usize,
    /// Padded row length of the source planes.
    pub wp: usize,
    pub kh: usize,
    pub kw: usize,
    pub out_h: usize,
    pub out_w: usize,
    /// Output channels: 16.
    pub n_out: usize,
}

impl ChannelGeometry {
    fn pixels(&self) -> usize {
        self.out_h * self.out_w
    }
}

/// Whether [`forward`] handles `n_out` output channels per group.
pub(super) fn suits_channels(n_out: usize) -> bool {
    n_out == 16
}

/// `out[c][p] = bias[c] + sum over (s, ky, kx) of wt[(s, ky, kx)][c] * src[s][(oy + ky) * wp + ox + kx]`
/// for pixel p = (oy, ox), then ReLU if `relu`. `wt` holds the weights
/// tap-major (`[n_src * kh * kw][n_out]`), `scratch` at least `pixels * n_out` floats.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn forward(
    g: &ChannelGeometry,
    src: &[f32],
    wt: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    let taps = g.n_src * g.kh * g.kw;
    // Reads of src at s * plane + (oy + ky) * wp + ox + kx, the last one
    // inside the last plane; reads of wt below taps * n_out.
    assert!(suits_channels(g.n_out) && g.out_w + g.kw - 1 <= g.wp);
    assert!((g.out_h + g.kh - 1) * g.wp <= g.plane && src.len() >= g.n_src * g.plane);
    assert!(wt.len() >= taps * g.n_out && scratch.len() >= g.pixels() * g.n_out);
    assert!(out.len() >= g.n_out * g.pixels() && bias.is_none_or(|b| b.len() >= g.n_out));
    let zeros = [0.0; 16];
    let bias = bias.unwrap_or(&zeros);
    let ops = Operands {
        g: *g,
        src: src.as_ptr(),
        wt: wt.as_ptr(),
        bias: bias.as_ptr(),
        scratch: scratch.as_mut_ptr(),
    };
    // SAFETY: the asserts above bound every offset the tiles use.
    unsafe {
        tiles::<2, 4>(&ops);
        transpose_out(g, relu, scratch, out);
    }
}

/// The operands of the tiles.
struct Operands {
    g: ChannelGeometry,
    src: *const f32,
    wt: *const f32,
    bias: *const f32,
    scratch: *mut f32,
}

/// Every pixel, `P` (at most 4) at a time, the last tile with the remaining 1..P pixels.
#[target_feature(enable = "avx2,fma")]
unsafe fn tiles<const V: usize, const P: usize>(ops: &Operands) {
    assert!(P <= 4);
    let pixels = ops.g.pixels();
    let whole = pixels - pixels % P;
    // SAFETY: as the caller's.
    unsafe {
        for p0 in (0..whole).step_by(P) {
            tile::<V, P>(ops, p0);
        }
        match pixels - whole {
            0 => {}
            1 => tile::<V, 1>(ops, whole),
            2 => tile::<V, 2>(ops, whole),
            _ => tile::<V, 3>(ops, whole),
        }
    }
}

/// Pixels `p0..p0 + P` x the `8 V` output channels, into the scratch rows `p0..p0 + P`.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const V: usize, const P: usize>(ops: &Operands, p0: usize) {
    let g = &ops.g;
    let n_out = 8 * V;
    // The first source float of each pixel's window.
    let mut base = [0usize; P];
    for (i, b) in base.iter_mut().enumerate() {
        let (oy, ox) = ((p0 + i) / g.out_w, (p0 + i) % g.out_w);
        *b = oy * g.wp + ox;
    }
    let mut acc = [[_mm256_setzero_ps(); V]; P];
    for row in acc.iter_mut() {
        for (v, a) in row.iter_mut().enumerate() {
            // SAFETY: bias has n_out floats.
            *a = unsafe { _mm256_loadu_ps(ops.bias.add(8 * v)) };
        }
    }
    let mut w = ops.wt;
    for s in 0..g.n_src {
        for ky in 0..g.kh {
            let first = s * g.plane + ky * g.wp;
            for kx in 0..g.kw {
                // SAFETY (all pointer arithmetic here): bounded by the asserts of `forward`.
                let mut wv = [_mm256_setzero_ps(); V];
                for (v, x) in wv.iter_mut().enumerate() {
                    *x = unsafe { _mm256_loadu_ps(w.add(8 * v)) };
                }
                w = unsafe { w.add(n_out) };
                for (row, b) in acc.iter_mut().zip(base) {
                    let x = unsafe { _mm256_broadcast_ss(&*ops.src.add(b + first + kx)) };
                    for (a, wv) in row.iter_mut().zip(wv) {
                        *a = _mm256_fmadd_ps(x, wv, *a);
                    }
                }
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (v, a) in row.iter().enumerate() {
            // SAFETY: the scratch has pixels * n_out floats.
            unsafe { _mm256_storeu_ps(ops.scratch.add((p0 + i) * n_out + 8 * v), *a) };
        }
    }
}

/// `out[c][p] = scratch[p][c]` (then ReLU if `relu`): 8 x 8 blocks in
/// registers, the last `pixels % 8` pixels one by one.
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose_out(g: &ChannelGeometry, relu: bool, scratch: &[f32], out: &mut [f32]) {
    let (pixels, n_out) = (g.pixels(), g.n_out);
    let whole = pixels - pixels % 8;
    for p0 in (0..whole).step_by(8) {
        for c0 in (0..n_out).step_by(8) {
            let mut rows = [_mm256_setzero_ps(); 8];
            for (i, r) in rows.iter_mut().enumerate() {
                *r = unsafe { _mm256_loadu_ps(scratch[(p0 + i) * n_out + c0..][..8].as_ptr()) };
            }
            for (k, col) in simd::transpose_8x8(rows).iter().enumerate() {
                let at = (c0 + k) * pixels + p0;
                let col = if relu {
                    _mm256_max_ps(*col, _mm256_setzero_ps())
                } else {
                    *col
                };
                unsafe { _mm256_storeu_ps(out[at..][..8].as_mut_ptr(), col) };
            }
        }
    }
    for p in whole..pixels {
        for c in 0..n_out {
            let v = scratch[p * n_out + c];
            out[c * pixels + p] = if relu { v.max(0.0) } else { v };
        }
    }
}

/// Adds to `dwt[t][c]` (taps t = (s, ky, kx) of `n_src * kh * kw`, 16
/// channels c) the grad weight of one image: `sum over pixels p = (oy, ox)
/// of src[s][(oy + ky) * wp + ox + kx] * dyt[p][c]`, the pixels in order.
/// `dyt` is dY pixel-major (`[pixels][16]`, see [`transpose_in`]).
///
/// Tile: 4 taps x 16 channels in 8 accumulators, loaded from and stored to
/// `dwt` around the pixel loop; per pixel, 2 dY vectors and 4 broadcasts.
/// `offsets` are the [`tap_offsets`].
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn weight_grad(
    g: &ChannelGeometry,
    offsets: &[usize],
    src: &[f32],
    dyt: &[f32],
    dwt: &mut [f32],
) {
    let taps = g.n_src * g.kh * g.kw;
    assert!(g.n_out == 16 && g.out_w + g.kw - 1 <= g.wp);
    assert!((g.out_h + g.kh - 1) * g.wp <= g.plane && src.len() >= g.n_src * g.plane);
    assert!(dyt.len() >= g.pixels() * 16 && dwt.len() >= taps * 16);
    assert!(
        offsets.len() == taps
            && offsets
                .iter()
                .all(|o| *o < (g.n_src - 1) * g.plane + (g.kh - 1) * g.wp + g.kw)
    );
    // SAFETY (each call): the asserts above bound every access.
    for (t0, offs) in (0..taps).step_by(4).zip(offsets.chunks(4)) {
        unsafe {
            match offs.len() {
                4 => wg_tile::<4>(g, src, dyt, offs, &mut dwt[t0 * 16..]),
                3 => wg_tile::<3>(g, src, dyt, offs, &mut dwt[t0 * 16..]),
                2 => wg_tile::<2>(g, src, dyt, offs, &mut dwt[t0 * 16..]),
                _ => wg_tile::<1>(g, src, dyt, offs, &mut dwt[t0 * 16..]),
            }
        }
    }
}

/// The first source float of the window of each tap (s, ky, kx), in order.
pub(super) fn tap_offsets(g: &ChannelGeometry) -> Vec<usize> {
    let mut offsets = Vec::with_capacity(g.n_src * g.kh * g.kw);
    for s in 0..g.n_src {
        for ky in 0..g.kh {
            offsets.extend((0..g.kw).map(|kx| s * g.plane + ky * g.wp + kx));
        }
    }
    offsets
}

/// [`weight_grad`] for the `T` taps whose window offsets are `offs`, into `dwt[..T * 16]`.
#[target_feature(enable = "avx2,fma")]
unsafe fn wg_tile<const T: usize>(
    g: &ChannelGeometry,
    src: &[f32],
    dyt: &[f32],
    offs: &[usize],
    dwt: &mut [f32],
) {
    let mut acc = [[_mm256_setzero_ps(); 2]; T];
    for (t, row) in acc.iter_mut().enumerate() {
        for (v, a) in row.iter_mut().enumerate() {
            // SAFETY: a slice of 8 floats.
            *a = unsafe { _mm256_loadu_ps(dwt[t * 16 + 8 * v..][..8].as_ptr()) };
        }
    }
    let mut x = [src.as_ptr(); T];
    for (x, off) in x.iter_mut().zip(offs) {
        // SAFETY: the window's first float, inside src (asserts of `weight_grad`).
        *x = unsafe { x.add(*off) };
    }
    let mut d = dyt.as_ptr();
    for oy in 0..g.out_h {
        for ox in 0..g.out_w {
            let at = oy * g.wp + ox;
            // SAFETY (all pointer arithmetic here): bounded by the asserts of `weight_grad`.
            let (d0, d1) = unsafe { (_mm256_loadu_ps(d), _mm256_loadu_ps(d.add(8))) };
            d = unsafe { d.add(16) };
            for (row, x) in acc.iter_mut().zip(x) {
                let xv = unsafe { _mm256_broadcast_ss(&*x.add(at)) };
                row[0] = _mm256_fmadd_ps(xv, d0, row[0]);
                row[1] = _mm256_fmadd_ps(xv, d1, row[1]);
            }
        }
    }
    for (t, row) in acc.iter().enumerate() {
        for (v, a) in row.iter().enumerate() {
            // SAFETY: a slice of 8 floats.
            unsafe { _mm256_storeu_ps(dwt[t * 16 + 8 * v..][..8].as_mut_ptr(), *a) };
        }
    }
}

/// `dyt[p][c] = dy[c][p]` for 16 channels: 8 x 8 blocks in registers, the
/// last `pixels % 8` pixels one by one.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn transpose_in(pixels: usize, dy: &[f32], dyt: &mut [f32]) {
    assert!(dy.len() >= 16 * pixels && dyt.len() >= 16 * pixels);
    let whole = pixels - pixels % 8;
    for p0 in (0..whole).step_by(8) {
        for c0 in [0, 8] {
            let mut rows = [_mm256_setzero_ps(); 8];
            for (i, r) in rows.iter_mut().enumerate() {
                // SAFETY: a slice of 8 floats.
                *r = unsafe { _mm256_loadu_ps(dy[(c0 + i) * pixels + p0..][..8].as_ptr()) };
            }
            for (k, col) in simd::transpose_8x8(rows).iter().enumerate() {
                // SAFETY: a slice of 8 floats.
                unsafe { _mm256_storeu_ps(dyt[(p0 + k) * 16 + c0..][..8].as_mut_ptr(), *col) };
            }
        }
    }
    for p in whole..pixels {
        for c in 0..16 {
            dyt[p * 16 + c] = dy[c * pixels + p];
        }
    }
}
