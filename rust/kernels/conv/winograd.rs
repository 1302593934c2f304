//! Winograd F(2x2, 3x3) convolution for 3x3, stride-1, dilation-1, ungrouped
//! layers with many channels: VGG's 64- to 512-channel layers.
//!
//! Why: those layers are GEMM-bound, and the im2col GEMM already runs near the
//! machine's FMA peak, so the only way to be faster is to do fewer
//! multiplications. Winograd's minimal filtering computes a 2x2 output tile
//! from a 4x4 input tile with 16 multiplications per channel pair instead of
//! 36 (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
//! 2016): per tile, Y = A^T [(G g G^T) ⊙ (B^T d B)] A. Over channels the 16
//! element-wise products become 16 independent GEMMs, one per transform point
//! (xi = 4 * row + column of the 4x4 tile):
//!
//!   M[xi] (C_out x tiles) = U[xi] (C_out x C_in) * V[xi] (C_in x tiles)
//!
//! with U = G g G^T the transformed weights and V = B^T d B the transformed
//! input tiles; the output transform A^T m A then gives the 2x2 outputs. The
//! transforms use only additions and halvings (F(2x2, 3x3) has the smallest
//! rounding error of the Winograd family), so the result agrees with direct
//! convolution within float32 rounding of the same order as the GEMM's.
//!
//! - forward: as above, bias and ReLU fused into the output transform;
//! - grad input: a forward convolution of dy with flipped kernels (see
//!   `input_grad.rs`), which takes this path too;
//! - grad weight: dU[xi] = sum over tiles of (A dY A^T)[xi] * V[xi]^T (the
//!   adjoint of the output transform applied to dy), then dW = G^T dU G.
//!
//! Tiles are processed in blocks of whole images (`BLOCK_TILES`), so the
//! transformed tiles of a block stay in cache between the transform and the
//! GEMMs. Layouts of one block of `nb` tiles (numbered as in
//! `winograd_transforms.rs`): V `[c_in][16][nb]` (written channel by
//! channel), M `[16][c_out][nb]` (one GEMM output per point), U
//! `[c_out][16][c_in]`, dY transforms `[c_out][16][nb]`, dU `[16][c_out][c_in]`.
//! Every element is computed by the same operations in the same order
//! whatever the threading, so results are bit-identical for any thread count.
//!
//! Not covered (they keep the direct or im2col path): strides, dilations,
//! groups, fewer than 64 channels (16 in and 32 out for the grad weight, see
//! `MIN_CHANNELS_WEIGHT_GRAD`), and images of more than 1024 output tiles (a block is
//! at least one image; larger ones would need blocks of tile rows).

use std::cell::Cell;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use super::params::Conv2dParams;
use super::winograd_transforms::{
    transform_grad_channel, transform_input_channel, transform_output_channel,
    transform_weight_grads, transform_weights, Tiles, POINTS,
};
use crate::kernels::gemm::{gemm_ex, Epilogue, MatRef};
use crate::threading;

/// Forward and grad-input passes of layers with fewer input or output
/// channels keep the direct or im2col path: the transforms cost O(channels)
/// per tile against O(c_in * c_out) for the GEMMs, and small GEMMs (k = c_in)
/// run further from peak.
const MIN_CHANNELS: usize = 64;

/// The grad-weight pass takes Winograd from fewer channels: its GEMMs reduce
/// over the tiles (hundreds per block), so they stay efficient with few
/// channels, and the kernel it replaces is the slowest of the three there.
/// Measured with `benches/conv_passes.py`, batch 64, 2 threads, direct or
/// im2col -> Winograd (ms): 32->64 at 8x8 1.42 -> 0.77, 32->32 at 16x16
/// 2.44 -> 1.83, 16->32 at 16x16 1.26 -> 1.01, but 16->16 at 32x32
/// 2.2-2.5 -> 2.7-3.1 (kept on the direct path).
const MIN_CHANNELS_WEIGHT_GRAD: (usize, usize) = (16, 32);

/// Images whose output has more tiles than this keep the other paths: a block
/// is at least one whole image, and its transformed tiles would no longer fit
/// in cache (64x64 outputs: 1024 tiles, 4 MiB of V at 64 channels).
const MAX_TILES_PER_IMAGE: usize = 1024;

/// Tiles per block in the forward pass: enough columns for each GEMM to run
/// well, few enough that a block's V and M stay in L2/L3.
const BLOCK_TILES: usize = 256;

/// Tiles per block in the grad-weight pass: they are that pass's GEMM
/// reduction, and dU is read and written once per block.
const WEIGHT_GRAD_BLOCK_TILES: usize = 512;

/// At most this many floats of private dU partials in the grad-weight pass
/// (4 MiB): layers with few channels reduce chunks of blocks side by side.
const PARTIALS_BUDGET: usize = 1 << 20;

static ENABLED: OnceLock<AtomicBool> = OnceLock::new();

fn enabled_flag() -> &'static AtomicBool {
    ENABLED.get_or_init(|| {
        let env = std::env::var("CNNRS_WINOGRAD").unwrap_or_default();
        AtomicBool::new(!matches!(env.as_str(), "0" | "false" | "off"))
    })
}

/// Turns the Winograd path on or off (on by default; `CNNRS_WINOGRAD=0` turns
/// it off at start-up). Off, every layer takes the im2col GEMM: for comparisons.
pub fn set_enabled(on: bool) {
    enabled_flag().store(on, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    enabled_flag().load(Ordering::Relaxed)
}

/// Whether this layer takes the Winograd path: a function of the shape (and
/// of the switch above) only.
pub fn suits(p: &Conv2dParams) -> bool {
    suits_shape(p) && p.c_in >= MIN_CHANNELS && p.c_out >= MIN_CHANNELS
}

/// Whether the grad-weight pass of this layer takes the Winograd path.
pub fn suits_weight_grad(p: &Conv2dParams) -> bool {
    let (min_in, min_out) = MIN_CHANNELS_WEIGHT_GRAD;
    suits_shape(p) && p.c_in >= min_in && p.c_out >= min_out
}

/// 3x3, stride 1, dilation 1, ungrouped, images of at most `MAX_TILES_PER_IMAGE` tiles.
fn suits_shape(p: &Conv2dParams) -> bool {
    enabled()
        && p.kh == 3
        && p.kw == 3
        && p.stride == [1, 1]
        && p.dilation == [1, 1]
        && p.groups == 1
        && Tiles::new(p).per_image <= MAX_TILES_PER_IMAGE
}

thread_local! {
    /// The block buffers (V and M, or V and dZ), kept per thread between
    /// calls: fresh multi-MB allocations would page-fault on every call.
    static BLOCK_BUF: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// `f` on this thread's block buffer, at least `len` floats (contents undefined).
fn with_block_buf<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = BLOCK_BUF.take();
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let result = f(&mut buf[..len]);
    BLOCK_BUF.set(buf);
    result
}

/// `f(index, item, scratch)` over the `chunk_len` chunks of `data`, on the
/// pool if `parallel`; `scratch` is a reusable per-thread vector.
fn over_chunks<T: Send>(
    parallel: bool,
    data: &mut [T],
    chunk_len: usize,
    f: impl Fn(usize, &mut [T], &mut Vec<f32>) + Sync,
) {
    if parallel {
        threading::for_each_chunk_mut(data, chunk_len, Vec::new, |s, (i, c)| f(i, c, s));
    } else {
        let mut s = Vec::new();
        for (i, c) in data.chunks_mut(chunk_len).enumerate() {
            f(i, c, &mut s);
        }
    }
}

/// Point `xi` of `data` laid out `[rows][16][cols]`: a `rows x cols` matrix.
fn point_matrix(data: &[f32], xi: usize, rows: usize, cols: usize) -> MatRef<'_> {
    MatRef {
        data: &data[xi * cols..],
        rows,
        cols,
        row_stride: POINTS * cols,
        col_stride: 1,
    }
}

thread_local! {
    /// The transformed weights U (or the grad weight's dU when it is one
    /// chunk), kept per thread between calls (16 MiB at 512 channels).
    static WEIGHT_BUF: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// `f` on U (`[c_out][16][c_in]`), the transformed weights `w` (`[c_out][c_in][3][3]`).
fn with_transformed_weights<R>(
    p: &Conv2dParams,
    w: &[f32],
    parallel: bool,
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    let mut u = WEIGHT_BUF.take();
    u.resize(p.c_out * POINTS * p.c_in, 0.0);
    over_chunks(parallel, &mut u, POINTS * p.c_in, |co, u_co, _| {
        transform_weights(&w[co * p.c_in * 9..][..p.c_in * 9], u_co);
    });
    let result = f(&u);
    WEIGHT_BUF.set(u);
    result
}

/// V (`[c_in][16][nb]`) of `images`.
fn transform_inputs(
    p: &Conv2dParams,
    t: &Tiles,
    x: &[f32],
    images: Range<usize>,
    v: &mut [f32],
    parallel: bool,
) {
    let nb = images.len() * t.per_image;
    over_chunks(
        parallel,
        &mut v[..p.c_in * POINTS * nb],
        POINTS * nb,
        |ci, v_ci, s| {
            transform_input_channel(p, t, x, images.clone(), ci, v_ci, s);
        },
    );
}

// ------------------------------------------------------------------ forward

/// y = conv(x, w) + bias (then ReLU); `y` has shape `p.y_shape()`.
pub fn forward(
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
) {
    let t = Tiles::new(p);
    let threads = threading::num_threads();
    let per_block = (BLOCK_TILES / t.per_image).clamp(1, p.batch);
    let blocks = p.batch.div_ceil(per_block);
    let y_block = per_block * p.c_out * p.out_plane();
    with_transformed_weights(p, w, threads > 1, |u| {
        let step = |(b, y_blk): (usize, &mut [f32]), parallel: bool| {
            let images = b * per_block..((b + 1) * per_block).min(p.batch);
            forward_block(p, &t, x, u, bias, relu, images, y_blk, parallel);
        };
        if threads > 1 && blocks >= threads {
            // One block per thread at a time, everything inside it serial.
            threading::for_each_chunk_mut(y, y_block, || (), |_, item| step(item, false));
        } else {
            // The blocks in turn, each step of a block on the pool.
            y.chunks_mut(y_block)
                .enumerate()
                .for_each(|item| step(item, threads > 1));
        }
    });
}

/// The forward pass of `images` (whose outputs are `y_blk`).
#[allow(clippy::too_many_arguments)]
fn forward_block(
    p: &Conv2dParams,
    t: &Tiles,
    x: &[f32],
    u: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    images: Range<usize>,
    y_blk: &mut [f32],
    parallel: bool,
) {
    let (c_in, c_out) = (p.c_in, p.c_out);
    let nb = images.len() * t.per_image;
    with_block_buf((c_in + c_out) * POINTS * nb, |buf| {
        let (v, m) = buf.split_at_mut(c_in * POINTS * nb);
        transform_inputs(p, t, x, images.clone(), v, parallel);
        let v = &*v;
        over_chunks(parallel, m, c_out * nb, |xi, m_xi, _| {
            let (a, b) = (
                point_matrix(u, xi, c_out, c_in),
                point_matrix(v, xi, c_in, nb),
            );
            gemm_ex(1.0, a, &b, 0.0, m_xi, nb, &Epilogue::NONE, false);
        });
        // The output planes of each channel, image by image.
        let mut planes: Vec<Vec<&mut [f32]>> = (0..c_out).map(|_| Vec::new()).collect();
        for (i, plane) in y_blk.chunks_mut(p.out_plane()).enumerate() {
            planes[i % c_out].push(plane);
        }
        let m = &*m;
        over_chunks(parallel, &mut planes, 1, |co, group, s| {
            let b = bias.map_or(0.0, |b| b[co]);
            transform_output_channel(p, t, m, co, b, relu, &mut group[0], s);
        });
    });
}

// -------------------------------------------------------------- grad weight

/// dw (shape `p.w_shape()`) given x and dy; the caller computes the bias grad.
///
/// dU is the sum over blocks of tiles. Where it is small (few channels), the
/// blocks are split into chunks fixed by the problem size, each chunk summed
/// into a private dU by one task (with its steps on the pool too when there
/// are fewer chunks than threads), and the partials added in chunk order. Otherwise (one chunk) the blocks are reduced in turn,
/// each step of a block on the pool (the 16 GEMMs side by side). Either way the
/// order of every sum depends on the shape only, never on the thread count.
pub fn weight_grad(p: &Conv2dParams, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let t = Tiles::new(p);
    let parallel = threading::num_threads() > 1;
    let (c_in, c_out) = (p.c_in, p.c_out);
    let per_block = (WEIGHT_GRAD_BLOCK_TILES / t.per_image).clamp(1, p.batch);
    let blocks = p.batch.div_ceil(per_block);
    let nb_max = per_block * t.per_image;
    let (v_len, dz_len) = (c_in * POINTS * nb_max, c_out * POINTS * nb_max);
    let du_len = POINTS * c_out * c_in;
    let chunks = (PARTIALS_BUDGET / du_len)
        .clamp(1, threading::MAX_REDUCTION_CHUNKS)
        .min(blocks);
    let accumulate = |block_range: Range<usize>, du: &mut [f32], parallel: bool| {
        with_block_buf(v_len + dz_len, |buf| {
            let (v, dz) = buf.split_at_mut(v_len);
            let images = |b: usize| b * per_block..((b + 1) * per_block).min(p.batch);
            for b in block_range.clone() {
                let beta = if b == block_range.start { 0.0 } else { 1.0 };
                accumulate_block(p, &t, x, dy, images(b), v, dz, du, beta, parallel);
            }
        })
    };
    let finish = |du: &[f32], dw: &mut [f32]| {
        over_chunks(parallel, dw, c_in * 9, |co, dw_co, _| {
            transform_weight_grads(du, c_out, co, dw_co);
        });
    };
    if chunks == 1 {
        let mut du = WEIGHT_BUF.take();
        du.resize(du_len, 0.0);
        accumulate(0..blocks, &mut du, parallel);
        finish(&du, dw);
        WEIGHT_BUF.set(du);
        return;
    }
    // Fewer chunks than threads (large images: few blocks): each chunk's
    // steps also go on the pool, so that all threads have work.
    let inner_parallel = parallel && chunks < threading::num_threads();
    let mut partials = vec![0.0; chunks * du_len];
    over_chunks(parallel, &mut partials, du_len, |c, du_c, _| {
        accumulate(
            c * blocks / chunks..(c + 1) * blocks / chunks,
            du_c,
            inner_parallel,
        );
    });
    let (du, rest) = partials.split_at_mut(du_len);
    for part in rest.chunks(du_len) {
        du.iter_mut().zip(part).for_each(|(d, v)| *d += v);
    }
    finish(du, dw);
}

/// Adds (beta = 1) or writes (beta = 0) the dU of `images` into `du`, with
/// `v` and `dz` as scratch.
#[allow(clippy::too_many_arguments)]
fn accumulate_block(
    p: &Conv2dParams,
    t: &Tiles,
    x: &[f32],
    dy: &[f32],
    images: Range<usize>,
    v: &mut [f32],
    dz: &mut [f32],
    du: &mut [f32],
    beta: f32,
    parallel: bool,
) {
    let (c_in, c_out) = (p.c_in, p.c_out);
    let nb = images.len() * t.per_image;
    transform_inputs(p, t, x, images.clone(), v, parallel);
    over_chunks(
        parallel,
        &mut dz[..c_out * POINTS * nb],
        POINTS * nb,
        |co, dz_co, s| {
            transform_grad_channel(p, t, dy, images.clone(), co, dz_co, s);
        },
    );
    let (v, dz) = (&*v, &*dz);
    over_chunks(parallel, du, c_out * c_in, |xi, du_xi, _| {
        // dZ[xi] times V[xi]^T (nb x c_in, read along the tiles of each channel).
        let a = point_matrix(dz, xi, c_out, nb);
        let b = point_matrix(v, xi, c_in, nb).t();
        gemm_ex(1.0, a, &b, beta, du_xi, c_in, &Epilogue::NONE, false);
    });
}
