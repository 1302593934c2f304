//! In-place optimiser updates with PyTorch's formulas (torch.optim.SGD, Adam
//! and AdamW, single-tensor path).
//!
//! One call updates every parameter of an optimiser: all tensors are cut into
//! fixed-size chunks and the chunks run as one parallel loop (one rayon
//! wake-up per step, not one per tensor), or serially when the step is small.
//! Each element is updated independently, so the split cannot change results.

use rayon::prelude::*;

use crate::threading;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;
/// Below this many elements in all tensors together, the step stays serial.
const PARALLEL_MIN_ELEMS: usize = 1 << 16;

#[derive(Clone, Copy, Debug)]
pub struct SgdConfig {
    pub lr: f32,
    pub momentum: f32,
    pub dampening: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
    pub maximize: bool,
}

/// One parameter's slices for an SGD step. `momentum_buf` is used when momentum != 0.
pub struct SgdTensor<'a> {
    pub param: &'a mut [f32],
    pub grad: &'a [f32],
    pub momentum_buf: Option<&'a mut [f32]>,
}

/// One SGD step on every tensor. On the first step (`first_step`) the momentum
/// buffers are set to the gradient, as PyTorch does.
pub fn sgd_step(cfg: &SgdConfig, tensors: Vec<SgdTensor<'_>>, first_step: bool) {
    let c = *cfg;
    let use_momentum = c.momentum != 0.0;
    let total = tensors.iter().map(|t| t.param.len()).sum();
    let mut pieces = Vec::new();
    for t in tensors {
        let bufs: Box<dyn Iterator<Item = Option<&mut [f32]>>> = match t.momentum_buf {
            Some(b) if use_momentum => Box::new(b.chunks_mut(CHUNK).map(Some)),
            _ => Box::new(std::iter::repeat_with(|| None)),
        };
        pieces.extend(
            t.param
                .chunks_mut(CHUNK)
                .zip(t.grad.chunks(CHUNK))
                .zip(bufs)
                .map(|((p, g), b)| (p, g, b)),
        );
    }
    run(pieces, total, |(p, g, b)| {
        sgd_chunk(&c, first_step, p, g, b)
    });
}

fn sgd_chunk(
    c: &SgdConfig,
    first_step: bool,
    param: &mut [f32],
    grad: &[f32],
    buf: Option<&mut [f32]>,
) {
    let sign = if c.maximize { -1.0f32 } else { 1.0 };
    let (lr, wd, m, damp) = (c.lr, c.weight_decay, c.momentum, 1.0 - c.dampening);
    // PyTorch skips the weight-decay term when it is 0 (0 * inf would be NaN).
    let decayed = |p: f32, g: f32| {
        if wd != 0.0 {
            sign * g + wd * p
        } else {
            sign * g
        }
    };
    match buf {
        None => {
            for (p, &g) in param.iter_mut().zip(grad) {
                *p -= lr * decayed(*p, g);
            }
        }
        Some(buf) => {
            for ((p, &g), b) in param.iter_mut().zip(grad).zip(buf) {
                let d = decayed(*p, g);
                *b = if first_step { d } else { m * *b + damp * d };
                let step = if c.nesterov { d + m * *b } else { *b };
                *p -= lr * step;
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct AdamConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// AdamW: decay the weights directly instead of adding `weight_decay * param` to the gradient.
    pub decoupled_weight_decay: bool,
    pub amsgrad: bool,
    pub maximize: bool,
    /// The step number after this update (1 on the first step).
    pub step: u64,
}

/// One parameter's slices for an Adam step; `max_exp_avg_sq` is used when amsgrad.
pub struct AdamTensor<'a> {
    pub param: &'a mut [f32],
    pub grad: &'a [f32],
    pub exp_avg: &'a mut [f32],
    pub exp_avg_sq: &'a mut [f32],
    pub max_exp_avg_sq: Option<&'a mut [f32]>,
}

type AdamPiece<'a> = (
    &'a mut [f32],
    &'a [f32],
    &'a mut [f32],
    &'a mut [f32],
    Option<&'a mut [f32]>,
);

/// One Adam / AdamW step on every tensor.
pub fn adam_step(cfg: &AdamConfig, tensors: Vec<AdamTensor<'_>>) {
    let c = *cfg;
    // Bias corrections in f64, as PyTorch computes them in Python floats.
    let bias_correction1 = 1.0 - (c.beta1 as f64).powf(c.step as f64);
    let bias_correction2 = 1.0 - (c.beta2 as f64).powf(c.step as f64);
    let k = AdamConstants {
        step_size: (c.lr as f64 / bias_correction1) as f32,
        bc2_sqrt: bias_correction2.sqrt() as f32,
        decay: (1.0 - c.lr as f64 * c.weight_decay as f64) as f32,
    };
    let total = tensors.iter().map(|t| t.param.len()).sum();
    let mut pieces: Vec<AdamPiece<'_>> = Vec::new();
    for t in tensors {
        let vmax: Box<dyn Iterator<Item = Option<&mut [f32]>>> = match t.max_exp_avg_sq {
            Some(v) if c.amsgrad => Box::new(v.chunks_mut(CHUNK).map(Some)),
            _ => Box::new(std::iter::repeat_with(|| None)),
        };
        pieces.extend(
            t.param
                .chunks_mut(CHUNK)
                .zip(t.grad.chunks(CHUNK))
                .zip(t.exp_avg.chunks_mut(CHUNK))
                .zip(t.exp_avg_sq.chunks_mut(CHUNK))
                .zip(vmax)
                .map(|((((p, g), m), v), vm)| (p, g, m, v, vm)),
        );
    }
    run(pieces, total, |(p, g, m, v, vm)| {
        adam_chunk(&c, &k, p, g, m, v, vm)
    });
}

struct AdamConstants {
    step_size: f32,
    bc2_sqrt: f32,
    /// AdamW's weight factor 1 - lr * weight_decay.
    decay: f32,
}

fn adam_chunk(
    c: &AdamConfig,
    k: &AdamConstants,
    param: &mut [f32],
    grad: &[f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
    max_exp_avg_sq: Option<&mut [f32]>,
) {
    let sign = if c.maximize { -1.0f32 } else { 1.0 };
    let (b1, b2, eps) = (1.0 - c.beta1, c.beta2, c.eps);
    let coupled_wd = if c.decoupled_weight_decay {
        0.0
    } else {
        c.weight_decay
    };
    let decoupled = c.decoupled_weight_decay && c.weight_decay != 0.0;
    // Gradient with L2 decay and the exp_avg / exp_avg_sq updates; returns the new (m, v).
    let moments = |p: &mut f32, g: f32, m: &mut f32, v: &mut f32| {
        let mut g = sign * g;
        if decoupled {
            *p *= k.decay;
        } else if coupled_wd != 0.0 {
            g += coupled_wd * *p;
        }
        *m += (g - *m) * b1; // torch.lerp with weight 1 - beta1
        *v = b2 * *v + (1.0 - b2) * g * g;
    };
    let apply = |p: &mut f32, m: f32, second: f32| {
        *p -= k.step_size * m / (second.sqrt() / k.bc2_sqrt + eps);
    };
    let pgmv = param
        .iter_mut()
        .zip(grad)
        .zip(exp_avg.iter_mut())
        .zip(exp_avg_sq.iter_mut());
    match max_exp_avg_sq {
        None => {
            for (((p, &g), m), v) in pgmv {
                moments(p, g, m, v);
                apply(p, *m, *v);
            }
        }
        Some(vmax) => {
            for ((((p, &g), m), v), vm) in pgmv.zip(vmax) {
                moments(p, g, m, v);
                // torch.maximum: NaN in either stays NaN (f32::max would drop it).
                if *v > *vm || v.is_nan() {
                    *vm = *v;
                }
                apply(p, *m, *vm);
            }
        }
    }
}

/// Runs `f` on every piece: serially for small steps, else as one parallel loop.
fn run<T: Send>(pieces: Vec<T>, total_elems: usize, f: impl Fn(T) + Sync + Send) {
    if total_elems < PARALLEL_MIN_ELEMS || pieces.len() < 2 || threading::single_threaded() {
        pieces.into_iter().for_each(f);
    } else {
        threading::install(|| pieces.into_par_iter().for_each(f));
    }
}
