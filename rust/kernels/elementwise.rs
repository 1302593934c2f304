//! Elementwise kernels of a training step: ReLU, per-channel bias add, and the
//! column bias + ReLU that a Linear layer fuses into its GEMM call.
//!
//! Large arrays are split into fixed-size chunks (independent of the thread count).

use crate::threading;

/// Elements per parallel task; below twice this, the op stays on the calling thread.
const CHUNK: usize = 1 << 15;

/// Applies `f` to matching chunks of `out` and `inputs`, in parallel when large.
fn zip_chunks<const K: usize>(
    out: &mut [f32],
    inputs: [&[f32]; K],
    f: impl Fn(&mut [f32], [&[f32]; K]) + Sync + Send,
) {
    let piece = |c: usize, o: &mut [f32]| {
        let start = c * CHUNK;
        f(o, inputs.map(|x| &x[start..start + o.len()]));
    };
    if out.len() < 2 * CHUNK || threading::single_threaded() {
        f(out, inputs);
    } else {
        threading::for_each_chunk_mut(out, CHUNK, || (), |_, (c, o)| piece(c, o));
    }
}

/// max(v, 0); NaN stays NaN (as PyTorch), -0.0 becomes 0.0.
#[inline(always)]
pub fn relu(v: f32) -> f32 {
    if v > 0.0 || v.is_nan() {
        v
    } else {
        0.0
    }
}

/// y = max(x, 0); NaN stays NaN (as PyTorch).
pub fn relu_forward(x: &[f32], y: &mut [f32]) {
    zip_chunks(y, [x], |ys, [xs]| {
        for (o, &v) in ys.iter_mut().zip(xs) {
            *o = relu(v);
        }
    });
}

/// y = max(y, 0) in place, the same values as [`relu_forward`].
pub fn relu_inplace(y: &mut [f32]) {
    zip_chunks(y, [], |ys, []| ys.iter_mut().for_each(|v| *v = relu(*v)));
}

/// dx = 0 where y <= 0, else dy (`y` is the forward output, or its input).
/// As PyTorch's `threshold_backward`, a NaN `y` lets the gradient through.
pub fn relu_backward(dy: &[f32], y: &[f32], dx: &mut [f32]) {
    zip_chunks(dx, [dy, y], |ds, [gs, ys]| {
        for ((o, &g), &v) in ds.iter_mut().zip(gs).zip(ys) {
            *o = relu_grad(g, v);
        }
    });
}

/// The gradient through a ReLU whose output is `y`: 0 where y <= 0, else `g`.
#[inline(always)]
pub fn relu_grad(g: f32, y: f32) -> f32 {
    if y <= 0.0 {
        0.0
    } else {
        g
    }
}

/// y[n, c, ...] += bias[c] in place, for an array viewed as (n, c, inner).
pub fn bias_add_inplace(y: &mut [f32], bias: &[f32], inner: usize) {
    let c = bias.len();
    let row = c * inner.max(1); // one sample: c planes of `inner` elements
    if row == 0 {
        return;
    }
    let add_sample = |sample: &mut [f32]| {
        if inner <= 1 {
            // (N, C): one contiguous pass per row of C values.
            for (v, &b) in sample.iter_mut().zip(bias) {
                *v += b;
            }
        } else {
            for (plane, &b) in sample.chunks_mut(inner).zip(bias) {
                plane.iter_mut().for_each(|v| *v += b);
            }
        }
    };
    if y.len() < 2 * CHUNK || threading::single_threaded() {
        y.chunks_mut(row).for_each(add_sample);
    } else {
        // Whole samples per task, about CHUNK elements each.
        let per_task = (CHUNK / row).max(1) * row;
        threading::for_each_chunk_mut(
            y,
            per_task,
            || (),
            |_, (_, group)| group.chunks_mut(row).for_each(add_sample),
        );
    }
}
