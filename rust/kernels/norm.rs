//! Batch normalisation over all axes but the channel axis, forward and backward.
//!
//! The input is viewed as (batch, channels, inner): `inner` is H*W for 2-d
//! batch norm and 1 for 1-d. Each channel is one task: its statistics, its
//! normalisation and its gradient sums touch only that channel's elements, so
//! a channel's data (batch x inner floats, 256 KiB for VGG's widest layer at
//! batch 64) is read from cache by the passes after the first. The sums are
//! accumulated in f64 in a fixed order per channel, so results do not depend
//! on the thread count and the variance does not lose digits when |mean| is
//! large against the standard deviation (the squares are summed around one
//! of the channel's values, in the same pass as the mean).

use crate::kernels::elementwise::{relu, relu_grad};
use crate::kernels::simd;
use crate::threading::{self, PARALLEL_MIN_FLOPS};

/// The (batch, channels, inner) view of one batch-norm call.
#[derive(Clone, Copy, Debug)]
pub struct NormShape {
    pub batch: usize,
    pub channels: usize,
    pub inner: usize,
}

impl NormShape {
    /// Elements per channel (the reduction length).
    pub fn count(&self) -> usize {
        self.batch * self.inner
    }

    pub fn len(&self) -> usize {
        self.batch * self.channels * self.inner
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `inner`-long runs of channel `c`, one per sample, as ranges into the array.
    fn runs(&self, c: usize) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        (0..self.batch).map(move |n| {
            let start = (n * self.channels + c) * self.inner;
            start..start + self.inner
        })
    }
}

/// Per-channel results of the forward pass.
pub struct ChannelStats<'a> {
    pub mean: &'a mut [f32],
    /// Biased variance (divided by the count), as the normalisation uses.
    pub var: &'a mut [f32],
    pub inv_std: &'a mut [f32],
}

/// f64 accumulators per sum: 16 independent chains (4 ymm registers with
/// AVX2) keep the adds' latency hidden. Fixed order, so deterministic.
const LANES: usize = 16;

const SUM_X: u8 = 0b0001;
const SUM_SQ_DEV: u8 = 0b0010;
const SUM_G_AND_G_DEV: u8 = 0b1100;

/// Adds the lanes in a fixed pairwise order.
#[inline(always)]
fn reduce(acc: [f64; LANES]) -> f64 {
    let mut v = acc;
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            v[i] += v[i + width];
        }
    }
    v[0]
}

/// One channel's view of a call: the shape, the channel and the arrays its
/// passes read (`g` and `y` may be empty when a pass does not read them).
#[derive(Clone, Copy)]
struct Channel<'a> {
    shape: &'a NormShape,
    c: usize,
    x: &'a [f32],
    /// The gradient of the output (backward only).
    g: &'a [f32],
    /// The forward's output when a ReLU was fused (read with `RELU` only).
    y: &'a [f32],
}

/// The gradient reaching the batch norm's output at `i`: `g[i]`, or with
/// `RELU`, `g[i]` through the ReLU whose output is `y` (the values of the
/// ReLU backward kernel, so fusing it changes no bit).
#[inline(always)]
fn g_at<const RELU: bool>(g: &[f32], y: &[f32], i: usize) -> f32 {
    if RELU {
        relu_grad(g[i], y[i])
    } else {
        g[i]
    }
}

/// Adds element `i`'s terms to `acc`: x, (x - centre)^2, g, g * (x - centre),
/// each only when `WANT` asks for it.
#[inline(always)]
fn add_terms<const WANT: u8, const RELU: bool>(
    acc: &mut [&mut f64; 4],
    x: &[f32],
    g: &[f32],
    y: &[f32],
    i: usize,
    centre: f64,
) {
    let (xv, d) = (x[i] as f64, x[i] as f64 - centre);
    if WANT & SUM_X != 0 {
        *acc[0] += xv;
    }
    if WANT & SUM_SQ_DEV != 0 {
        *acc[1] += d * d;
    }
    if WANT & SUM_G_AND_G_DEV != 0 {
        let gv = g_at::<RELU>(g, y, i) as f64;
        *acc[2] += gv;
        *acc[3] += gv * d;
    }
}

/// The sums of channel `c` over all its runs: (sum of x, sum of
/// (x - centre)^2, sum of g, sum of g * (x - centre)), each only when
/// `WANT` asks. Element `i` of a run's full LANES-blocks goes to lane
/// `i % LANES` of each sum, the rest of the run (`inner % LANES` elements)
/// to one tail sum; the lanes are kept across runs (a reduction per run cost
/// more than the run itself on 8x8 planes) and reduced once, the tail added
/// last. The AVX2 build does exactly this, so it gives the same bits.
/// `g` and `y` are read only when asked for (`y` only with `RELU`).
#[inline(always)]
fn channel_sums_generic<const WANT: u8, const RELU: bool>(ch: Channel, centre: f64) -> [f64; 4] {
    let Channel { shape, c, x, g, y } = ch;
    let mut lanes = [[0.0f64; LANES]; 4];
    let mut tail = [0.0f64; 4];
    let full = shape.inner / LANES * LANES;
    for r in shape.runs(c) {
        for block in (r.start..r.start + full).step_by(LANES) {
            for l in 0..LANES {
                let [s0, s1, s2, s3] = &mut lanes;
                let mut acc = [&mut s0[l], &mut s1[l], &mut s2[l], &mut s3[l]];
                add_terms::<WANT, RELU>(&mut acc, x, g, y, block + l, centre);
            }
        }
        for i in r.start + full..r.end {
            let [t0, t1, t2, t3] = &mut tail;
            add_terms::<WANT, RELU>(&mut [t0, t1, t2, t3], x, g, y, i, centre);
        }
    }
    let mut out = lanes.map(reduce);
    for (o, t) in out.iter_mut().zip(tail) {
        *o += t;
    }
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::needless_range_loop)] // q indexes four accumulator arrays and the load offset
unsafe fn channel_sums_avx2<const WANT: u8, const RELU: bool>(
    ch: Channel,
    centre: f64,
) -> [f64; 4] {
    use std::arch::x86_64::*;
    let Channel { shape, c, x, g, y } = ch;
    let centre_v = _mm256_set1_pd(centre);
    let zero = _mm_setzero_ps();
    let mut acc = [[_mm256_setzero_pd(); LANES / 4]; 4];
    let mut tail = [0.0f64; 4];
    let full = shape.inner / LANES * LANES;
    assert!(shape.len() <= x.len());
    if WANT & SUM_G_AND_G_DEV != 0 {
        assert!(shape.len() <= g.len() && (!RELU || shape.len() <= y.len()));
    }
    for r in shape.runs(c) {
        for i in (r.start..r.start + full).step_by(LANES) {
            for q in 0..LANES / 4 {
                // SAFETY: i + 4q + 4 <= the run's end <= shape.len(), asserted
                // above to be within x (and g, y when they are read).
                let at = i + 4 * q;
                let xv = _mm256_cvtps_pd(_mm_loadu_ps(x.as_ptr().add(at)));
                let d = _mm256_sub_pd(xv, centre_v);
                if WANT & SUM_X != 0 {
                    acc[0][q] = _mm256_add_pd(acc[0][q], xv);
                }
                if WANT & SUM_SQ_DEV != 0 {
                    acc[1][q] = _mm256_add_pd(acc[1][q], _mm256_mul_pd(d, d));
                }
                if WANT & SUM_G_AND_G_DEV != 0 {
                    let mut g4 = _mm_loadu_ps(g.as_ptr().add(at));
                    if RELU {
                        // relu_grad: 0 where y <= 0 (not where y is NaN).
                        let off = _mm_cmp_ps::<_CMP_LE_OQ>(_mm_loadu_ps(y.as_ptr().add(at)), zero);
                        g4 = _mm_andnot_ps(off, g4);
                    }
                    let gv = _mm256_cvtps_pd(g4);
                    acc[2][q] = _mm256_add_pd(acc[2][q], gv);
                    acc[3][q] = _mm256_add_pd(acc[3][q], _mm256_mul_pd(gv, d));
                }
            }
        }
        for i in r.start + full..r.end {
            let [t0, t1, t2, t3] = &mut tail;
            add_terms::<WANT, RELU>(&mut [t0, t1, t2, t3], x, g, y, i, centre);
        }
    }
    let mut out = [0.0; 4];
    for (o, vectors) in out.iter_mut().zip(&acc) {
        let mut lanes = [0.0f64; LANES];
        for (q, v) in vectors.iter().enumerate() {
            _mm256_storeu_pd(lanes.as_mut_ptr().add(4 * q), *v);
        }
        *o = reduce(lanes);
    }
    for (o, t) in out.iter_mut().zip(tail) {
        *o += t;
    }
    out
}

/// `channel_sums_generic`, run by the AVX2 build when the CPU has AVX2 (same
/// f64 operations in the same order: Rust never fuses a multiply and an add
/// on its own, so the same bits).
fn channel_sums<const WANT: u8, const RELU: bool>(ch: Channel, centre: f64) -> [f64; 4] {
    #[cfg(target_arch = "x86_64")]
    if simd::use_avx2_fma() {
        // SAFETY: the CPU has AVX2 (checked at run time).
        return unsafe { channel_sums_avx2::<WANT, RELU>(ch, centre) };
    }
    channel_sums_generic::<WANT, RELU>(ch, centre)
}

/// The forward's write pass over channel `c`: y = x * scale + shift, then
/// ReLU if `RELU` (the values of the ReLU kernel: fused, the same bits).
#[inline(always)]
fn channel_affine_generic<const RELU: bool>(ch: Channel, out: OutPtr, scale: f32, shift: f32) {
    let Channel { shape, c, x, .. } = ch;
    for r in shape.runs(c) {
        // SAFETY: the runs of channel `c` belong to this task alone.
        let dst = unsafe { out.run(r.clone()) };
        for (o, &v) in dst.iter_mut().zip(&x[r]) {
            let y = v * scale + shift;
            *o = if RELU { relu(y) } else { y };
        }
    }
}

/// The backward's write pass over channel `c`:
/// gx = g * scale + ((x - mean) * k_x + k_0), `g` through the ReLU if `RELU`.
#[inline(always)]
fn channel_grad_generic<const RELU: bool>(
    ch: Channel,
    out: OutPtr,
    [scale, mean, k_x, k_0]: [f32; 4],
) {
    let Channel { shape, c, x, g, y } = ch;
    for r in shape.runs(c) {
        // SAFETY: the runs of channel `c` belong to this task alone.
        let dst = unsafe { out.run(r.clone()) };
        for (o, i) in dst.iter_mut().zip(r) {
            *o = g_at::<RELU>(g, y, i) * scale + ((x[i] - mean) * k_x + k_0);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn channel_affine_avx2<const RELU: bool>(ch: Channel, out: OutPtr, scale: f32, shift: f32) {
    channel_affine_generic::<RELU>(ch, out, scale, shift)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn channel_grad_avx2<const RELU: bool>(ch: Channel, out: OutPtr, k: [f32; 4]) {
    channel_grad_generic::<RELU>(ch, out, k)
}

/// The write passes, compiled for AVX2 when the CPU has it (8 lanes instead
/// of 4; the same element-wise operations, so the same bits).
fn channel_affine<const RELU: bool>(ch: Channel, out: OutPtr, scale: f32, shift: f32) {
    #[cfg(target_arch = "x86_64")]
    if simd::use_avx2_fma() {
        // SAFETY: the CPU has AVX2 (checked at run time).
        return unsafe { channel_affine_avx2::<RELU>(ch, out, scale, shift) };
    }
    channel_affine_generic::<RELU>(ch, out, scale, shift)
}

fn channel_grad<const RELU: bool>(ch: Channel, out: OutPtr, k: [f32; 4]) {
    #[cfg(target_arch = "x86_64")]
    if simd::use_avx2_fma() {
        // SAFETY: the CPU has AVX2 (checked at run time).
        return unsafe { channel_grad_avx2::<RELU>(ch, out, k) };
    }
    channel_grad_generic::<RELU>(ch, out, k)
}

/// Runs `per_channel(c)` for every channel, on the pool when the array is
/// large. Each channel is computed by one thread in a fixed order, so the
/// split never changes a result.
fn for_each_channel<T: Send>(
    shape: &NormShape,
    per_channel: impl Fn(usize) -> T + Sync + Send,
) -> Vec<T> {
    // About 4 flops per element over the passes of a channel.
    if 4 * shape.len() < PARALLEL_MIN_FLOPS || threading::single_threaded() || shape.channels < 2 {
        (0..shape.channels).map(per_channel).collect()
    } else {
        let mut results: Vec<Option<T>> = (0..shape.channels).map(|_| None).collect();
        threading::for_each_chunk_mut(
            &mut results,
            1,
            || (),
            |_, (c, slot)| slot[0] = Some(per_channel(c)),
        );
        results.into_iter().flatten().collect()
    }
}

/// The output pointer shared by the channel tasks, which write disjoint elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: each channel task writes only the elements of its own channel.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The run `range` of the output.
    ///
    /// SAFETY: `range` lies inside the output and no other task uses it now.
    #[allow(clippy::mut_from_ref)]
    unsafe fn run(&self, range: std::ops::Range<usize>) -> &mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(range.start), range.len())
    }
}

/// y = (x - mean) * inv_std * weight + bias per channel, folded into
/// y = x * scale + shift, then ReLU if `relu`. With `given` = Some((mean, var)) those statistics are
/// used (evaluation); otherwise the batch's own mean and biased variance,
/// which are written to `stats` with `inv_std = 1 / sqrt(var + eps)`.
/// `x` and `y` have `shape.len()` elements; weight and bias `channels`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward(
    shape: &NormShape,
    x: &[f32],
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    given: Option<(&[f32], &[f32])>,
    eps: f32,
    relu: bool,
    y: &mut [f32],
    stats: ChannelStats,
) {
    let out = OutPtr(y.as_mut_ptr());
    let count = shape.count() as f64;
    let channel = |c| Channel {
        shape,
        c,
        x,
        g: &[],
        y: &[],
    };
    let per_channel = |c: usize| {
        let (mean, var) = match given {
            Some((m, v)) => (m[c], v[c]),
            None => {
                // One pass: the sum of x and the sum of squares around a
                // value of the channel, K = its first element. x - K and its
                // square are exact in f64 (24-bit inputs), and as K is one of
                // the values, (mean - K)^2 <= count * var: the difference
                // var = mean((x - K)^2) - (mean - K)^2 cancels at most
                // log2(count) bits of the f64 sums' 53, where float32 keeps 24.
                let k = x[(c * shape.inner)..].first().map_or(0.0, |&v| v as f64);
                let [sum_x, sum_sq_dev, _, _] =
                    channel_sums::<{ SUM_X | SUM_SQ_DEV }, false>(channel(c), k);
                let mean = sum_x / count;
                let var = sum_sq_dev / count - (mean - k) * (mean - k);
                // Rounding may leave a tiny negative for a constant channel;
                // a NaN (from a NaN input) must stay (f64::max would drop it).
                let var = if var < 0.0 { 0.0 } else { var };
                (mean as f32, var as f32)
            }
        };
        let inv_std = 1.0 / (var + eps).sqrt();
        let scale = weight.map_or(inv_std, |w| inv_std * w[c]);
        let shift = bias.map_or(0.0, |b| b[c]) - mean * scale;
        if relu {
            channel_affine::<true>(channel(c), out, scale, shift);
        } else {
            channel_affine::<false>(channel(c), out, scale, shift);
        }
        (mean, var, inv_std)
    };
    let results = for_each_channel(shape, per_channel);
    for (c, (mean, var, inv_std)) in results.into_iter().enumerate() {
        stats.mean[c] = mean;
        stats.var[c] = var;
        stats.inv_std[c] = inv_std;
    }
}

/// Gradients of `batch_norm_forward` given the forward's x, mean and inv_std
/// and the weight (None: 1). Writes grad_x (when `gx` is given) and the
/// per-channel sums grad_weight = sum(g * x_hat) and grad_bias = sum(g).
///
/// `training`: the statistics were the batch's own, so they depend on x and
/// grad_x = scale * (g - mean(g) - x_hat * mean(g * x_hat)); otherwise
/// (evaluation statistics) grad_x = scale * g.
///
/// `relu_out`: the forward ran with `relu` and this is its output; `g` is
/// then the gradient of that output, and goes through the ReLU first (the
/// same bits as the ReLU backward kernel followed by this one).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    shape: &NormShape,
    g: &[f32],
    x: &[f32],
    mean: &[f32],
    inv_std: &[f32],
    weight: Option<&[f32]>,
    training: bool,
    relu_out: Option<&[f32]>,
    gx: Option<&mut [f32]>,
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
) {
    let out = gx.map(|v| OutPtr(v.as_mut_ptr()));
    let count = shape.count() as f32;
    let y = relu_out.unwrap_or(&[]);
    let channel = |c| Channel { shape, c, x, g, y };
    let per_channel = |c: usize| {
        let m = mean[c] as f64;
        let [_, _, sum_g, sum_g_dev] = if relu_out.is_some() {
            channel_sums::<SUM_G_AND_G_DEV, true>(channel(c), m)
        } else {
            channel_sums::<SUM_G_AND_G_DEV, false>(channel(c), m)
        };
        let (sum_g, sum_g_xhat) = (sum_g as f32, (sum_g_dev * inv_std[c] as f64) as f32);
        if let Some(out) = out {
            let scale = weight.map_or(inv_std[c], |w| inv_std[c] * w[c]);
            // gx = g * scale + (x - mean) * k_x + k_0 (k_x = k_0 = 0 in evaluation).
            let (k_x, k_0) = if training {
                (
                    -scale * sum_g_xhat * inv_std[c] / count,
                    -scale * sum_g / count,
                )
            } else {
                (0.0, 0.0)
            };
            let k = [scale, mean[c], k_x, k_0];
            if relu_out.is_some() {
                channel_grad::<true>(channel(c), out, k);
            } else {
                channel_grad::<false>(channel(c), out, k);
            }
        }
        (sum_g_xhat, sum_g)
    };
    let results = for_each_channel(shape, per_channel);
    for (c, (gw, gb)) in results.into_iter().enumerate() {
        grad_weight[c] = gw;
        grad_bias[c] = gb;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(batch: usize, channels: usize, inner: usize) -> NormShape {
        NormShape {
            batch,
            channels,
            inner,
        }
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32
                    / (1 << 24) as f32
                    * 4.0
                    - 1.5
            })
            .collect()
    }

    /// Forward by definition in f64: (mean, biased var, y).
    fn reference(
        s: &NormShape,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        eps: f64,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut y = vec![0.0; s.len()];
        let (mut means, mut vars) = (vec![], vec![]);
        for c in 0..s.channels {
            let vals: Vec<f64> = s
                .runs(c)
                .flat_map(|r| x[r].iter().map(|&v| v as f64))
                .collect();
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
            for r in s.runs(c) {
                for i in r {
                    y[i] = (x[i] as f64 - mean) / (var + eps).sqrt() * w[c] as f64 + b[c] as f64;
                }
            }
            means.push(mean);
            vars.push(var);
        }
        (means, vars, y)
    }

    fn forward(
        s: &NormShape,
        x: &[f32],
        w: &[f32],
        b: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
        let c = s.channels;
        let (mut y, mut mean, mut var, mut inv) = (
            vec![f32::NAN; s.len()],
            vec![0.0; c],
            vec![0.0; c],
            vec![0.0; c],
        );
        let stats = ChannelStats {
            mean: &mut mean,
            var: &mut var,
            inv_std: &mut inv,
        };
        batch_norm_forward(s, x, Some(w), Some(b), None, 1e-5, false, &mut y, stats);
        (y, mean, var, inv)
    }

    /// The one-pass variance (squares summed around the channel's first
    /// value) against the f64 definition, relative to the variance itself:
    /// data far from zero with a tiny spread, and a first value that is an
    /// outlier (the largest possible |mean - K|).
    #[test]
    fn variance_is_accurate_far_from_zero_and_with_an_outlier_first() {
        let s = shape(16, 2, 49);
        let noise = data(s.len(), 3);
        let mut x: Vec<f32> = noise.iter().map(|v| 1.0e4 + v * 1.0e-2).collect();
        for r in s.runs(1) {
            for i in r {
                x[i] = noise[i] * 1.0e-3;
            }
        }
        x[s.inner] = 1.0e4; // channel 1's first value
        let (w, b) = (vec![1.0; 2], vec![0.0; 2]);
        let (_, mean, var, _) = forward(&s, &x, &w, &b);
        let (rm, rv, _) = reference(&s, &x, &w, &b, 1e-5);
        for c in 0..2 {
            assert!(
                (var[c] as f64 - rv[c]).abs() <= 1e-6 * rv[c],
                "var[{c}] {} vs {}",
                var[c],
                rv[c]
            );
            assert!(
                (mean[c] as f64 - rm[c]).abs() <= 1e-6 * rm[c].abs(),
                "mean[{c}]"
            );
        }
    }

    #[test]
    fn forward_matches_the_definition() {
        for s in [
            shape(3, 4, 5),
            shape(2, 1, 1),
            shape(64, 3, 1),
            shape(5, 7, 33),
        ] {
            let x: Vec<f32> = data(s.len(), 1).iter().map(|v| v + 100.0).collect(); // |mean| >> std
            let (w, b) = (data(s.channels, 2), data(s.channels, 3));
            let (y, mean, var, _) = forward(&s, &x, &w, &b);
            let (rm, rv, ry) = reference(&s, &x, &w, &b, 1e-5);
            for c in 0..s.channels {
                assert!((mean[c] as f64 - rm[c]).abs() < 1e-4, "{s:?} mean");
                assert!(
                    (var[c] as f64 - rv[c]).abs() < 1e-5 * rv[c].max(1.0),
                    "{s:?} var"
                );
            }
            for (a, r) in y.iter().zip(&ry) {
                assert!(
                    (*a as f64 - r).abs() < 2e-3 * r.abs().max(1.0),
                    "{s:?}: {a} vs {r}"
                );
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences_of_a_weighted_sum() {
        let s = shape(3, 2, 4);
        let x = data(s.len(), 5);
        let (w, b) = (data(2, 6), data(2, 7));
        let g = data(s.len(), 8);
        let (_, mean, _, inv) = forward(&s, &x, &w, &b);
        let (mut gx, mut gw, mut gb) = (vec![f32::NAN; s.len()], vec![0.0; 2], vec![0.0; 2]);
        batch_norm_backward(
            &s,
            &g,
            &x,
            &mean,
            &inv,
            Some(&w),
            true,
            None,
            Some(&mut gx),
            &mut gw,
            &mut gb,
        );
        // loss = sum(g * y) in f64; central differences on each x and weight.
        let loss = |x: &[f32], w: &[f32], b: &[f32]| -> f64 {
            let (_, _, y) = reference(&s, x, w, b, 1e-5);
            y.iter().zip(&g).map(|(y, g)| y * *g as f64).sum()
        };
        let h = 1e-2f32;
        for i in 0..s.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += h;
            xm[i] -= h;
            let fd = (loss(&xp, &w, &b) - loss(&xm, &w, &b)) / (xp[i] - xm[i]) as f64;
            assert!(
                (gx[i] as f64 - fd).abs() < 2e-3 * fd.abs().max(1.0),
                "gx[{i}] {} vs {fd}",
                gx[i]
            );
        }
        for c in 0..2 {
            let (mut wp, mut wm) = (w.clone(), w.clone());
            wp[c] += h;
            wm[c] -= h;
            let fd = (loss(&x, &wp, &b) - loss(&x, &wm, &b)) / (wp[c] - wm[c]) as f64;
            assert!(
                (gw[c] as f64 - fd).abs() < 2e-3 * fd.abs().max(1.0),
                "gw[{c}]"
            );
            let sum_g: f64 = s.runs(c).flat_map(|r| g[r].iter().map(|&v| v as f64)).sum();
            assert!((gb[c] as f64 - sum_g).abs() < 1e-4, "gb[{c}]");
        }
    }
}
