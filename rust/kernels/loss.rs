//! Log-softmax + negative log-likelihood (cross-entropy) over class logits,
//! forward and backward fused in one pass per row.

use rayon::prelude::*;

use crate::error::{KernelError, Result};
use crate::threading;

/// Per-row losses of `logits` (n x c) against class indices `target`, with
/// PyTorch's label smoothing. If `dlogits` is given, it receives
/// d(losses[i]) / d(logits[i]) for each row: softmax - smoothed one-hot.
/// Rows whose target equals `ignore_index` get loss 0 and gradient 0.
pub fn cross_entropy(
    logits: &[f32],
    classes: usize,
    target: &[i64],
    label_smoothing: f32,
    ignore_index: i64,
    losses: &mut [f32],
    dlogits: Option<&mut [f32]>,
) -> Result<()> {
    if let Some((i, &t)) = target
        .iter()
        .enumerate()
        .find(|&(_, &t)| t != ignore_index && (t < 0 || t >= classes as i64))
    {
        return Err(KernelError::Argument(format!(
            "cross_entropy: target[{i}] = {t} is out of range for {classes} classes (logits shape ({}, {classes}))",
            target.len()
        )));
    }
    let eps = label_smoothing;
    let row = |(i, (loss, grad)): (usize, (&mut f32, Option<&mut [f32]>))| {
        let z = &logits[i * classes..][..classes];
        let t = target[i];
        if t == ignore_index {
            *loss = 0.0;
            if let Some(g) = grad {
                g.fill(0.0);
            }
            return;
        }
        let t = t as usize;
        let max = z.iter().fold(
            f32::NEG_INFINITY,
            |m, &v| if v > m || v.is_nan() { v } else { m },
        );
        // Accumulate in f64: one row is short, and this keeps large-logit rows exact.
        let sum_exp: f64 = z.iter().map(|&v| ((v - max) as f64).exp()).sum();
        let log_z = max as f64 + sum_exp.ln();
        let nll = log_z - z[t] as f64;
        let mean_neg_logp = log_z - z.iter().map(|&v| v as f64).sum::<f64>() / classes as f64;
        *loss = ((1.0 - eps as f64) * nll + eps as f64 * mean_neg_logp) as f32;
        if let Some(g) = grad {
            let off = eps / classes as f32;
            for (j, gj) in g.iter_mut().enumerate() {
                let p = ((z[j] as f64 - log_z).exp()) as f32;
                *gj = p - off - if j == t { 1.0 - eps } else { 0.0 };
            }
        }
    };
    // Rows are independent, so the split cannot change results.
    let parallel = target.len() * classes >= 1 << 16 && !threading::single_threaded();
    match dlogits {
        Some(d) if parallel => threading::install(|| {
            losses
                .par_iter_mut()
                .zip(d.par_chunks_mut(classes).map(Some))
                .enumerate()
                .for_each(row)
        }),
        Some(d) => losses
            .iter_mut()
            .zip(d.chunks_mut(classes).map(Some))
            .enumerate()
            .for_each(row),
        None => losses
            .iter_mut()
            .map(|l| (l, None))
            .enumerate()
            .for_each(row),
    }
    Ok(())
}
