//! The im2col matrix of one image and one group, and its adjoint (col2im).
//!
//! Row `r` of the matrix is (input channel, kernel row, kernel column) =
//! (`r / (kh*kw)`, `r / kw % kh`, `r % kw`); column `n` is the output pixel
//! (`n / out_w`, `n % out_w`). Entry (r, n) is the input value that kernel tap
//! `r` sees at output pixel `n`, or 0 where the tap falls into the padding.
//!
//! Everything works one matrix row segment at a time (`gather_row` /
//! `scatter_add_row`), so the same code serves the implicit GEMM operands of
//! `implicit.rs` (which pack blocks of the matrix straight from x) and col2im. Along an output row the valid taps form one contiguous
//! range (computed once per row segment), so the inner loops are plain copies
//! (stride 1) or strided gathers without per-element bounds checks.

use super::params::Conv2dParams;

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
        // Guarded: an empty `fill` still costs a `memset` call.
        if a > 0 {
            out[..a].fill(0.0);
        }
        if b < out.len() {
            out[b..].fill(0.0);
        }
        let seg = &mut out[a..b];
        if sx == 1 {
            copy_short(seg, &row[ix..ix + seg.len()]);
        } else {
            for (i, v) in seg.iter_mut().enumerate() {
                *v = row[ix + i * sx];
            }
        }
    });
}

/// dst = src for the short runs of small images (often < 16 floats), where a
/// `memcpy` call costs more than the copy. Up to 16 floats: two fixed-size,
/// possibly overlapping block moves, inlined (a loop would be turned back
/// into a `memcpy` call by the compiler).
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    let n = dst.len();
    if n > 16 {
        dst.copy_from_slice(src);
    } else if n >= 8 {
        copy_block::<8>(&mut dst[..8], &src[..8]);
        copy_block::<8>(&mut dst[n - 8..], &src[n - 8..n]);
    } else if n >= 4 {
        copy_block::<4>(&mut dst[..4], &src[..4]);
        copy_block::<4>(&mut dst[n - 4..], &src[n - 4..n]);
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    }
}

/// Copies exactly N floats (both slices have length N) as one fixed-size move.
#[inline(always)]
pub fn copy_block<const N: usize>(dst: &mut [f32], src: &[f32]) {
    let src: &[f32; N] = src.try_into().expect("N floats");
    let dst: &mut [f32; N] = dst.try_into().expect("N floats");
    *dst = *src;
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

/// dx_group += col2im of the pixel columns `n0 .. n0 + width` of one image's
/// im2col matrix, given as `k_size` rows of `width` floats with row stride `ld`
/// in `dcols`. Rows are added in a fixed order, so the result does not depend
/// on threads.
pub fn col2im_add(
    p: &Conv2dParams,
    dcols: &[f32],
    ld: usize,
    n0: usize,
    width: usize,
    dx_group: &mut [f32],
) {
    for r in 0..p.k_size() {
        scatter_add_row(p, dx_group, r, n0, &dcols[r * ld..][..width]);
    }
}

#[cfg(test)]
pub(crate) mod tests {
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

    pub(crate) fn cases() -> Vec<Conv2dParams> {
        vec![
            params([5, 7], [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]),
            params([6, 9], [2, 4], [2, 3], [0, 2, 3, 1], [1, 1]),
            params([7, 8], [3, 2], [1, 2], [2, 0, 0, 4], [2, 3]),
            params([4, 4], [4, 4], [1, 1], [0; 4], [1, 1]),
            params([1, 1], [3, 3], [5, 5], [1, 1, 1, 1], [1, 1]),
            params([3, 11], [1, 5], [3, 1], [0, 0, 5, 6], [1, 2]),
            // Unit stride (the direct packing path): runs longer than a strip,
            // runs entirely in the padding, a padded 1x1 kernel.
            params([6, 21], [3, 3], [1, 1], [0, 2, 1, 3], [1, 1]),
            params([3, 17], [2, 5], [1, 1], [3, 0, 6, 0], [1, 1]),
            params([2, 2], [1, 1], [1, 1], [1, 1, 1, 1], [1, 1]),
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
    fn col2im_is_the_adjoint_of_im2col() {
        for p in cases() {
            let (k, n, xs) = (p.k_size(), p.out_plane(), 2 * p.h * p.w);
            let x: Vec<f32> = (0..xs).map(|v| ((v * 7) % 11) as f32 - 5.0).collect();
            let c: Vec<f32> = (0..k * n).map(|v| ((v * 5) % 13) as f32 - 6.0).collect();
            let mut cols = vec![f32::NAN; k * n];
            im2col(&p, &x, &mut cols, n);
            let mut dx = vec![0.0; xs];
            col2im_add(&p, &c, n, 0, n, &mut dx);
            // <im2col(x), c> == <x, col2im(c)>, exactly in integers.
            let lhs: f64 = cols.iter().zip(&c).map(|(a, b)| (a * b) as f64).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| (a * b) as f64).sum();
            assert_eq!(lhs, rhs, "{p:?}");
        }
    }
}
