//! The CPU inference engine: a hand-written forward pass over packed sequences (see
//! `encoder.rs` for why), on the `gemm` crate and vectorized kernels. It loads the same
//! weights as the candle models in `models/`, which remain the reference it is tested
//! against.

pub mod encoder;
pub mod gemm;
pub mod int8;
pub mod isa;
pub mod kernels;

use tokenizers::Encoding;

use crate::bi_encoder::Pooling;
use crate::error::Result;
use crate::models::bert::Config;
use crate::models::{Checkpoint, InputScheme};
use crate::precision::Precision;
use encoder::{Dense, Encoder, Output, Packed};

/// Encoder + classification head (dense + tanh on the first token, then the output
/// projection): BERT's pooler + classifier and XLM-R's classifier have this shape.
pub struct Classifier {
    encoder: Encoder,
    dense: Dense,
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
        let (dense_vb, out_vb) = ckpt.head_vbs();
        Ok(Self {
            encoder: Encoder::load(&ckpt.encoder_vb(), config, precision)?,
            dense: Dense::load(&dense_vb, h, h)?,
            out: Dense::load(&out_vb, h, num_labels)?,
            scheme: ckpt.family.input_scheme(config),
        })
    }

    /// Logits, (sequences, num_labels) row-major.
    pub fn forward(&self, encodings: &[&Encoding]) -> Result<Vec<f32>> {
        let packed = Packed::new(encodings, self.scheme);
        let first = self.encoder.forward(&packed, Output::FirstToken)?;
        let rows = packed.num_sequences();
        let mut pooled = self.dense.forward(&first, rows);
        kernels::tanh_inplace(&mut pooled);
        Ok(self.out.forward(&pooled, rows))
    }
}

/// Encoder + pooling (+ normalization): the bi-encoder's model.
pub struct Embedder {
    encoder: Encoder,
    scheme: InputScheme,
}

impl Embedder {
    pub fn load(ckpt: &Checkpoint, config: &Config, precision: Precision) -> Result<Self> {
        Ok(Self {
            encoder: Encoder::load(&ckpt.encoder_vb(), config, precision)?,
            scheme: ckpt.family.input_scheme(config),
        })
    }

    /// Embeddings, (sequences, hidden) row-major.
    pub fn forward(
        &self,
        encodings: &[&Encoding],
        pooling: Pooling,
        normalize: bool,
    ) -> Result<Vec<f32>> {
        let packed = Packed::new(encodings, self.scheme);
        let h = self.encoder.hidden_size();
        let output = if pooling == Pooling::Cls {
            Output::FirstToken
        } else {
            Output::AllTokens
        };
        let mut out = self
            .encoder
            .forward_with(&packed, output, |hidden| pool(hidden, &packed, h, pooling))?;
        if normalize {
            for row in out.chunks_exact_mut(h) {
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        Ok(out)
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
