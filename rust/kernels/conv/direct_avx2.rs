//! The AVX2+FMA kernels of the direct convolution path (flat layout of
//! `direct.rs`; the sums are those of `direct_portable.rs`).
//!
//! Register tiles: forward and grad input keep up to 6 channels x 2 vectors
//! (16 flat positions) in 12 ymm accumulators, or fewer channels x more
//! vectors (1 x 6, 2 x 4, 3 x 3); each loaded vector is used by every channel
//! of the block and each broadcast weight by every vector. Grad weight keeps 2 output channels x up to 5 kernel columns in 10
//! accumulators; each dY vector is used by the 5 columns, each x vector by
//! both channels. Blocks are const generics, so each size is its own
//! fully unrolled function.

use std::arch::x86_64::*;
use std::ops::Range;

use super::direct::{channel_blocks, Flat, STEP};

/// Channels per register block of the forward and grad-input kernels.
const MAX_BLOCK: usize = 6;
/// Output channels and kernel columns per register block of the grad-weight kernel.
const WG_CHANNELS: usize = 2;
const WG_COLUMNS: usize = 5;

/// Runs `$f::<C, V>($args, positions)` for the block size `C = $n` in
/// 1..=MAX_BLOCK over the flat positions `0..$len` (a multiple of 8): blocks of
/// few channels take more vectors per step (C x V accumulators, V loaded
/// vectors and a broadcast within the 16 ymm registers), and the positions
/// past the last whole step of `8 V` go one vector at a time.
macro_rules! by_block_size {
    ($n:expr, $len:expr, $f:ident($($arg:expr),*)) => {{
        let len: usize = $len;
        macro_rules! run {
            ($c:literal, $v:literal) => {{
                let wide = len - len % (8 * $v);
                $f::<$c, $v>($($arg,)* 0..wide);
                $f::<$c, 1>($($arg,)* wide..len);
            }};
        }
        match $n {
            1 => run!(1, 6),
            2 => run!(2, 4),
            3 => run!(3, 3),
            4 => run!(4, 2),
            5 => run!(5, 2),
            _ => run!(6, 2),
        }
    }};
}

/// See [`super::direct_portable::correlate`].
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn correlate(
    f: &Flat,
    src: &[f32],
    n_src: usize,
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [f32],
    n_out: usize,
) {
    let taps = f.kh * f.kw;
    // Every read below is at s * plane + ky * wp + kx + j + 16 <= n_src * plane
    // (Flat::plane covers len + (kh-1)*wp + kw-1), every write below n_out * len.
    assert!(src.len() >= n_src * f.plane && out.len() >= n_out * f.len);
    assert!(w.len() >= n_out * n_src * taps && f.len % STEP == 0);
    assert!(f.plane >= f.len + (f.kh - 1) * f.wp + f.kw - 1);
    assert!(bias.is_none_or(|b| b.len() >= n_out));
    for block in channel_blocks(n_out, MAX_BLOCK) {
        let w_block = w[block.start * n_src * taps..].as_ptr();
        let bias_block = bias.map(|b| &b[block.clone()]);
        let out_block = out[block.start * f.len..].as_mut_ptr();
        // SAFETY: the asserts above bound every offset the block uses.
        unsafe {
            by_block_size!(
                block.len(),
                f.len,
                correlate_block(f, src.as_ptr(), n_src, w_block, bias_block, relu, out_block)
            )
        };
    }
}

/// `correlate` for the `C` output channels whose weights start at `w` and
/// whose output planes start at `out`, at the flat positions `positions`
/// (`8 V` at a time).
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn correlate_block<const C: usize, const V: usize>(
    f: &Flat,
    src: *const f32,
    n_src: usize,
    w: *const f32,
    bias: Option<&[f32]>,
    relu: bool,
    out: *mut f32,
    positions: Range<usize>,
) {
    let taps = f.kh * f.kw;
    let mut init = [_mm256_setzero_ps(); C];
    if let Some(b) = bias {
        for (v, b) in init.iter_mut().zip(b) {
            *v = _mm256_set1_ps(*b);
        }
    }
    for j in positions.step_by(8 * V) {
        // (Loops, not `init.map`: a closure outside this target_feature
        // function would pass the vectors through memory.)
        let mut acc = [[_mm256_setzero_ps(); V]; C];
        for (row, v) in acc.iter_mut().zip(init) {
            *row = [v; V];
        }
        for s in 0..n_src {
            for ky in 0..f.kh {
                // SAFETY (all pointer arithmetic here): bounded by the asserts of `correlate`.
                let row = unsafe { src.add(s * f.plane + ky * f.wp + j) };
                let w_tap = unsafe { w.add(s * taps + ky * f.kw) };
                for kx in 0..f.kw {
                    let mut xs = [_mm256_setzero_ps(); V];
                    for (v, x) in xs.iter_mut().enumerate() {
                        *x = unsafe { _mm256_loadu_ps(row.add(kx + 8 * v)) };
                    }
                    for (c, acc_row) in acc.iter_mut().enumerate() {
                        let wv = unsafe { _mm256_broadcast_ss(&*w_tap.add(c * n_src * taps + kx)) };
                        for (a, x) in acc_row.iter_mut().zip(xs) {
                            *a = _mm256_fmadd_ps(wv, x, *a);
                        }
                    }
                }
            }
        }
        for (c, acc_row) in acc.iter().enumerate() {
            for (v, value) in acc_row.iter().enumerate() {
                let value = if relu {
                    _mm256_max_ps(*value, _mm256_setzero_ps())
                } else {
                    *value
                };
                unsafe { _mm256_storeu_ps(out.add(c * f.len + j + 8 * v), value) };
            }
        }
    }
}

/// See [`super::direct_portable::scatter`].
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn scatter(
    f: &Flat,
    src: &[f32],
    n_src: usize,
    w: &[f32],
    dst: &mut [f32],
    n_dst: usize,
) {
    let taps = f.kh * f.kw;
    // Reads of src below n_src * len; read-modify-writes of dst at
    // c * plane + ky * wp + kx + j + 16 <= n_dst * plane.
    assert!(src.len() >= n_src * f.len && dst.len() >= n_dst * f.plane);
    assert!(w.len() >= n_src * n_dst * taps && f.len % STEP == 0);
    assert!(f.plane >= f.len + (f.kh - 1) * f.wp + f.kw - 1);
    // Tap by tap over the whole plane, so consecutive read-modify-writes of
    // overlapping (shifted) vectors are far apart and do not stall on
    // store-to-load forwarding.
    for ky in 0..f.kh {
        for kx in 0..f.kw {
            let tap = ky * f.kw + kx;
            for block in channel_blocks(n_dst, MAX_BLOCK) {
                let w_block = w[block.start * taps + tap..].as_ptr();
                let dst_block = dst[block.start * f.plane + ky * f.wp + kx..].as_mut_ptr();
                // SAFETY: the asserts above bound every offset the block uses.
                unsafe {
                    by_block_size!(
                        block.len(),
                        f.len,
                        scatter_block(f, src.as_ptr(), n_src, w_block, n_dst * taps, dst_block)
                    )
                };
            }
        }
    }
}

/// `scatter` for one tap and the `C` channels whose first weight (of source
/// channel 0) is at `w` (source channel s at `w + s * w_step`, channel c at
/// `+ c * taps`) and whose shifted planes start at `dst`, at the flat
/// positions `positions` (`8 V` at a time).
#[target_feature(enable = "avx2,fma")]
unsafe fn scatter_block<const C: usize, const V: usize>(
    f: &Flat,
    src: *const f32,
    n_src: usize,
    w: *const f32,
    w_step: usize,
    dst: *mut f32,
    positions: Range<usize>,
) {
    let taps = f.kh * f.kw;
    for j in positions.step_by(8 * V) {
        let mut acc = [[_mm256_setzero_ps(); V]; C];
        for s in 0..n_src {
            // SAFETY (all pointer arithmetic here): bounded by the asserts of `scatter`.
            let mut ys = [_mm256_setzero_ps(); V];
            for (v, y) in ys.iter_mut().enumerate() {
                *y = unsafe { _mm256_loadu_ps(src.add(s * f.len + j + 8 * v)) };
            }
            for (c, acc_row) in acc.iter_mut().enumerate() {
                let wv = unsafe { _mm256_broadcast_ss(&*w.add(s * w_step + c * taps)) };
                for (a, y) in acc_row.iter_mut().zip(ys) {
                    *a = _mm256_fmadd_ps(wv, y, *a);
                }
            }
        }
        for (c, acc_row) in acc.iter().enumerate() {
            for (v, value) in acc_row.iter().enumerate() {
                let d = unsafe { dst.add(c * f.plane + j + 8 * v) };
                unsafe { _mm256_storeu_ps(d, _mm256_add_ps(_mm256_loadu_ps(d), *value)) };
            }
        }
    }
}

/// See [`super::direct_portable::weight_grad`].
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn weight_grad(
    f: &Flat,
    x: &[f32],
    n_x: usize,
    dy: &[f32],
    n_dy: usize,
    images: usize,
    dw: &mut [f32],
) {
    let taps = f.kh * f.kw;
    // Reads of x at (i * n_x + s) * plane + ky * wp + kx + j + 8 <= images * n_x * plane,
    // of dy below images * n_dy * len; writes of dw below n_dy * n_x * taps.
    assert!(x.len() >= images * n_x * f.plane && dy.len() >= images * n_dy * f.len);
    assert!(dw.len() >= n_dy * n_x * taps && f.len % 8 == 0);
    assert!(f.plane >= f.len + (f.kh - 1) * f.wp + f.kw - 1);
    let ops = WgOperands {
        x: x.as_ptr(),
        x_image: n_x * f.plane,
        dy: dy.as_ptr(),
        dy_image: n_dy * f.len,
        images,
        len: f.len,
    };
    for c0 in (0..n_dy).step_by(WG_CHANNELS) {
        let channels = WG_CHANNELS.min(n_dy - c0);
        for s in 0..n_x {
            for ky in 0..f.kh {
                for kx0 in (0..f.kw).step_by(WG_COLUMNS) {
                    let x_off = s * f.plane + ky * f.wp + kx0;
                    let dy_off = c0 * f.len;
                    let mut sums = [[0.0f32; WG_COLUMNS]; WG_CHANNELS];
                    let columns = WG_COLUMNS.min(f.kw - kx0);
                    // SAFETY: the asserts above bound every offset the block reads.
                    unsafe {
                        if channels == 2 {
                            by_columns::<2>(&ops, x_off, dy_off, columns, &mut sums);
                        } else {
                            by_columns::<1>(&ops, x_off, dy_off, columns, &mut sums);
                        }
                    }
                    for (c, row) in sums.iter().enumerate().take(channels) {
                        let first = ((c0 + c) * n_x + s) * taps + ky * f.kw + kx0;
                        for (d, v) in dw[first..][..columns].iter_mut().zip(row) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }
}

/// The operands of the grad-weight kernel: `images` images of x planes and
/// dY planes (`x_image` and `dy_image` floats apart), `len` flat positions.
struct WgOperands {
    x: *const f32,
    x_image: usize,
    dy: *const f32,
    dy_image: usize,
    images: usize,
    len: usize,
}

/// Dispatches on the number of kernel columns of the block (1..=WG_COLUMNS).
#[target_feature(enable = "avx2,fma")]
unsafe fn by_columns<const C: usize>(
    ops: &WgOperands,
    x_off: usize,
    dy_off: usize,
    columns: usize,
    sums: &mut [[f32; WG_COLUMNS]; WG_CHANNELS],
) {
    // SAFETY: as the caller's.
    unsafe {
        match columns {
            1 => weight_grad_block::<C, 1>(ops, x_off, dy_off, sums),
            2 => weight_grad_block::<C, 2>(ops, x_off, dy_off, sums),
            3 => weight_grad_block::<C, 3>(ops, x_off, dy_off, sums),
            4 => weight_grad_block::<C, 4>(ops, x_off, dy_off, sums),
            _ => weight_grad_block::<C, 5>(ops, x_off, dy_off, sums),
        }
    }
}

/// sums[c][k] = sum over images i and j < len of dy[i][dy_off + c*len + j] *
/// x[i][x_off + k + j], with C x K vector accumulators summed horizontally at the end.
#[target_feature(enable = "avx2,fma")]
unsafe fn weight_grad_block<const C: usize, const K: usize>(
    ops: &WgOperands,
    x_off: usize,
    dy_off: usize,
    sums: &mut [[f32; WG_COLUMNS]; WG_CHANNELS],
) {
    let mut acc = [[_mm256_setzero_ps(); K]; C];
    for i in 0..ops.images {
        // SAFETY (all pointer arithmetic here): bounded by the asserts of `weight_grad`.
        let x = unsafe { ops.x.add(i * ops.x_image + x_off) };
        let dy = unsafe { ops.dy.add(i * ops.dy_image + dy_off) };
        for j in (0..ops.len).step_by(8) {
            let mut d = [_mm256_setzero_ps(); C];
            for (c, v) in d.iter_mut().enumerate() {
                *v = unsafe { _mm256_loadu_ps(dy.add(c * ops.len + j)) };
            }
            for k in 0..K {
                let xv = unsafe { _mm256_loadu_ps(x.add(j + k)) };
                for (row, dv) in acc.iter_mut().zip(d) {
                    row[k] = _mm256_fmadd_ps(dv, xv, row[k]);
                }
            }
        }
    }
    for (sum_row, acc_row) in sums.iter_mut().zip(acc) {
        for (sum, v) in sum_row.iter_mut().zip(acc_row) {
            *sum = unsafe { horizontal_sum(v) };
        }
    }
}

/// The sum of the 8 lanes, in a fixed order.
#[target_feature(enable = "avx2,fma")]
unsafe fn horizontal_sum(v: __m256) -> f32 {
    let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
}
