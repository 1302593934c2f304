//! The AVX2+FMA kernels of the direct convolution path along the flat
//! positions (either layout of `direct_layout.rs`; the sums are those of
//! `direct_portable.rs`), and the copies between layouts.
//!
//! Register tiles: forward and grad input keep up to 6 channels x 2 vectors
//! (16 flat positions) in 12 ymm accumulators, or fewer channels x more
//! vectors (1 x 6, 2 x 4, 3 x 3); each loaded vector is used by every channel
//! of the block and each broadcast weight by every vector. Grad weight keeps
//! 2 output channels x up to 5 kernel rows in 10 accumulators; each dY
//! vector is used by the 5 rows, each x vector by both channels, and the 5
//! rows of one source plane share cache lines. Blocks are const generics, so
//! each size is its own fully unrolled function.

use std::arch::x86_64::*;
use std::ops::Range;

use super::direct::{channel_blocks, Flat, Run, STEP};

/// Channels per register block of the forward and grad-input kernels.
const MAX_BLOCK: usize = 6;
/// Output channels and kernel rows per register block of the grad-weight kernel.
const WG_CHANNELS: usize = 2;
const WG_ROWS: usize = 5;

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
    // Every read below is at tap(s, ky, kx) + j + 8 <= n_src * tap_s, every
    // write below (n_out - 1) * pixels + pixels (the last vector of a plane
    // is stored masked).
    assert!(f.sources_fit(n_src, src.len()) && out.len() >= n_out * f.out_stride);
    assert!(w.len() >= n_out * n_src * taps && f.len.is_multiple_of(STEP));
    assert!(f.out_stride <= f.len && f.len - f.out_stride < STEP);
    assert!(bias.is_none_or(|b| b.len() >= n_out));
    for block in channel_blocks(n_out, MAX_BLOCK) {
        let w_block = w[block.start * n_src * taps..].as_ptr();
        let bias_block = bias.map(|b| &b[block.clone()]);
        let out_block = out[block.start * f.out_stride..].as_mut_ptr();
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
                let row = unsafe { src.add(s * f.tap_s + ky * f.tap_ky + j) };
                let w_tap = unsafe { w.add(s * taps + ky * f.kw) };
                for kx in 0..f.kw {
                    let mut xs = [_mm256_setzero_ps(); V];
                    for (v, x) in xs.iter_mut().enumerate() {
                        *x = unsafe { _mm256_loadu_ps(row.add(kx * f.tap_kx + 8 * v)) };
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
                let at = j + 8 * v;
                let o = unsafe { out.add(c * f.out_stride + at) };
                if at + 8 <= f.out_stride {
                    unsafe { _mm256_storeu_ps(o, value) };
                } else {
                    unsafe { _mm256_maskstore_ps(o, first_lanes(f.out_stride - at), value) };
                }
            }
        }
    }
}

/// Whether tap (ky, kx) is the first of the grad-input scatter to write its
/// plane: its positions `0..len` are exactly those of the plane (shifted:
/// plane kx; padded: the only plane), the later taps add to them.
pub(super) fn first_tap_of_plane(f: &Flat, ky: usize, kx: usize) -> bool {
    ky == 0 && (f.shifted || kx == 0)
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
    // tap(c, ky, kx) + j + 8 <= n_dst * tap_s.
    assert!(src.len() >= n_src * f.len && f.sources_fit(n_dst, dst.len()));
    assert!(w.len() >= n_src * n_dst * taps && f.len.is_multiple_of(STEP));
    // Tap by tap over the whole plane, so consecutive read-modify-writes of
    // overlapping (shifted) vectors are far apart and do not stall on
    // store-to-load forwarding.
    for ky in 0..f.kh {
        for kx in 0..f.kw {
            let tap = ky * f.kw + kx;
            let store = first_tap_of_plane(f, ky, kx);
            for block in channel_blocks(n_dst, MAX_BLOCK) {
                let w_block = w[block.start * taps + tap..].as_ptr();
                let first = block.start * f.tap_s + ky * f.tap_ky + kx * f.tap_kx;
                let dst_block = dst[first..].as_mut_ptr();
                // SAFETY: the asserts above bound every offset the block uses.
                unsafe {
                    by_block_size!(
                        block.len(),
                        f.len,
                        scatter_block(
                            f,
                            src.as_ptr(),
                            n_src,
                            w_block,
                            n_dst * taps,
                            dst_block,
                            store
                        )
                    )
                };
            }
        }
    }
}

/// `scatter` for one tap and the `C` channels whose first weight (of source
/// channel 0) is at `w` (source channel s at `w + s * w_step`, channel c at
/// `+ c * taps`) and whose shifted planes start at `dst`, at the flat
/// positions `positions` (`8 V` at a time); the sums overwrite dst if `store`,
/// else are added to it.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn scatter_block<const C: usize, const V: usize>(
    f: &Flat,
    src: *const f32,
    n_src: usize,
    w: *const f32,
    w_step: usize,
    dst: *mut f32,
    store: bool,
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
                let d = unsafe { dst.add(c * f.tap_s + j + 8 * v) };
                let sum = if store {
                    *value
                } else {
                    _mm256_add_ps(unsafe { _mm256_loadu_ps(d) }, *value)
                };
                unsafe { _mm256_storeu_ps(d, sum) };
            }
        }
    }
}

/// See [`super::direct_portable::weight_grad`].
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn weight_grad(
    f: &Flat,
    x: &[f32],
    n_x: usize,
    dy: &[f32],
    n_dy: usize,
    dy_image: usize,
    images: usize,
    dw: &mut [f32],
) {
    let taps = f.kh * f.kw;
    // Reads of x at i * n_x * tap_s + tap(s, ky, kx) + j + 8 <= images * n_x * tap_s,
    // of dy below (images - 1) * dy_image + n_dy * len; writes of dw below n_dy * n_x * taps.
    assert!(f.sources_fit(images * n_x, x.len()) && images > 0 && dy_image >= n_dy * f.len);
    assert!(dy.len() >= (images - 1) * dy_image + n_dy * f.len);
    assert!(dw.len() >= n_dy * n_x * taps && f.len.is_multiple_of(8));
    let ops = WgOperands {
        x: x.as_ptr(),
        x_image: n_x * f.tap_s,
        tap_ky: f.tap_ky,
        dy: dy.as_ptr(),
        dy_image,
        images,
        len: f.len,
    };
    for c0 in (0..n_dy).step_by(WG_CHANNELS) {
        let channels = WG_CHANNELS.min(n_dy - c0);
        for s in 0..n_x {
            for kx in 0..f.kw {
                for ky0 in (0..f.kh).step_by(WG_ROWS) {
                    let x_off = s * f.tap_s + ky0 * f.tap_ky + kx * f.tap_kx;
                    let dy_off = c0 * f.len;
                    let mut sums = [[0.0f32; WG_ROWS]; WG_CHANNELS];
                    let rows = WG_ROWS.min(f.kh - ky0);
                    // SAFETY: the asserts above bound every offset the block reads.
                    unsafe {
                        if channels == 2 {
                            by_rows::<2>(&ops, x_off, dy_off, rows, &mut sums);
                        } else {
                            by_rows::<1>(&ops, x_off, dy_off, rows, &mut sums);
                        }
                    }
                    for (c, row) in sums.iter().enumerate().take(channels) {
                        let first = ((c0 + c) * n_x + s) * taps + ky0 * f.kw + kx;
                        for (k, v) in row.iter().take(rows).enumerate() {
                            dw[first + k * f.kw] += v;
                        }
                    }
                }
            }
        }
    }
}

/// The operands of the grad-weight kernel: `images` images of shifted x
/// planes and dY planes (`x_image` and `dy_image` floats apart, kernel row
/// k at `k * tap_ky` in x), `len` flat positions.
struct WgOperands {
    x: *const f32,
    x_image: usize,
    tap_ky: usize,
    dy: *const f32,
    dy_image: usize,
    images: usize,
    len: usize,
}

/// Dispatches on the number of kernel rows of the block (1..=WG_ROWS).
#[target_feature(enable = "avx2,fma")]
unsafe fn by_rows<const C: usize>(
    ops: &WgOperands,
    x_off: usize,
    dy_off: usize,
    rows: usize,
    sums: &mut [[f32; WG_ROWS]; WG_CHANNELS],
) {
    // SAFETY: as the caller's.
    unsafe {
        match rows {
            1 => weight_grad_block::<C, 1>(ops, x_off, dy_off, sums),
            2 => weight_grad_block::<C, 2>(ops, x_off, dy_off, sums),
            3 => weight_grad_block::<C, 3>(ops, x_off, dy_off, sums),
            4 => weight_grad_block::<C, 4>(ops, x_off, dy_off, sums),
            _ => weight_grad_block::<C, 5>(ops, x_off, dy_off, sums),
        }
    }
}

/// sums[c][k] = sum over images i and j < len of dy[i][dy_off + c*len + j] *
/// x[i][x_off + k * tap_ky + j], with C x K vector accumulators summed horizontally at the end.
#[target_feature(enable = "avx2,fma")]
unsafe fn weight_grad_block<const C: usize, const K: usize>(
    ops: &WgOperands,
    x_off: usize,
    dy_off: usize,
    sums: &mut [[f32; WG_ROWS]; WG_CHANNELS],
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
                let xv = unsafe { _mm256_loadu_ps(x.add(j + k * ops.tap_ky)) };
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

/// See `direct_layout::source_grad_to_input`: input plane s (`h x w`) at
/// (iy, ix) is the sum over kx of shifted plane (s, kx) at row `iy + top`,
/// column `ix + left - kx` where that column lies in `0..row`. Each vector
/// of 8 input columns sums kw masked loads (the columns outside `0..row`
/// read as zero). For kw <= [`UNSHIFT_MAX_KW`] (the caller checks).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn unshift(
    f: &Flat,
    [h, w]: [usize; 2],
    [top, left]: [usize; 2],
    src: &[f32],
    planes: usize,
    dst: &mut [f32],
) {
    // Reads at s * tap_s + kx * plane + (iy + top) * row + ox with ox < row
    // (the masks), writes below planes * h * w.
    assert!(src.len() >= planes * f.tap_s && dst.len() >= planes * h * w);
    assert!((top + h) * f.row <= f.plane && f.kw * f.plane <= f.tap_s);
    let ops = UnshiftOperands {
        f: *f,
        h,
        w,
        top,
        left,
        planes,
        src: src.as_ptr(),
        dst: dst.as_mut_ptr(),
    };
    // SAFETY: the asserts above bound every access of every column block.
    unsafe {
        match f.kw {
            1 => unshift_kw::<1>(&ops),
            2 => unshift_kw::<2>(&ops),
            3 => unshift_kw::<3>(&ops),
            4 => unshift_kw::<4>(&ops),
            5 => unshift_kw::<5>(&ops),
            6 => unshift_kw::<6>(&ops),
            7 => unshift_kw::<7>(&ops),
            8 => unshift_kw::<8>(&ops),
            _ => panic!("unshift: kw {} > {UNSHIFT_MAX_KW}", f.kw),
        }
    }
}

/// The widest kernel [`unshift`] takes (its masks stay in registers).
pub const UNSHIFT_MAX_KW: usize = 8;

/// The operands of [`unshift`].
struct UnshiftOperands {
    f: Flat,
    h: usize,
    w: usize,
    top: usize,
    left: usize,
    planes: usize,
    src: *const f32,
    dst: *mut f32,
}

/// [`unshift`] for kw = KW: one block of 8 input columns at a time (whole
/// vectors, the last one overlapping the one before; a single masked vector
/// if w < 8), its KW offsets and masks fixed over all rows.
#[target_feature(enable = "avx2,fma")]
unsafe fn unshift_kw<const KW: usize>(ops: &UnshiftOperands) {
    let (f, w) = (&ops.f, ops.w);
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let last = w.saturating_sub(8);
    for x0 in (0..last).step_by(8).chain([last]) {
        // Per kx: the offset of the block's first lane in a shifted row
        // (negative: before the row) and the mask of the lanes inside 0..row.
        let mut offs = [0isize; KW];
        let mut masks = [_mm256_setzero_si256(); KW];
        for (kx, (off, mask)) in offs.iter_mut().zip(&mut masks).enumerate() {
            *off = x0 as isize + ops.left as isize - kx as isize;
            let col = _mm256_add_epi32(lanes, _mm256_set1_epi32(*off as i32));
            *mask = _mm256_andnot_si256(
                _mm256_cmpgt_epi32(_mm256_setzero_si256(), col),
                _mm256_cmpgt_epi32(_mm256_set1_epi32(f.row as i32), col),
            );
        }
        for s in 0..ops.planes {
            for iy in 0..ops.h {
                // SAFETY: a masked lane is never accessed, the others are inside
                // the shifted row; the stores are below planes * h * w (asserts of `unshift`).
                let row = unsafe { ops.src.add(s * f.tap_s + (iy + ops.top) * f.row) };
                let mut acc = _mm256_setzero_ps();
                for kx in 0..KW {
                    let at = row.wrapping_add(kx * f.plane).wrapping_offset(offs[kx]);
                    acc = _mm256_add_ps(acc, unsafe { _mm256_maskload_ps(at, masks[kx]) });
                }
                let out = unsafe { ops.dst.add((s * ops.h + iy) * w + x0) };
                if w >= 8 {
                    unsafe { _mm256_storeu_ps(out, acc) };
                } else {
                    unsafe { _mm256_maskstore_ps(out, first_lanes(w), acc) };
                }
            }
        }
    }
}

/// A mask of the first `n` (< 8) lanes, for `_mm256_mask{load,store}_ps`.
#[target_feature(enable = "avx2,fma")]
fn first_lanes(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(n as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// `dst[r.dst..][..r.len].copy_from_slice(&src[r.src..][..r.len])` for
/// every run, with 2 or 4 overlapping vectors for runs of 8 to 32 floats
/// (LLVM turns a copy loop into a call to memcpy, which costs more than
/// such a copy), halves for 4 to 7, scalars below, memcpy above.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn copy_runs(runs: &[Run], src: &[f32], dst: &mut [f32]) {
    for r in runs {
        let (s, d) = (&src[r.src..][..r.len], &mut dst[r.dst..][..r.len]);
        let (n, s, d) = (r.len, s.as_ptr(), d.as_mut_ptr());
        // SAFETY: every access is below n, inside both slices.
        unsafe {
            let copy8 = |at: usize| _mm256_storeu_ps(d.add(at), _mm256_loadu_ps(s.add(at)));
            match n {
                0..4 => {
                    for i in 0..n {
                        *d.add(i) = *s.add(i);
                    }
                }
                4..8 => {
                    _mm_storeu_ps(d, _mm_loadu_ps(s));
                    _mm_storeu_ps(d.add(n - 4), _mm_loadu_ps(s.add(n - 4)));
                }
                8..=16 => {
                    copy8(0);
                    copy8(n - 8);
                }
                17..=32 => {
                    copy8(0);
                    copy8(8);
                    copy8(n - 16);
                    copy8(n - 8);
                }
                _ => std::ptr::copy_nonoverlapping(s, d, n),
            }
        }
    }
}

/// `out[r]` = the sum of row r of the `out.len()` rows of `n` floats in `v`,
/// bitwise as `weight_grad::row_sum` computes it (8 lane sums over whole
/// vectors in order, the lanes summed in order, plus the tail summed in
/// order), but up to 8 rows at a time so that their chains of dependent adds overlap.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn row_sums(v: &[f32], n: usize, out: &mut [f32]) {
    assert!(v.len() >= out.len() * n);
    // SAFETY (each call): rows first..first + R lie inside v (the assert above).
    for first in (0..out.len()).step_by(8) {
        unsafe {
            match out.len() - first {
                1 => rows_sum::<1>(v, n, first, out),
                2 => rows_sum::<2>(v, n, first, out),
                3 => rows_sum::<3>(v, n, first, out),
                4 => rows_sum::<4>(v, n, first, out),
                5 => rows_sum::<5>(v, n, first, out),
                6 => rows_sum::<6>(v, n, first, out),
                7 => rows_sum::<7>(v, n, first, out),
                _ => rows_sum::<8>(v, n, first, out),
            }
        }
    }
}

/// [`row_sums`] of the rows `first..first + R`.
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_sum<const R: usize>(v: &[f32], n: usize, first: usize, out: &mut [f32]) {
    let whole = n - n % 8;
    let mut acc = [_mm256_setzero_ps(); R];
    for j in (0..whole).step_by(8) {
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: inside row first + r (checked by the caller).
            *a = _mm256_add_ps(*a, unsafe {
                _mm256_loadu_ps(v.as_ptr().add((first + r) * n + j))
            });
        }
    }
    for (r, a) in acc.iter().enumerate() {
        let mut lanes = [0.0f32; 8];
        // SAFETY: lanes has 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *a) };
        let tail: f32 = v[(first + r) * n + whole..(first + r + 1) * n].iter().sum();
        out[first + r] = lanes.iter().sum::<f32>() + tail;
    }
}
