//! ModernBERT on the CPU engine, over packed sequences as the BERT encoder (`encoder.rs`),
//! with what ModernBERT changes: rotary positions applied to Q and K in place, pre-norm
//! layers without biases, GeGLU, and sliding-window layers whose attention computes only
//! the window (blocks of queries against the keys within their reach). Tested against
//! candle's model (`score::candle::modernbert`), the reference.

use candle_nn::VarBuilder;
use rayon::prelude::*;
use tokenizers::Encoding;

use super::encoder::{
    ffn_output_format, normalized, Dense, Norm, Packed, WeightFormat, GELU_FLOOR,
};
use super::gemm::{matmul, Mat, MatMut, B};
use super::int8::QuantizedRows;
use super::kernels;
use crate::error::{Error, Result};
use crate::model::checkpoint::{Checkpoint, InputScheme};
use crate::model::config::{ClassifierPooling, HiddenAct, ModernBertConfig};
use crate::model::names::modernbert as names;
use crate::model::precision::Precision;
use crate::score::engine::Engine;
use crate::score::pooling::Pooling;

/// Queries per block of a sliding-window layer: each block reads the keys within the
/// window of any of its queries, so the work is about `(block + 2w) / len` of a full pass.
const QUERY_BLOCK: usize = 32;

fn activate(xs: &mut [f32], act: HiddenAct) {
    match act {
        HiddenAct::Gelu => kernels::gelu_erf(xs),
        HiddenAct::GeluNew | HiddenAct::GeluPytorchTanh => kernels::gelu_tanh(xs),
        HiddenAct::Relu => kernels::relu(xs),
        HiddenAct::Silu => kernels::silu(xs),
    }
}

/// cos and sin of the rotary angles, (positions, head_dim / 2) row-major, for one base.
struct Rotary {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
}

impl Rotary {
    fn new(c: &ModernBertConfig, theta: f64) -> Self {
        let angles = c.rotary_angles(theta);
        Self {
            cos: angles.iter().map(|a| a.cos()).collect(),
            sin: angles.iter().map(|a| a.sin()).collect(),
            half: c.head_dim() / 2,
        }
    }

    /// Rotates the query and key parts of each token's fused Q|K|V row (`3 * hidden`
    /// wide), as transformers' `rotate_half`: the pair (x[i], x[i + d/2]) turns by the
    /// angle of position `positions[t]` and frequency i.
    fn apply(&self, qkv: &mut [f32], positions: &[u32], hidden: usize) {
        let (half, d) = (self.half, 2 * self.half);
        qkv.par_chunks_exact_mut(3 * hidden)
            .zip(positions)
            .for_each(|(row, &p)| {
                let (cos, sin) = (
                    &self.cos[p as usize * half..][..half],
                    &self.sin[p as usize * half..][..half],
                );
                for head in row[..2 * hidden].chunks_exact_mut(d) {
                    let (x1, x2) = head.split_at_mut(half);
                    for i in 0..half {
                        let (a, b) = (x1[i], x2[i]);
                        x1[i] = a * cos[i] - b * sin[i];
                        x2[i] = b * cos[i] + a * sin[i];
                    }
                }
            });
    }
}

struct Layer {
    attn_norm: Option<Norm>,
    qkv: Dense,
    attn_out: Dense,
    mlp_norm: Norm,
    mlp_in: Dense,
    mlp_out: Dense,
    window: Option<usize>,
}

/// The ModernBERT encoder: the last hidden state of every token, after the final norm.
pub(crate) struct ModernBertEncoder {
    embeddings: Vec<f32>,
    embeddings_norm: Norm,
    layers: Vec<Layer>,
    final_norm: Norm,
    global_rotary: Rotary,
    local_rotary: Rotary,
    config: ModernBertConfig,
}

impl ModernBertEncoder {
    /// `vb` points at the encoder (the `model.` prefix applied). With `Precision::Int8` the
    /// layers' linear maps are quantized as the BERT encoder's (`encoder.rs`): smoothed by
    /// the typical magnitude of their input, the second half's MLP output kept in f32.
    pub fn load(vb: &VarBuilder, c: &ModernBertConfig, precision: Precision) -> Result<Self> {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let norm = |vb: &VarBuilder| Norm::load_with_bias(vb, h, c.norm_bias);
        let int8 = precision == Precision::Int8;
        let embeddings_norm = norm(&vb.pp(names::EMBEDDINGS_NORM))?;
        let n = c.windows.len();
        let layers = (0..n)
            .map(|index| {
                let vb = vb.pp(names::layer(index));
                let attn_norm = (index > 0)
                    .then(|| norm(&vb.pp(names::ATTENTION_NORM)))
                    .transpose()?;
                // Layer 0 reads the embeddings' norm directly.
                let input_norm = attn_norm.as_ref().unwrap_or(&embeddings_norm);
                let qkv = Dense::load_with_bias(&vb.pp(names::QKV), h, 3 * h, c.attention_bias)?;
                let mlp_norm = norm(&vb.pp(names::MLP_NORM))?;
                let mlp_in = Dense::load_with_bias(&vb.pp(names::MLP_INPUT), h, 2 * i, c.mlp_bias)?;
                let mlp_out_format = ffn_output_format(precision);
                // The context is a weighted mean of the values; the MLP output reads
                // act(input) * gate, both projections of the MLP norm's output.
                let values: Vec<f32> = if int8 {
                    qkv.output_stats(2 * h..3 * h, input_norm)
                        .into_iter()
                        .map(|(mean, spread)| mean.abs() + spread)
                        .collect()
                } else {
                    Vec::new()
                };
                let glu: Vec<f32> = if mlp_out_format != WeightFormat::Float32 {
                    let act = mlp_in.output_stats(0..i, &mlp_norm);
                    let gate = mlp_in.output_stats(i..2 * i, &mlp_norm);
                    act.iter()
                        .zip(&gate)
                        .map(|((am, asp), (gm, gsp))| (am + asp).max(GELU_FLOOR) * (gm.abs() + gsp))
                        .collect()
                } else {
                    Vec::new()
                };
                Ok(Layer {
                    qkv: qkv.with_precision(precision, &normalized(input_norm)),
                    attn_out: Dense::load_with_bias(
                        &vb.pp(names::ATTENTION_OUTPUT),
                        h,
                        h,
                        c.attention_bias,
                    )?
                    .with_precision(precision, &values),
                    mlp_in: mlp_in.with_precision(precision, &normalized(&mlp_norm)),
                    mlp_out: Dense::load_with_bias(&vb.pp(names::MLP_OUTPUT), i, h, c.mlp_bias)?
                        .with_weight_format(mlp_out_format, &glu),
                    attn_norm,
                    mlp_norm,
                    window: c.windows[index],
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embeddings: vb
                .pp(names::EMBEDDINGS)
                .get((c.vocab_size, h), "weight")?
                .flatten_all()?
                .to_vec1()?,
            embeddings_norm,
            layers,
            final_norm: norm(&vb.pp(names::FINAL_NORM))?,
            global_rotary: Rotary::new(c, c.global_rope_theta),
            local_rotary: Rotary::new(c, c.local_rope_theta),
            config: c.clone(),
        })
    }

    /// Every token's last hidden state, (tokens, hidden).
    pub fn forward(&self, p: &Packed) -> Result<Vec<f32>> {
        let c = &self.config;
        let (h, inter, eps) = (c.hidden_size, c.intermediate_size, c.norm_eps as f32);
        let rows = p.ids.len();
        let mut x = vec![0f32; rows * h];
        for (t, row) in x.chunks_exact_mut(h).enumerate() {
            let (id, pos) = (p.ids[t] as usize, p.positions[t] as usize);
            if id >= c.vocab_size || pos >= c.max_position_embeddings {
                return Err(Error::invalid(format!(
                    "token {t}: id {id} / position {pos} outside the model's tables ({} / {}); \
                     does the tokenizer belong to this model?",
                    c.vocab_size, c.max_position_embeddings
                )));
            }
            row.copy_from_slice(&self.embeddings[id * h..][..h]);
        }
        let layer_norm =
            |xs: &mut [f32], n: &Norm| kernels::layer_norm(xs, &n.weight, &n.bias, eps);
        layer_norm(&mut x, &self.embeddings_norm);
        // Buffers reused by every layer: allocating them per layer costs page faults on
        // every large batch.
        let mut normed = vec![0f32; rows * h];
        let mut qkv = vec![0f32; rows * 3 * h];
        let mut context = Vec::new();
        let mut out = vec![0f32; rows * h];
        let mut inner = vec![0f32; rows * 2 * inter];
        let mut glu = vec![0f32; rows * inter];
        let mut scratch = QuantizedRows::default();
        for layer in &self.layers {
            normed.copy_from_slice(&x);
            if let Some(n) = &layer.attn_norm {
                layer_norm(&mut normed, n);
            }
            layer
                .qkv
                .forward_into(&normed, rows, &mut qkv, &mut scratch);
            let rotary = match layer.window {
                Some(_) => &self.local_rotary,
                None => &self.global_rotary,
            };
            rotary.apply(&mut qkv, &p.positions, h);
            self.attention(&qkv, p, layer.window, &mut context);
            layer
                .attn_out
                .forward_into(&context, rows, &mut out, &mut scratch);
            x.iter_mut().zip(&out).for_each(|(a, b)| *a += b);
            normed.copy_from_slice(&x);
            layer_norm(&mut normed, &layer.mlp_norm);
            layer
                .mlp_in
                .forward_into(&normed, rows, &mut inner, &mut scratch);
            // GeGLU: act(input) * gate, the two halves of each row.
            glu.par_chunks_exact_mut(inter)
                .zip(inner.par_chunks_exact(2 * inter))
                .for_each(|(g, row)| {
                    g.copy_from_slice(&row[..inter]);
                    activate(g, c.hidden_activation);
                    g.iter_mut()
                        .zip(&row[inter..])
                        .for_each(|(o, gate)| *o *= gate);
                });
            layer
                .mlp_out
                .forward_into(&glu, rows, &mut out, &mut scratch);
            x.iter_mut().zip(&out).for_each(|(a, b)| *a += b);
        }
        layer_norm(&mut x, &self.final_norm);
        Ok(x)
    }

    /// Self-attention context, (tokens, hidden), per (sequence, head); with a window `w`
    /// a token sees the keys at most `w` positions away, and only those are computed.
    fn attention(&self, qkv: &[f32], p: &Packed, window: Option<usize>, context: &mut Vec<f32>) {
        let c = &self.config;
        let (h, heads, d) = (c.hidden_size, c.num_attention_heads, c.head_dim());
        let scale = 1.0 / (d as f32).sqrt();
        let all = Mat {
            data: qkv,
            rows: p.ids.len(),
            cols: 3 * h,
            row_stride: 3 * h,
        };
        let tasks: Vec<(usize, usize)> = (0..p.num_sequences())
            .flat_map(|s| (0..heads).map(move |hd| (s, hd)))
            .collect();
        let results: Vec<Vec<f32>> = tasks
            .par_iter()
            .map(|&(s, hd)| {
                let (off, len) = (p.offsets[s], p.len(s));
                let block = if window.is_some() {
                    QUERY_BLOCK
                } else {
                    len.max(1)
                };
                let mut out = vec![0f32; len * d];
                let (mut scores, mut sums) = (Vec::new(), Vec::new());
                for qa in (0..len).step_by(block) {
                    let qb = (qa + block).min(len);
                    let (ka, kb) = match window {
                        Some(w) => (qa.saturating_sub(w), (qb + w).min(len)),
                        None => (0, len),
                    };
                    let (rows, keys) = (qb - qa, kb - ka);
                    scores.resize(rows * keys, 0.0);
                    sums.resize(rows, 0.0);
                    matmul(
                        MatMut::new(&mut scores, rows, keys),
                        all.block(off + qa, rows, hd * d, d),
                        all.block(off + ka, keys, h + hd * d, d),
                        B::Transposed,
                        scale,
                        false,
                        1,
                    );
                    if let Some(w) = window {
                        for (r, row) in scores.chunks_exact_mut(keys).enumerate() {
                            let i = qa + r;
                            for (k, v) in row.iter_mut().enumerate() {
                                if (ka + k).abs_diff(i) > w {
                                    *v = f32::NEG_INFINITY;
                                }
                            }
                        }
                    }
                    kernels::exp_rows(&mut scores, keys, &mut sums);
                    let dst = &mut out[qa * d..qb * d];
                    matmul(
                        MatMut::new(dst, rows, d),
                        Mat::new(&scores, rows, keys),
                        all.block(off + ka, keys, 2 * h + hd * d, d),
                        B::AsIs,
                        1.0,
                        false,
                        1,
                    );
                    for (row, sum) in dst.chunks_exact_mut(d).zip(&sums) {
                        row.iter_mut().for_each(|v| *v /= sum);
                    }
                }
                out
            })
            .collect();
        context.resize(p.ids.len() * h, 0.0);
        for (&(s, hd), out) in tasks.iter().zip(&results) {
            for (r, src) in out.chunks_exact(d).enumerate() {
                let dst = (p.offsets[s] + r) * h + hd * d;
                context[dst..dst + d].copy_from_slice(src);
            }
        }
    }
}

/// ModernBERT's input layout: no token types, positions from 0 in each sequence.
const SCHEME: InputScheme = InputScheme {
    roberta_padding_idx: None,
    token_types: false,
};

/// Each sequence's first token (`Cls`) or the mean of its tokens (`Mean`), (sequences, h).
fn pooled(hidden: &[f32], p: &Packed, h: usize, pooling: ClassifierPooling) -> Vec<f32> {
    let mut out = vec![0f32; p.num_sequences() * h];
    for (s, row) in out.chunks_exact_mut(h).enumerate() {
        let tokens = &hidden[p.offsets[s] * h..p.offsets[s + 1] * h];
        match pooling {
            ClassifierPooling::Cls => row.copy_from_slice(&tokens[..h]),
            ClassifierPooling::Mean => {
                for t in tokens.chunks_exact(h) {
                    row.iter_mut().zip(t).for_each(|(r, v)| *r += v);
                }
                let n = p.len(s).max(1) as f32;
                row.iter_mut().for_each(|r| *r /= n);
            }
        }
    }
    out
}

/// `ModernBertForSequenceClassification` on the CPU engine.
pub(crate) struct Classifier {
    encoder: ModernBertEncoder,
    dense: Dense,
    head_norm: Norm,
    classifier: Dense,
}

impl Classifier {
    pub fn load(
        ckpt: &Checkpoint,
        config: &ModernBertConfig,
        num_labels: usize,
        precision: Precision,
    ) -> Result<Self> {
        let h = config.hidden_size;
        Ok(Self {
            encoder: ModernBertEncoder::load(&ckpt.encoder_vb(), config, precision)?,
            dense: Dense::load_with_bias(
                &ckpt.vb.pp(names::HEAD_DENSE),
                h,
                h,
                config.classifier_bias,
            )?,
            head_norm: Norm::load_with_bias(&ckpt.vb.pp(names::HEAD_NORM), h, config.norm_bias)?,
            classifier: Dense::load(&ckpt.vb.pp(names::CLASSIFIER), h, num_labels)?,
        })
    }
}

impl Engine for Classifier {
    fn predict(&self, batch: &[&Encoding]) -> Result<Vec<f32>> {
        let c = &self.encoder.config;
        let packed = Packed::new(batch, SCHEME);
        let hidden = self.encoder.forward(&packed)?;
        let rows = packed.num_sequences();
        let mut x = self.dense.forward(
            &pooled(&hidden, &packed, c.hidden_size, c.classifier_pooling),
            rows,
        );
        activate(&mut x, c.classifier_activation);
        kernels::layer_norm(
            &mut x,
            &self.head_norm.weight,
            &self.head_norm.bias,
            c.norm_eps as f32,
        );
        Ok(self.classifier.forward(&x, rows))
    }
}

/// A ModernBERT encoder whose token states are pooled: the bi-encoder's model.
pub(crate) struct Embedder {
    encoder: ModernBertEncoder,
}

impl Embedder {
    pub fn load(
        ckpt: &Checkpoint,
        config: &ModernBertConfig,
        precision: Precision,
    ) -> Result<Self> {
        Ok(Self {
            encoder: ModernBertEncoder::load(&ckpt.encoder_vb(), config, precision)?,
        })
    }
}

impl Engine for Embedder {
    fn embed(&self, batch: &[&Encoding], pooling: Pooling) -> Result<Vec<f32>> {
        let packed = Packed::new(batch, SCHEME);
        let hidden = self.encoder.forward(&packed)?;
        let h = self.encoder.config.hidden_size;
        if pooling == Pooling::Cls {
            return Ok(pooled(&hidden, &packed, h, ClassifierPooling::Cls));
        }
        Ok(super::pool(&hidden, &packed, h, pooling))
    }
}
