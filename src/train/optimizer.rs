//! AdamW as `torch.optim.AdamW`, with transformers' Trainer parameter groups.
//!
//! The update is PyTorch's single-tensor implementation (what it runs on the CPU), in the
//! same f32 operations in the same order, with the bias corrections in f64 as Python
//! computes them:
//!
//! ```text
//! step += 1
//! p  *= 1 - lr * weight_decay            (decoupled decay; decay group only)
//! m   = lerp(m, g, 1 - beta1)
//! v   = v * beta2 + (1 - beta2) * g * g
//! p  += -(lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
//! ```
//!
//! candle-nn has an AdamW too, but with one weight decay for all parameters; Trainer's
//! grouping needs one per parameter.

use candle_core::{Tensor, Var};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Elements per parallel task of the update; the update is elementwise, so the split does
/// not change the result.
const CHUNK: usize = 1 << 16;

/// The hyper-parameters; `Default` is `torch.optim.AdamW`'s (weight_decay 0.01) and
/// transformers' `TrainingArguments` (adam_beta1 0.9, adam_beta2 0.999, adam_epsilon 1e-8;
/// note Trainer's own default weight_decay is 0.0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

impl AdamWConfig {
    pub fn validate(&self) -> Result<()> {
        let ok = |b: f64| (0.0..1.0).contains(&b);
        if !ok(self.beta1) || !ok(self.beta2) {
            return Err(Error::invalid(format!(
                "AdamW betas must be in [0, 1), got ({}, {})",
                self.beta1, self.beta2
            )));
        }
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return Err(Error::invalid(format!(
                "adam_epsilon must be >= 0, got {}",
                self.eps
            )));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::invalid(format!(
                "weight_decay must be >= 0, got {}",
                self.weight_decay
            )));
        }
        Ok(())
    }
}

/// Whether weight decay applies to a parameter, by transformers' Trainer rule
/// (`Trainer.get_decay_parameter_names`): no decay for parameters inside an
/// `nn.LayerNorm`, nor for those whose lower-cased full name matches `bias`, `layernorm`,
/// `rmsnorm`, `(^|\.)norm($|\.)` or `_norm($|\.)`. BERT's layer norms are all named
/// `LayerNorm`, so the name test covers the type test here: every bias and every layer
/// norm weight is exempt; embeddings and dense weights decay.
pub fn decays(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let parts: Vec<&str> = name.split('.').collect();
    !(name.contains("bias")
        || name.contains("layernorm")
        || name.contains("rmsnorm")
        || parts.contains(&"norm")
        || parts.iter().any(|p| p.ends_with("_norm")))
}

struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
    steps: u64,
}

pub struct AdamW {
    config: AdamWConfig,
    decay: Vec<bool>,
    /// Created on a parameter's first gradient, as PyTorch's lazy state.
    state: Vec<Option<Moments>>,
}

impl AdamW {
    /// One entry per parameter, in the order `step` gets them.
    pub fn new<'a>(config: AdamWConfig, names: impl Iterator<Item = &'a str>) -> Result<Self> {
        config.validate()?;
        let decay: Vec<bool> = names.map(decays).collect();
        let state = decay.iter().map(|_| None).collect();
        Ok(Self {
            config,
            decay,
            state,
        })
    }

    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Whether each parameter is in the weight-decay group.
    pub fn decay_mask(&self) -> &[bool] {
        &self.decay
    }

    /// Updates each parameter in place from its gradient (already clipped). Parameters
    /// with no gradient (`None`) are left alone, state and weight decay included, as in
    /// PyTorch.
    pub fn step(&mut self, params: &[&Var], grads: &[Option<Vec<f32>>], lr: f64) -> Result<()> {
        if params.len() != self.state.len() || grads.len() != self.state.len() {
            return Err(Error::invalid(format!(
                "AdamW has {} parameters, got {} parameters and {} gradients",
                self.state.len(),
                params.len(),
                grads.len()
            )));
        }
        for (i, (var, grad)) in params.iter().zip(grads).enumerate() {
            let Some(grad) = grad else { continue };
            let mut values = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            if values.len() != grad.len() {
                return Err(Error::invalid(format!(
                    "parameter {i} has {} values but its gradient {}",
                    values.len(),
                    grad.len()
                )));
            }
            let state = self.state[i].get_or_insert_with(|| Moments {
                m: vec![0.0; grad.len()],
                v: vec![0.0; grad.len()],
                steps: 0,
            });
            state.steps += 1;
            let decay = if self.decay[i] {
                self.config.weight_decay
            } else {
                0.0
            };
            update(&mut values, grad, state, &self.config, decay, lr);
            var.set(&Tensor::from_vec(
                values,
                var.shape(),
                var.as_tensor().device(),
            )?)?;
        }
        Ok(())
    }
}

/// One parameter's update, in PyTorch's f32 operations (see the module comment).
fn update(
    p: &mut [f32],
    g: &[f32],
    state: &mut Moments,
    c: &AdamWConfig,
    weight_decay: f64,
    lr: f64,
) {
    let step = state.steps as i32;
    let bias_correction1 = 1.0 - c.beta1.powi(step);
    let bias_correction2 = 1.0 - c.beta2.powi(step);
    let neg_step_size = (-(lr / bias_correction1)) as f32;
    let bc2_sqrt = bias_correction2.sqrt() as f32;
    let decay_factor = (1.0 - lr * weight_decay) as f32;
    let apply_decay = weight_decay != 0.0;
    let lerp_weight = (1.0 - c.beta1) as f32;
    let beta2 = c.beta2 as f32;
    let one_minus_beta2 = (1.0 - c.beta2) as f32;
    let eps = c.eps as f32;

    p.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(
            state
                .m
                .par_chunks_mut(CHUNK)
                .zip(state.v.par_chunks_mut(CHUNK)),
        )
        .for_each(|((p, g), (m, v))| {
            for i in 0..p.len() {
                if apply_decay {
                    p[i] *= decay_factor;
                }
                // torch.lerp's two formulas, chosen by the weight as ATen does.
                m[i] = if lerp_weight < 0.5 {
                    m[i] + lerp_weight * (g[i] - m[i])
                } else {
                    g[i] - (g[i] - m[i]) * (1.0 - lerp_weight)
                };
                v[i] = v[i] * beta2 + one_minus_beta2 * g[i] * g[i];
                let denom = v[i].sqrt() / bc2_sqrt + eps;
                p[i] += neg_step_size * m[i] / denom;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn trainer_decay_rule() {
        for name in [
            "bert.embeddings.word_embeddings.weight",
            "bert.encoder.layer.0.attention.self.query.weight",
            "bert.pooler.dense.weight",
            "classifier.weight",
        ] {
            assert!(decays(name), "{name}");
        }
        for name in [
            "bert.embeddings.LayerNorm.weight",
            "bert.encoder.layer.3.output.LayerNorm.bias",
            "bert.encoder.layer.0.attention.self.key.bias",
            "classifier.bias",
            "model.norm.weight",
            "block.post_attention_norm.weight",
            "x.RMSNorm.weight",
        ] {
            assert!(!decays(name), "{name}");
        }
    }

    /// Two steps on two scalars, against values worked out by hand from the formulas
    /// (in f64; the f32 update agrees to f32 rounding).
    #[test]
    fn two_steps_match_hand_computed_values() {
        let dev = Device::Cpu;
        let w = Var::from_slice(&[1.0f32], 1, &dev).unwrap();
        let b = Var::from_slice(&[0.5f32], 1, &dev).unwrap();
        let config = AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let mut opt = AdamW::new(config, ["w.weight", "w.bias"].into_iter()).unwrap();
        assert_eq!(opt.decay_mask(), &[true, false]);

        // Step 1, lr 0.1, g = (0.5, -2).
        opt.step(&[&w, &b], &[Some(vec![0.5]), Some(vec![-2.0])], 0.1)
            .unwrap();
        // w: 1 * (1 - 0.01) = 0.99; m = 0.05, v = 0.00025; m_hat = 0.5, v_hat = 0.25;
        // update = 0.1 * 0.5 / (0.5 + 1e-8) = 0.1 - 2e-9.
        let w1 = 0.99 - 0.1 * 0.5 / (0.5 + 1e-8);
        // b: no decay; m_hat = -2, sqrt(v_hat) = 2: update = -0.1 * (-2) / (2 + 1e-8).
        let b1 = 0.5 + 0.1 * 2.0 / (2.0 + 1e-8);
        let get = |v: &Var| v.as_tensor().to_vec1::<f32>().unwrap()[0] as f64;
        assert!((get(&w) - w1).abs() < 1e-7, "{} vs {w1}", get(&w));
        assert!((get(&b) - b1).abs() < 1e-7, "{} vs {b1}", get(&b));

        // Step 2, lr 0.05, g = (-1, None): b is skipped entirely.
        opt.step(&[&w, &b], &[Some(vec![-1.0]), None], 0.05)
            .unwrap();
        let m = 0.9 * 0.05 - 0.1 * 1.0;
        let v: f64 = 0.999 * 0.00025 + 0.001 * 1.0;
        let (bc1, bc2) = (1.0 - 0.9f64.powi(2), 1.0 - 0.999f64.powi(2));
        let w2 = w1 * (1.0 - 0.05 * 0.1) - (0.05 / bc1) * m / (v.sqrt() / bc2.sqrt() + 1e-8);
        assert!((get(&w) - w2).abs() < 1e-6, "{} vs {w2}", get(&w));
        assert!((get(&b) - b1).abs() < 1e-7);
    }

    #[test]
    fn bad_hyper_parameters_are_refused() {
        let bad = |c: AdamWConfig| AdamW::new(c, std::iter::empty()).is_err();
        let d = AdamWConfig::default();
        assert!(bad(AdamWConfig { beta1: 1.0, ..d }));
        assert!(bad(AdamWConfig { beta2: -0.1, ..d }));
        assert!(bad(AdamWConfig {
            weight_decay: f64::NAN,
            ..d
        }));
        assert!(bad(AdamWConfig { eps: -1.0, ..d }));
    }
}
