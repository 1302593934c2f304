//! The tile transforms of Winograd F(2x2, 3x3) (see `winograd.rs`):
//!
//! - weights  U  = G g G^T    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
//! - inputs   V  = B^T d B    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
//! - outputs  Y  = A^T m A    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]
//! - and the adjoints of the last two for the grad-weight pass: dZ = A dY A^T, dW = G^T dU G.
//!
//! Tiles of a block are numbered with the image innermost: tile `(ty, tx, j)`
//! (tile row, tile column, image in the block) is
//! `t = (ty * cols + tx) * images + j`. Then one tile row of every image is a
//! contiguous run of `cols * images` tiles, and the tile one column to the
//! right is `images` further on, so every transform runs along long
//! contiguous vectors even on 2x2 and 4x4 planes (VGG's deep layers). The
//! arithmetic is additions and halvings only, in the same order on every
//! path, so the AVX2 build of the loops (`target_feature`) and the portable
//! one give the same bits.

use std::ops::Range;

use super::params::Conv2dParams;
use crate::kernels::simd;

/// Transform points of a 4x4 tile.
pub const POINTS: usize = 16;

/// Tiles computed together: one AVX2 vector.
const W: usize = 8;
type Lane = [f32; W];

// (Plain loops, not `array::from_fn`: that one is not always inlined, and a
// call per lane operation costs more than the arithmetic.)
#[inline(always)]
fn add(mut a: Lane, b: Lane) -> Lane {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
    a
}

#[inline(always)]
fn sub(mut a: Lane, b: Lane) -> Lane {
    for (x, y) in a.iter_mut().zip(b) {
        *x -= y;
    }
    a
}

#[inline(always)]
fn half(mut a: Lane) -> Lane {
    for x in a.iter_mut() {
        *x *= 0.5;
    }
    a
}

/// `s[k..k + w]` in a lane, zeros after.
#[inline(always)]
fn load(s: &[f32], k: usize, w: usize) -> Lane {
    let mut lane = [0.0; W];
    lane[..w].copy_from_slice(&s[k..k + w]);
    lane
}

#[inline(always)]
fn store(lane: Lane, s: &mut [f32], k: usize, w: usize) {
    s[k..k + w].copy_from_slice(&lane[..w]);
}

/// `$name(args)` calls `$body(args)` compiled for AVX2 when the fast path is
/// on, so that the lane arithmetic it inlines uses 8-wide vectors (same bits:
/// only additions and halvings, no FMA, so only the vector width changes).
/// (A generic `target_feature` function taking a closure does not do it: the
/// closure is compiled on its own, without AVX2.)
macro_rules! avx2_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) => $body:ident) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn fast($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if simd::use_avx2_fma() {
                    // SAFETY: AVX2 is available (checked at run time just above).
                    return unsafe { fast($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

avx2_dispatch!(fn input_points(src: &[f32], offsets: &[usize; 16], run: usize, v: &mut [f32], ld: usize, start: usize) => input_points_body);
avx2_dispatch!(fn output_points(m: &[f32], ld: usize, run: usize, y: &mut [f32]) => output_points_body);
avx2_dispatch!(fn grad_points(tile: &[f32], run: usize, dz: &mut [f32], ld: usize, start: usize) => grad_points_body);
avx2_dispatch!(
    /// U = G g G^T of every input channel of output channel `w_co` (`[c_in][3][3]`)
    /// into `u_co` (`[16][c_in]`).
    pub fn transform_weights(w_co: &[f32], u_co: &mut [f32]) => weights_body
);
avx2_dispatch!(
    /// dW = G^T dU G for output channel `co`, from `du` (`[16][c_out][c_in]`) into
    /// `dw_co` (`[c_in][3][3]`).
    pub fn transform_weight_grads(du: &[f32], c_out: usize, co: usize, dw_co: &mut [f32]) => weight_grads_body
);

/// The 2x2 output tiles of one image.
#[derive(Clone, Copy, Debug)]
pub struct Tiles {
    pub rows: usize,
    pub cols: usize,
    pub per_image: usize,
}

impl Tiles {
    pub fn new(p: &Conv2dParams) -> Tiles {
        let (rows, cols) = (p.out_h.div_ceil(2), p.out_w.div_ceil(2));
        Tiles {
            rows,
            cols,
            per_image: rows * cols,
        }
    }
}

// ------------------------------------------------------------------ weights

#[inline(always)]
fn weights_body(w_co: &[f32], u_co: &mut [f32]) {
    let c_in = w_co.len() / 9;
    let full = c_in - c_in % W;
    for ci in (0..full).step_by(W) {
        weights_lane(w_co, u_co, c_in, ci, W);
    }
    if full < c_in {
        weights_lane(w_co, u_co, c_in, full, c_in - full);
    }
}

/// U of input channels `ci .. ci + w`, one channel per lane. (Helper
/// functions, not closures: closures here were not inlined, and their lane
/// arrays went through memmove.)
#[inline(always)]
fn weights_lane(w_co: &[f32], u_co: &mut [f32], c_in: usize, ci: usize, w: usize) {
    let (col0, col1, col2) = (
        weights_column(w_co, ci, w, 0),
        weights_column(w_co, ci, w, 1),
        weights_column(w_co, ci, w, 2),
    );
    // (G g) G^T: the same combination along each row.
    for r in 0..4 {
        let (a, b, c) = (col0[r], col1[r], col2[r]);
        store(a, u_co, 4 * r * c_in + ci, w);
        store(half(add(add(a, b), c)), u_co, (4 * r + 1) * c_in + ci, w);
        store(half(add(sub(a, b), c)), u_co, (4 * r + 2) * c_in + ci, w);
        store(c, u_co, (4 * r + 3) * c_in + ci, w);
    }
}

/// Column `c` of G g: rows g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2.
#[inline(always)]
fn weights_column(w_co: &[f32], ci: usize, w: usize, c: usize) -> [Lane; 4] {
    let (g0, g1, g2) = (
        weight_tap(w_co, ci, w, c),
        weight_tap(w_co, ci, w, 3 + c),
        weight_tap(w_co, ci, w, 6 + c),
    );
    [
        g0,
        half(add(add(g0, g1), g2)),
        half(add(sub(g0, g1), g2)),
        g2,
    ]
}

/// Tap `k` of input channels `ci .. ci + w` (`[c_in][3][3]`: 9 apart).
#[inline(always)]
fn weight_tap(w_co: &[f32], ci: usize, w: usize, k: usize) -> Lane {
    let mut lane = [0.0; W];
    for (i, v) in lane[..w].iter_mut().enumerate() {
        *v = w_co[(ci + i) * 9 + k];
    }
    lane
}

#[inline(always)]
fn weight_grads_body(du: &[f32], c_out: usize, co: usize, dw_co: &mut [f32]) {
    let c_in = dw_co.len() / 9;
    let full = c_in - c_in % W;
    for ci in (0..full).step_by(W) {
        weight_grads_lane(du, c_out, co, dw_co, ci, W);
    }
    if full < c_in {
        weight_grads_lane(du, c_out, co, dw_co, full, c_in - full);
    }
}

/// dW of input channels `ci .. ci + w`, one channel per lane.
#[inline(always)]
fn weight_grads_lane(du: &[f32], c_out: usize, co: usize, dw_co: &mut [f32], ci: usize, w: usize) {
    let c_in = dw_co.len() / 9;
    let at = |xi: usize| (xi * c_out + co) * c_in + ci;
    // Down the 4 rows of each column, then along each of the 3 rows.
    let mut cols = [[[0.0; W]; 3]; 4];
    for (col, out) in cols.iter_mut().enumerate() {
        *out = g_transposed(
            load(du, at(col), w),
            load(du, at(4 + col), w),
            load(du, at(8 + col), w),
            load(du, at(12 + col), w),
        );
    }
    for r in 0..3 {
        let taps = g_transposed(cols[0][r], cols[1][r], cols[2][r], cols[3][r]);
        for (c, lane) in taps.iter().enumerate() {
            for (i, &v) in lane[..w].iter().enumerate() {
                dw_co[(ci + i) * 9 + 3 * r + c] = v;
            }
        }
    }
}

/// G^T (u0, u1, u2, u3) = (u0 + (u1 + u2) / 2, (u1 - u2) / 2, (u1 + u2) / 2 + u3).
#[inline(always)]
fn g_transposed(u0: Lane, u1: Lane, u2: Lane, u3: Lane) -> [Lane; 3] {
    [
        add(u0, half(add(u1, u2))),
        half(sub(u1, u2)),
        add(half(add(u1, u2)), u3),
    ]
}

// ------------------------------------------------------------------- inputs

/// V = B^T d B of every tile of input channel `ci` of `images`, into `v_ci`
/// (`[16][nb]`, nb = images * tiles per image). `scratch` is reused between calls.
pub fn transform_input_channel(
    p: &Conv2dParams,
    t: &Tiles,
    x: &[f32],
    images: Range<usize>,
    ci: usize,
    v_ci: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let (n, imgs, plane) = (t.cols, images.len(), p.in_plane());
    let run = n * imgs;
    let nb = run * t.rows;
    let (top, left) = (p.padding[0], p.padding[2]);
    // The zero-padded input rows of the block, each split into its even and
    // odd columns, image innermost: padded column 2k + e of row R of image j
    // is at (R * 2 + e) * half + k * imgs + j, with half = (n + 1) * imgs.
    // (2 * rows + 2 >= top + h + bottom and 2 * n + 2 >= left + w + right:
    // they cover every tile's 4x4 input.)
    let half = (n + 1) * imgs;
    let padded_h = 2 * t.rows + 2;
    scratch.clear();
    scratch.resize(padded_h * 2 * half, 0.0);
    for (j, img) in images.enumerate() {
        let src = &x[(img * p.c_in + ci) * plane..][..plane];
        for (y, row) in src.chunks_exact(p.w).enumerate() {
            let (even, odd) = scratch[(top + y) * 2 * half..][..2 * half].split_at_mut(half);
            // Padded column `left` onwards; an odd `left` starts with an odd column.
            let (first_pair, row) = if left % 2 == 1 {
                odd[(left / 2) * imgs + j] = row[0];
                (left / 2 + 1, &row[1..])
            } else {
                (left / 2, row)
            };
            for (i, pair) in row.chunks(2).enumerate() {
                let slot = (first_pair + i) * imgs + j;
                even[slot] = pair[0];
                if let Some(&v) = pair.get(1) {
                    odd[slot] = v;
                }
            }
        }
    }
    let rows = &*scratch;
    for ty in 0..t.rows {
        // Row r, column c of tile (ty, tx, j) is padded row 2ty + r, column 2tx + c.
        let offsets: [usize; 16] =
            std::array::from_fn(|rc| ((2 * ty + rc / 4) * 2 + rc % 2) * half + (rc % 4 / 2) * imgs);
        let start = ty * run;
        input_points(rows, &offsets, run, v_ci, nb, start);
    }
}

/// The 16 points of `run` tiles, input (r, c) of tile k being `src[offsets[4r + c] + k]`,
/// into `v[xi * ld + start + k]`.
#[inline(always)]
fn input_points_body(
    src: &[f32],
    offsets: &[usize; 16],
    run: usize,
    v: &mut [f32],
    ld: usize,
    start: usize,
) {
    let full = run - run % W;
    for k in (0..full).step_by(W) {
        input_lane(src, offsets, v, ld, start, k, W);
    }
    if full < run {
        input_lane(src, offsets, v, ld, start, full, run - full);
    }
}

/// Tiles `k .. k + w` of [`input_points`] (`w` is a constant in the main loop,
/// so that the loads and stores inline to whole vectors). The three `*_points`
/// loops spell out that main loop and tail each: handed to a shared helper as
/// a closure, the lane code was no longer inlined (a memmove per lane load).
#[inline(always)]
fn input_lane(
    src: &[f32],
    offsets: &[usize; 16],
    v: &mut [f32],
    ld: usize,
    start: usize,
    k: usize,
    w: usize,
) {
    let at = |r: usize, c: usize| load(src, offsets[4 * r + c] + k, w);
    // B^T d: the 4 rows combined, column by column ...
    let column = |c: usize| {
        let (d0, d1, d2, d3) = (at(0, c), at(1, c), at(2, c), at(3, c));
        [sub(d0, d2), add(d1, d2), sub(d2, d1), sub(d1, d3)]
    };
    let (col0, col1, col2, col3) = (column(0), column(1), column(2), column(3));
    // ... then B: the same combination along each row.
    for i in 0..4 {
        let (c0, c1, c2, c3) = (col0[i], col1[i], col2[i], col3[i]);
        let base = 4 * i * ld + start + k;
        store(sub(c0, c2), v, base, w);
        store(add(c1, c2), v, base + ld, w);
        store(sub(c2, c1), v, base + 2 * ld, w);
        store(sub(c1, c3), v, base + 3 * ld, w);
    }
}

// ------------------------------------------------------------------ outputs

/// Y = A^T m A (+ bias, then ReLU) of every tile of output channel `co`, from
/// `m[(xi * c_out + co) * nb + t]`, into `planes[j]` (the `out_h x out_w`
/// plane of channel `co` of image j of the block).
#[allow(clippy::too_many_arguments)]
pub fn transform_output_channel(
    p: &Conv2dParams,
    t: &Tiles,
    m: &[f32],
    co: usize,
    bias: f32,
    relu: bool,
    planes: &mut [&mut [f32]],
    scratch: &mut Vec<f32>,
) {
    let imgs = planes.len();
    let run = t.cols * imgs;
    let nb = run * t.rows;
    scratch.resize(4 * run, 0.0);
    let act = |v: f32| {
        let v = v + bias;
        // NaN < 0 is false: NaN stays NaN, as in the GEMM epilogue.
        if relu && v < 0.0 {
            0.0
        } else {
            v
        }
    };
    for ty in 0..t.rows {
        let m_run = &m[co * nb + ty * run..];
        output_points(m_run, p.c_out * nb, run, scratch);
        // Output (a, b) of tile (ty, tx, j) is at scratch[(2a + b) * run + tx * imgs + j].
        for (j, plane) in planes.iter_mut().enumerate() {
            for a in 0..2 {
                let oy = 2 * ty + a;
                if oy >= p.out_h {
                    break;
                }
                let row = &mut plane[oy * p.out_w..][..p.out_w];
                let (left, right) = scratch[2 * a * run..][..2 * run].split_at(run);
                for (tx, pair) in row.chunks_mut(2).enumerate() {
                    pair[0] = act(left[tx * imgs + j]);
                    if let Some(v) = pair.get_mut(1) {
                        *v = act(right[tx * imgs + j]);
                    }
                }
            }
        }
    }
}

/// The 2x2 outputs of `run` tiles from their 16 points `m[xi * ld + k]`, into
/// `y[(2a + b) * run + k]`.
#[inline(always)]
fn output_points_body(m: &[f32], ld: usize, run: usize, y: &mut [f32]) {
    let full = run - run % W;
    for k in (0..full).step_by(W) {
        output_lane(m, ld, run, y, k, W);
    }
    if full < run {
        output_lane(m, ld, run, y, full, run - full);
    }
}

/// Tiles `k .. k + w` of [`output_points`].
#[inline(always)]
fn output_lane(m: &[f32], ld: usize, run: usize, y: &mut [f32], k: usize, w: usize) {
    let at = |xi: usize| load(m, xi * ld + k, w);
    // A^T m: rows 0 and 1 of each of the 4 columns ...
    let column = |c: usize| {
        let (m0, m1, m2, m3) = (at(c), at(4 + c), at(8 + c), at(12 + c));
        [add(add(m0, m1), m2), sub(sub(m1, m2), m3)]
    };
    let (col0, col1, col2, col3) = (column(0), column(1), column(2), column(3));
    // ... then A: 2 outputs per row.
    for a in 0..2 {
        let (c0, c1, c2, c3) = (col0[a], col1[a], col2[a], col3[a]);
        store(add(add(c0, c1), c2), y, 2 * a * run + k, w);
        store(sub(sub(c1, c2), c3), y, (2 * a + 1) * run + k, w);
    }
}

// --------------------------------------------------------- output gradients

/// dZ = A dY A^T of every tile of output channel `co` of `images`, from dy
/// (`p.y_shape()`), into `dz_co` (`[16][nb]`); positions past the output's
/// edges count as zero.
pub fn transform_grad_channel(
    p: &Conv2dParams,
    t: &Tiles,
    dy: &[f32],
    images: Range<usize>,
    co: usize,
    dz_co: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let (imgs, plane) = (images.len(), p.out_plane());
    let run = t.cols * imgs;
    let nb = run * t.rows;
    scratch.clear();
    scratch.resize(4 * run, 0.0);
    for ty in 0..t.rows {
        // dY (a, b) of tile (ty, tx, j) at scratch[(2a + b) * run + tx * imgs + j];
        // positions past the output's edges stay zero.
        for (j, img) in images.clone().enumerate() {
            let dy_plane = &dy[(img * p.c_out + co) * plane..][..plane];
            for a in 0..2 {
                let oy = 2 * ty + a;
                if oy >= p.out_h {
                    for b in 0..2 {
                        for tx in 0..t.cols {
                            scratch[(2 * a + b) * run + tx * imgs + j] = 0.0;
                        }
                    }
                    continue;
                }
                let row = &dy_plane[oy * p.out_w..][..p.out_w];
                let (left, right) = scratch[2 * a * run..][..2 * run].split_at_mut(run);
                for (tx, pair) in row.chunks(2).enumerate() {
                    left[tx * imgs + j] = pair[0];
                    if let Some(&v) = pair.get(1) {
                        right[tx * imgs + j] = v;
                    }
                }
            }
        }
        let tile = &*scratch;
        grad_points(tile, run, dz_co, nb, ty * run);
    }
}

/// The 16 points of A dY A^T of `run` tiles (`tile[(2a + b) * run + k]`), into
/// `dz[xi * ld + start + k]`.
#[inline(always)]
fn grad_points_body(tile: &[f32], run: usize, dz: &mut [f32], ld: usize, start: usize) {
    let full = run - run % W;
    for k in (0..full).step_by(W) {
        grad_lane(tile, run, dz, ld, start, k, W);
    }
    if full < run {
        grad_lane(tile, run, dz, ld, start, full, run - full);
    }
}

/// Tiles `k .. k + w` of [`grad_points`].
#[inline(always)]
fn grad_lane(
    tile: &[f32],
    run: usize,
    dz: &mut [f32],
    ld: usize,
    start: usize,
    k: usize,
    w: usize,
) {
    let at = |i: usize| load(tile, i * run + k, w);
    let (y00, y01, y10, y11) = (at(0), at(1), at(2), at(3));
    let zero = [0.0; W];
    // A dY: rows (p, q) = (y00, y01), (y00 + y10, y01 + y11), (y00 - y10, y01 - y11), (-y10, -y11) ...
    let rows = [
        (y00, y01),
        (add(y00, y10), add(y01, y11)),
        (sub(y00, y10), sub(y01, y11)),
        (sub(zero, y10), sub(zero, y11)),
    ];
    // ... times A^T: (p, p + q, p - q, -q).
    for (i, (pv, qv)) in rows.into_iter().enumerate() {
        let base = 4 * i * ld + start + k;
        store(pv, dz, base, w);
        store(add(pv, qv), dz, base + ld, w);
        store(sub(pv, qv), dz, base + 2 * ld, w);
        store(sub(zero, qv), dz, base + 3 * ld, w);
    }
}
