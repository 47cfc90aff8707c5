//! The CPU inference engine: a hand-written forward pass over packed sequences (see
//! `encoder.rs` for why), on the `gemm` crate and vectorized kernels. It loads the same
//! weights as candle's model (`score::candle`), which remains the reference it is tested
//! against.

pub(crate) mod encoder;
pub(crate) mod gemm;
pub(crate) mod int8;
pub mod isa;
pub(crate) mod kernels;
pub(crate) mod modernbert;
pub(crate) mod qwen3;

use tokenizers::Encoding;

use crate::error::Result;
use crate::model::checkpoint::{Checkpoint, HeadActivation, InputScheme};
use crate::model::config::Config;
use crate::model::precision::Precision;
use crate::score::engine::Engine;
use crate::score::pooling::Pooling;
use encoder::{Dense, Encoder, Output, Packed};

/// Encoder + classification head (dense + an activation on the first token, then the
/// output projection: `Checkpoint::head`).
pub(crate) struct Classifier {
    encoder: Encoder,
    dense: Dense,
    activation: HeadActivation,
    out: Dense,
    scheme: InputScheme,
}

impl Classifier {
    /// The head stays f32 whatever `precision` says: it is one row per sequence.
    pub fn load(
        ckpt: &Checkpoint,
        config: &Config,
        num_labels: usize,
        precision: Precision,
    ) -> Result<Self> {
        let h = config.hidden_size;
        let (dense_vb, activation, out_vb) = ckpt.head()?;
        Ok(Self {
            encoder: Encoder::load(&ckpt.encoder_vb(), config, ckpt.family.layout()?, precision)?,
            dense: Dense::load(&dense_vb, h, h)?,
            activation,
            out: Dense::load(&out_vb, h, num_labels)?,
            scheme: ckpt.family.input_scheme(config),
        })
    }
}

impl Engine for Classifier {
    fn predict(&self, encodings: &[&Encoding]) -> Result<Vec<f32>> {
        let packed = Packed::new(encodings, self.scheme);
        let first = self.encoder.forward(&packed, Output::FirstToken)?;
        let rows = packed.num_sequences();
        let mut pooled = self.dense.forward(&first, rows);
        match self.activation {
            HeadActivation::Tanh => kernels::tanh_inplace(&mut pooled),
            HeadActivation::Gelu => kernels::gelu_erf(&mut pooled),
            HeadActivation::Relu => kernels::relu(&mut pooled),
        }
        Ok(self.out.forward(&pooled, rows))
    }
}

/// Encoder + pooling: the bi-encoder's model.
pub(crate) struct Embedder {
    encoder: Encoder,
    scheme: InputScheme,
}

impl Embedder {
    pub fn load(ckpt: &Checkpoint, config: &Config, precision: Precision) -> Result<Self> {
        Ok(Self {
            encoder: Encoder::load(&ckpt.encoder_vb(), config, ckpt.family.layout()?, precision)?,
            scheme: ckpt.family.input_scheme(config),
        })
    }
}

impl Engine for Embedder {
    fn embed(&self, encodings: &[&Encoding], pooling: Pooling) -> Result<Vec<f32>> {
        let packed = Packed::new(encodings, self.scheme);
        let h = self.encoder.hidden_size();
        let output = if pooling == Pooling::Cls {
            Output::FirstToken
        } else {
            Output::AllTokens
        };
        self.encoder
            .forward_with(&packed, output, |hidden| pool(hidden, &packed, h, pooling))
    }
}

/// Pools each sequence's rows of `hidden` (all tokens; for `Cls`, one row per sequence).
fn pool(hidden: &[f32], packed: &Packed, h: usize, pooling: Pooling) -> Vec<f32> {
    let mut out = vec![0f32; packed.num_sequences() * h];
    for (s, row) in out.chunks_exact_mut(h).enumerate() {
        let tokens = || hidden[packed.offsets[s] * h..packed.offsets[s + 1] * h].chunks_exact(h);
        match pooling {
            // With Output::FirstToken, row s of `hidden` is sequence s's first token.
            Pooling::Cls => row.copy_from_slice(&hidden[s * h..(s + 1) * h]),
            Pooling::Max => {
                row.fill(f32::NEG_INFINITY);
                for t in tokens() {
                    row.iter_mut().zip(t).for_each(|(r, v)| *r = r.max(*v));
                }
            }
            Pooling::Mean | Pooling::MeanSqrtLen => {
                for t in tokens() {
                    row.iter_mut().zip(t).for_each(|(r, v)| *r += v);
                }
                let n = packed.len(s) as f32;
                let div = if pooling == Pooling::Mean {
                    n
                } else {
                    n.sqrt()
                }
                .max(1e-9);
                row.iter_mut().for_each(|r| *r /= div);
            }
        }
    }
    out
}
