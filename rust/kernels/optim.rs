//! In-place optimiser updates with PyTorch's exact formulas (torch.optim.SGD,
//! Adam and AdamW, single-tensor path). Each element is updated independently,
//! so the split across threads cannot change results.

use rayon::prelude::*;

use crate::threading;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

#[derive(Clone, Copy, Debug)]
pub struct SgdConfig {
    pub lr: f32,
    pub momentum: f32,
    pub dampening: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
    pub maximize: bool,
}

/// One SGD step on one parameter. `momentum_buf` is required when momentum != 0;
/// on the first step (`first_step`) it is set to the gradient, as PyTorch does.
pub fn sgd_step(
    cfg: &SgdConfig,
    param: &mut [f32],
    grad: &[f32],
    momentum_buf: Option<&mut [f32]>,
    first_step: bool,
) {
    let c = *cfg;
    let update = move |p: &mut f32, g: f32, buf: Option<&mut f32>| {
        let mut d = if c.maximize { -g } else { g };
        if c.weight_decay != 0.0 {
            d += c.weight_decay * *p;
        }
        if let Some(b) = buf {
            *b = if first_step {
                d
            } else {
                c.momentum * *b + (1.0 - c.dampening) * d
            };
            d = if c.nesterov { d + c.momentum * *b } else { *b };
        }
        *p -= c.lr * d;
    };
    threading::install(|| match momentum_buf {
        Some(buf) => param
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(buf.par_chunks_mut(CHUNK))
            .for_each(|((p, g), b)| {
                p.iter_mut()
                    .zip(g)
                    .zip(b)
                    .for_each(|((p, &g), b)| update(p, g, Some(b)));
            }),
        None => param
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .for_each(|(p, g)| {
                p.iter_mut().zip(g).for_each(|(p, &g)| update(p, g, None));
            }),
    });
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

/// One Adam / AdamW step on one parameter. `max_exp_avg_sq` is required when amsgrad.
pub fn adam_step(
    cfg: &AdamConfig,
    param: &mut [f32],
    grad: &[f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
    max_exp_avg_sq: Option<&mut [f32]>,
) {
    let c = *cfg;
    let bias_correction1 = 1.0 - (c.beta1 as f64).powf(c.step as f64);
    let bias_correction2 = 1.0 - (c.beta2 as f64).powf(c.step as f64);
    let step_size = (c.lr as f64 / bias_correction1) as f32;
    let bc2_sqrt = bias_correction2.sqrt() as f32;
    let update = move |p: &mut f32, g: f32, m: &mut f32, v: &mut f32, vmax: Option<&mut f32>| {
        let mut g = if c.maximize { -g } else { g };
        if c.weight_decay != 0.0 {
            if c.decoupled_weight_decay {
                *p *= 1.0 - c.lr * c.weight_decay;
            } else {
                g += c.weight_decay * *p;
            }
        }
        *m += (g - *m) * (1.0 - c.beta1);
        *v = c.beta2 * *v + (1.0 - c.beta2) * g * g;
        let second = match vmax {
            Some(vm) => {
                *vm = vm.max(*v);
                *vm
            }
            None => *v,
        };
        let denom = second.sqrt() / bc2_sqrt + c.eps;
        *p -= step_size * *m / denom;
    };
    threading::install(|| {
        let base = param
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(exp_avg.par_chunks_mut(CHUNK))
            .zip(exp_avg_sq.par_chunks_mut(CHUNK));
        match max_exp_avg_sq {
            Some(vmax) => {
                base.zip(vmax.par_chunks_mut(CHUNK))
                    .for_each(|((((p, g), m), v), vm)| {
                        for i in 0..p.len() {
                            update(&mut p[i], g[i], &mut m[i], &mut v[i], Some(&mut vm[i]));
                        }
                    })
            }
            None => base.for_each(|(((p, g), m), v)| {
                for i in 0..p.len() {
                    update(&mut p[i], g[i], &mut m[i], &mut v[i], None);
                }
            }),
        }
    });
}
