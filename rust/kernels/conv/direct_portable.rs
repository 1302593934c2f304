//! The portable (plain Rust) kernels of the direct convolution path: the same
//! sums as `direct_avx2.rs` over the source planes of `direct_layout.rs` (either layout), written
//! as whole-plane loops that the compiler vectorises with the baseline SIMD.

use super::direct::Flat;

/// Where tap (s, ky, kx) of position 0 lies in the source planes.
fn tap(f: &Flat, s: usize, ky: usize, kx: usize) -> usize {
    s * f.tap_s + ky * f.tap_ky + kx * f.tap_kx
}

/// `out[c][j] = bias[c] + sum over (s, ky, kx) of w[c][s][ky][kx] * src[tap(s, ky, kx) + j]`
/// for `c < n_out`, `j < f.out_stride`, then ReLU if `relu`. `src` holds the
/// source planes of `n_src` channels, `out` `n_out` planes of `f.out_stride`.
#[allow(clippy::too_many_arguments)]
pub fn correlate(
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
    for (c, o) in out.chunks_exact_mut(f.out_stride).take(n_out).enumerate() {
        o.fill(bias.map_or(0.0, |b| b[c]));
        for s in 0..n_src {
            for ky in 0..f.kh {
                for kx in 0..f.kw {
                    let wv = w[(c * n_src + s) * taps + ky * f.kw + kx];
                    let xs = &src[tap(f, s, ky, kx)..][..f.out_stride];
                    for (o, x) in o.iter_mut().zip(xs) {
                        *o += wv * x;
                    }
                }
            }
        }
        if relu {
            o.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
}

/// `dst[tap(c, ky, kx) + j] += sum over s of w[s][c][ky][kx] * src[s][j]` for
/// every tap, `c < n_dst`, `j < f.len`, over a dst whose first `f.len`
/// positions of each plane are zeroed here (the others must be zero on
/// entry: the AVX2 kernel overwrites them with its first tap instead).
/// `src` holds `n_src` planes of `f.len` floats, `dst` the source planes of
/// `n_dst` channels.
pub fn scatter(f: &Flat, src: &[f32], n_src: usize, w: &[f32], dst: &mut [f32], n_dst: usize) {
    let taps = f.kh * f.kw;
    for plane in dst[..n_dst * f.tap_s].chunks_exact_mut(f.plane) {
        plane[..f.len].fill(0.0);
    }
    for c in 0..n_dst {
        for ky in 0..f.kh {
            for kx in 0..f.kw {
                let d = &mut dst[tap(f, c, ky, kx)..][..f.len];
                for (s, ys) in src.chunks_exact(f.len).take(n_src).enumerate() {
                    let wv = w[(s * n_dst + c) * taps + ky * f.kw + kx];
                    for (d, y) in d.iter_mut().zip(ys) {
                        *d += wv * y;
                    }
                }
            }
        }
    }
}

/// `dw[c][s][ky][kx] += sum over images i and j < f.len of dy[i][c][j] * x[i][tap(s, ky, kx) + j]`.
/// `x` holds `images` x the source planes of `n_x` channels, `dy` `images`
/// (`dy_image` floats apart) x `n_dy` planes of `f.len`.
#[allow(clippy::too_many_arguments)]
pub fn weight_grad(
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
    for c in 0..n_dy {
        for s in 0..n_x {
            for ky in 0..f.kh {
                for kx in 0..f.kw {
                    // Eight partial sums, as the eight lanes of the AVX2 kernel.
                    let mut acc = [0.0f32; 8];
                    for i in 0..images {
                        let d = &dy[i * dy_image + c * f.len..][..f.len];
                        let xs = &x[i * n_x * f.tap_s + tap(f, s, ky, kx)..][..f.len];
                        for (d8, x8) in d.chunks_exact(8).zip(xs.chunks_exact(8)) {
                            for l in 0..8 {
                                acc[l] += d8[l] * x8[l];
                            }
                        }
                    }
                    dw[(c * n_x + s) * taps + ky * f.kw + kx] += acc.iter().sum::<f32>();
                }
            }
        }
    }
}
