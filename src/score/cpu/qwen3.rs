//! A Qwen3 decoder reranker on the CPU engine: the score of a prompt is read from the
//! language-model head at its last token (`logit(yes) - logit(no)`, one dot product with
//! the head's "yes" row minus its "no" row), so only that token goes through the last
//! layer's MLP and the head.
//!
//! Attention is causal, so a token's keys and values depend only on the tokens before it.
//! The prompts of one query's candidates begin alike (system prompt, instruction,
//! query): that beginning is run once, its keys and values kept per layer
//! ([`Prefix`], the last few cached across calls), and each candidate runs only its own
//! tokens against them. Exact by construction; which beginning is shared comes from the
//! prompt's type ids (`score::prompt`), and sharing is decided by token ids.
//!
//! `CROSSRANK_PREFIX_CACHE=0` (read at load) turns the sharing off, for benchmarks that
//! measure what it saves.
//!
//! Tested against candle's Qwen3 (`score::candle::qwen3`), the reference.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use tokenizers::Encoding;

use super::encoder::{ffn_output_format, normalized, Dense, Norm, WeightFormat, GELU_FLOOR};
use super::gemm::{matmul, Mat, MatMut, B};
use super::int8::QuantizedRows;
use super::kernels;
use crate::error::{Error, Result};
use crate::model::checkpoint::Checkpoint;
use crate::model::config::Qwen3Config;
use crate::model::names::qwen3 as names;
use crate::model::precision::Precision;
use crate::score::engine::Engine;
use crate::score::prompt::YesNoTokens;

/// Shared beginnings kept across calls: a `rank` call scores its candidates in several
/// batches, and a caller often re-ranks for the same query again.
const CACHED_PREFIXES: usize = 4;

struct Layer {
    input_norm: Vec<f32>,
    /// q, k and v projections side by side.
    qkv: Dense,
    query_norm: Vec<f32>,
    key_norm: Vec<f32>,
    attention_output: Dense,
    mlp_norm: Vec<f32>,
    /// gate and up projections side by side.
    gate_up: Dense,
    down: Dense,
}

/// The keys and values of a shared beginning, per layer: (tokens, kv heads * head dim).
struct Prefix {
    ids: Vec<u32>,
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
}

impl Prefix {
    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// What a forward pass returns: the final hidden state of each sequence's last token, and
/// with `keep_kv` each layer's keys and values of every token.
struct Forward {
    last: Vec<f32>,
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
}

pub(crate) struct Qwen3Scorer {
    embeddings: Vec<f32>,
    layers: Vec<Layer>,
    final_norm: Vec<f32>,
    /// The head's "yes" row minus its "no" row (or the "yes" row alone).
    score_row: Vec<f32>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    config: Qwen3Config,
    prefixes: Mutex<VecDeque<Arc<Prefix>>>,
    share_prefixes: bool,
}

impl Qwen3Scorer {
    /// With `Precision::Int8` the layers' linear maps are quantized as the encoders'
    /// (`encoder.rs`): smoothed by the typical magnitude of their input, the second half's
    /// MLP output kept in f32.
    pub fn load(
        ckpt: &Checkpoint,
        c: &Qwen3Config,
        tokens: YesNoTokens,
        precision: Precision,
    ) -> Result<Self> {
        let (h, d, inter) = (c.hidden_size, c.head_dim(), c.intermediate_size);
        let (q_dim, kv_dim) = (c.num_attention_heads * d, c.num_key_value_heads * d);
        let group = c.num_attention_heads / c.num_key_value_heads;
        let vb = ckpt.encoder_vb();
        let vector = |vb: &candle_nn::VarBuilder, n: usize| -> Result<Vec<f32>> {
            Ok(vb.get(n, "weight")?.to_vec1()?)
        };
        // An RMSNorm is a LayerNorm without centring or bias, as far as the smoothing's
        // magnitude estimates go.
        let rms_norm = |vb: &candle_nn::VarBuilder| -> Result<Norm> {
            Ok(Norm {
                weight: vector(vb, h)?,
                bias: vec![0.0; h],
            })
        };
        let n = c.num_hidden_layers;
        let layers = (0..n)
            .map(|i| {
                let vb = vb.pp(names::layer(i));
                let input_norm = rms_norm(&vb.pp(names::INPUT_NORM))?;
                let mlp_norm = rms_norm(&vb.pp(names::MLP_NORM))?;
                let qkv = Dense::load_stacked(
                    &vb,
                    &[
                        (names::QUERY, q_dim),
                        (names::KEY, kv_dim),
                        (names::VALUE, kv_dim),
                    ],
                    h,
                    c.attention_bias,
                )?;
                let gate_up = Dense::load_stacked(
                    &vb,
                    &[(names::GATE, inter), (names::UP, inter)],
                    h,
                    false,
                )?;
                let down_format = ffn_output_format(precision);
                // The attention output reads weighted means of the values (each query head
                // those of its key/value head); the MLP output reads SiLU(gate) * up.
                let context: Vec<f32> = if precision == Precision::Int8 {
                    let values = qkv.output_stats(q_dim + kv_dim..q_dim + 2 * kv_dim, &input_norm);
                    (0..q_dim)
                        .map(|ch| {
                            let (mean, spread) = values[(ch / d / group) * d + ch % d];
                            mean.abs() + spread
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let gated: Vec<f32> = if down_format != WeightFormat::Float32 {
                    let gate = gate_up.output_stats(0..inter, &mlp_norm);
                    let up = gate_up.output_stats(inter..2 * inter, &mlp_norm);
                    gate.iter()
                        .zip(&up)
                        .map(|((gm, gs), (um, us))| (gm + gs).max(GELU_FLOOR) * (um.abs() + us))
                        .collect()
                } else {
                    Vec::new()
                };
                Ok(Layer {
                    qkv: qkv.with_precision(precision, &normalized(&input_norm)),
                    query_norm: vector(&vb.pp(names::QUERY_NORM), d)?,
                    key_norm: vector(&vb.pp(names::KEY_NORM), d)?,
                    attention_output: Dense::load_with_bias(
                        &vb.pp(names::ATTENTION_OUTPUT),
                        q_dim,
                        h,
                        false,
                    )?
                    .with_precision(precision, &context),
                    gate_up: gate_up.with_precision(precision, &normalized(&mlp_norm)),
                    down: Dense::load_with_bias(&vb.pp(names::DOWN), inter, h, false)?
                        .with_weight_format(down_format, &gated),
                    input_norm: input_norm.weight,
                    mlp_norm: mlp_norm.weight,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let embeddings: Vec<f32> = vb
            .pp(names::EMBEDDINGS)
            .get((c.vocab_size, h), "weight")?
            .flatten_all()?
            .to_vec1()?;
        let head_row = |id: u32| -> Result<Vec<f32>> {
            if id as usize >= c.vocab_size {
                return Err(Error::invalid(format!(
                    "the score token id {id} is outside the vocabulary ({} tokens)",
                    c.vocab_size
                )));
            }
            if c.tie_word_embeddings {
                Ok(embeddings[id as usize * h..][..h].to_vec())
            } else {
                let head = ckpt
                    .vb
                    .pp(names::LM_HEAD)
                    .get((c.vocab_size, h), "weight")?;
                Ok(head.get(id as usize)?.to_vec1()?)
            }
        };
        let mut score_row = head_row(tokens.yes)?;
        if let Some(no) = tokens.no {
            score_row
                .iter_mut()
                .zip(head_row(no)?)
                .for_each(|(y, n)| *y -= n);
        }
        let angles = c.rotary_angles();
        Ok(Self {
            layers,
            final_norm: vector(&vb.pp(names::FINAL_NORM), h)?,
            score_row,
            cos: angles.iter().map(|a| a.cos()).collect(),
            sin: angles.iter().map(|a| a.sin()).collect(),
            embeddings,
            config: c.clone(),
            prefixes: Mutex::new(VecDeque::new()),
            share_prefixes: std::env::var("CROSSRANK_PREFIX_CACHE").map_or(true, |v| v != "0"),
        })
    }

    /// The keys and values of `ids`, from the cache or computed (and cached).
    fn prefix(&self, ids: &[u32]) -> Result<Arc<Prefix>> {
        let cached = |cache: &VecDeque<Arc<Prefix>>| cache.iter().find(|p| p.ids == ids).cloned();
        if let Some(p) = cached(&*self.prefixes.lock().map_err(|_| poisoned())?) {
            return Ok(p);
        }
        let run = self.forward(None, &[ids], true)?;
        let prefix = Arc::new(Prefix {
            ids: ids.to_vec(),
            keys: run.keys,
            values: run.values,
        });
        let mut cache = self.prefixes.lock().map_err(|_| poisoned())?;
        cache.push_front(prefix.clone());
        cache.truncate(CACHED_PREFIXES);
        Ok(prefix)
    }

    /// Runs `sequences`, each continuing `prefix` (positions after it), packed.
    fn forward(
        &self,
        prefix: Option<&Prefix>,
        sequences: &[&[u32]],
        keep_kv: bool,
    ) -> Result<Forward> {
        let c = &self.config;
        let (h, d, inter) = (c.hidden_size, c.head_dim(), c.intermediate_size);
        let (q_dim, kv_dim) = (c.num_attention_heads * d, c.num_key_value_heads * d);
        let eps = c.rms_norm_eps as f32;
        let past = prefix.map_or(0, Prefix::len);
        let mut offsets = vec![0usize];
        for s in sequences {
            offsets.push(offsets.last().copied().unwrap_or(0) + s.len());
        }
        let rows = offsets[sequences.len()];
        let positions: Vec<usize> = sequences
            .iter()
            .flat_map(|s| (0..s.len()).map(|j| past + j))
            .collect();
        if let Some(&last) = positions.iter().max() {
            if last >= c.max_position_embeddings {
                return Err(Error::invalid(format!(
                    "an input of {} tokens exceeds the model's {} positions",
                    last + 1,
                    c.max_position_embeddings
                )));
            }
        }
        let mut x = vec![0f32; rows * h];
        for (row, &id) in x
            .chunks_exact_mut(h)
            .zip(sequences.iter().copied().flatten())
        {
            if id as usize >= c.vocab_size {
                return Err(Error::invalid(format!(
                    "token id {id} is outside the model's vocabulary ({} tokens); does the \
                     tokenizer belong to this model?",
                    c.vocab_size
                )));
            }
            row.copy_from_slice(&self.embeddings[id as usize * h..][..h]);
        }
        let (mut keys, mut values) = (Vec::new(), Vec::new());
        let mut normed = vec![0f32; rows * h];
        let mut qkv = vec![0f32; rows * (q_dim + 2 * kv_dim)];
        let mut context = vec![0f32; rows * q_dim];
        let mut out = vec![0f32; rows * h];
        let mut inner = vec![0f32; rows * 2 * inter];
        let mut scratch = QuantizedRows::default();
        // The last tokens' rows, once only they remain (the last layer's MLP, the head).
        let last_rows: Vec<usize> = offsets[1..].iter().map(|&o| o - 1).collect();
        let mut live = rows;
        for (index, layer) in self.layers.iter().enumerate() {
            normed[..live * h].copy_from_slice(&x[..live * h]);
            kernels::rms_norm(&mut normed[..live * h], &layer.input_norm, eps);
            layer
                .qkv
                .forward_into(&normed, rows, &mut qkv, &mut scratch);
            self.normalize_and_rotate(&mut qkv, &positions, &layer.query_norm, &layer.key_norm);
            if keep_kv {
                let width = q_dim + 2 * kv_dim;
                let (mut k, mut v) = (
                    Vec::with_capacity(rows * kv_dim),
                    Vec::with_capacity(rows * kv_dim),
                );
                for row in qkv.chunks_exact(width) {
                    k.extend_from_slice(&row[q_dim..q_dim + kv_dim]);
                    v.extend_from_slice(&row[q_dim + kv_dim..]);
                }
                keys.push(k);
                values.push(v);
            }
            self.attention(&qkv, &offsets, prefix.map(|p| (p, index)), &mut context);
            if index + 1 == self.layers.len() && !keep_kv {
                // Only the last tokens matter from here on.
                gather_rows(&mut context, &last_rows, q_dim);
                gather_rows(&mut x, &last_rows, h);
                live = last_rows.len();
            }
            layer
                .attention_output
                .forward_into(&context, live, &mut out, &mut scratch);
            x[..live * h]
                .iter_mut()
                .zip(&out)
                .for_each(|(a, b)| *a += b);
            normed[..live * h].copy_from_slice(&x[..live * h]);
            kernels::rms_norm(&mut normed[..live * h], &layer.mlp_norm, eps);
            layer
                .gate_up
                .forward_into(&normed, live, &mut inner, &mut scratch);
            // SiLU(gate) * up, written over the gate half so `down` reads rows of `inter`.
            let gated = &mut inner[..live * 2 * inter];
            gated.par_chunks_exact_mut(2 * inter).for_each(|row| {
                let (gate, up) = row.split_at_mut(inter);
                kernels::silu(gate);
                gate.iter_mut().zip(up.iter()).for_each(|(g, u)| *g *= u);
            });
            for r in 0..live {
                gated.copy_within(r * 2 * inter..r * 2 * inter + inter, r * inter);
            }
            layer
                .down
                .forward_into(&inner, live, &mut out, &mut scratch);
            x[..live * h]
                .iter_mut()
                .zip(&out)
                .for_each(|(a, b)| *a += b);
        }
        if live == rows {
            gather_rows(&mut x, &last_rows, h);
        }
        let mut last = x[..last_rows.len() * h].to_vec();
        kernels::rms_norm(&mut last, &self.final_norm, eps);
        Ok(Forward { last, keys, values })
    }

    /// RMSNorm over each head of the queries and keys (Qwen3's q_norm / k_norm), then the
    /// rotary positions (transformers' `rotate_half`), in each fused q|k|v row.
    fn normalize_and_rotate(&self, qkv: &mut [f32], positions: &[usize], qn: &[f32], kn: &[f32]) {
        let c = &self.config;
        let d = c.head_dim();
        let half = d / 2;
        let (q_dim, kv_dim) = (c.num_attention_heads * d, c.num_key_value_heads * d);
        let eps = c.rms_norm_eps as f32;
        qkv.par_chunks_exact_mut(q_dim + 2 * kv_dim)
            .zip(positions)
            .for_each(|(row, &p)| {
                let (cos, sin) = (&self.cos[p * half..][..half], &self.sin[p * half..][..half]);
                let (q, rest) = row.split_at_mut(q_dim);
                let rotate = |head: &mut [f32], weight: &[f32]| {
                    let mean_square = head.iter().map(|v| v * v).sum::<f32>() / d as f32;
                    let inv_rms = 1.0 / (mean_square + eps).sqrt();
                    head.iter_mut()
                        .zip(weight)
                        .for_each(|(v, w)| *v *= inv_rms * w);
                    let (x1, x2) = head.split_at_mut(half);
                    for i in 0..half {
                        let (a, b) = (x1[i], x2[i]);
                        x1[i] = a * cos[i] - b * sin[i];
                        x2[i] = b * cos[i] + a * sin[i];
                    }
                };
                q.chunks_exact_mut(d).for_each(|head| rotate(head, qn));
                rest[..kv_dim]
                    .chunks_exact_mut(d)
                    .for_each(|head| rotate(head, kn));
            });
    }

    /// Causal grouped-query attention of each sequence's tokens over the prefix's keys
    /// (`past`: the prefix and this layer's index) and their own, into `context`.
    fn attention(
        &self,
        qkv: &[f32],
        offsets: &[usize],
        past: Option<(&Prefix, usize)>,
        context: &mut [f32],
    ) {
        let c = &self.config;
        let d = c.head_dim();
        let (heads, kv_heads) = (c.num_attention_heads, c.num_key_value_heads);
        let (q_dim, kv_dim) = (heads * d, kv_heads * d);
        let width = q_dim + 2 * kv_dim;
        let group = heads / kv_heads;
        let scale = 1.0 / (d as f32).sqrt();
        let rows = offsets[offsets.len() - 1];
        let all = Mat {
            data: qkv,
            rows,
            cols: width,
            row_stride: width,
        };
        let p = past.map_or(0, |(prefix, _)| prefix.len());
        let tasks: Vec<(usize, usize)> = (0..offsets.len() - 1)
            .flat_map(|s| (0..heads).map(move |hd| (s, hd)))
            .collect();
        let results: Vec<Vec<f32>> = tasks
            .par_iter()
            .map(|&(s, hd)| {
                let (off, len) = (offsets[s], offsets[s + 1] - offsets[s]);
                let kv = hd / group;
                let keys = p + len;
                let mut scores = vec![0f32; len * keys];
                let mut sums = vec![0f32; len];
                let queries = all.block(off, len, hd * d, d);
                if let Some((prefix, layer)) = past {
                    let past_keys = Mat::new(&prefix.keys[layer], p, kv_dim).block(0, p, kv * d, d);
                    matmul(
                        MatMut {
                            data: &mut scores,
                            rows: len,
                            cols: p,
                            row_stride: keys,
                        },
                        queries,
                        past_keys,
                        B::Transposed,
                        scale,
                        false,
                        1,
                    );
                }
                matmul(
                    MatMut {
                        data: &mut scores[p..],
                        rows: len,
                        cols: len,
                        row_stride: keys,
                    },
                    queries,
                    all.block(off, len, q_dim + kv * d, d),
                    B::Transposed,
                    scale,
                    false,
                    1,
                );
                for (i, row) in scores.chunks_exact_mut(keys).enumerate() {
                    row[p + i + 1..].fill(f32::NEG_INFINITY);
                }
                kernels::exp_rows(&mut scores, keys, &mut sums);
                let mut out = vec![0f32; len * d];
                if let Some((prefix, layer)) = past {
                    let past_values =
                        Mat::new(&prefix.values[layer], p, kv_dim).block(0, p, kv * d, d);
                    matmul(
                        MatMut::new(&mut out, len, d),
                        Mat {
                            data: &scores,
                            rows: len,
                            cols: p,
                            row_stride: keys,
                        },
                        past_values,
                        B::AsIs,
                        1.0,
                        false,
                        1,
                    );
                }
                matmul(
                    MatMut::new(&mut out, len, d),
                    Mat {
                        data: &scores[p..],
                        rows: len,
                        cols: len,
                        row_stride: keys,
                    },
                    all.block(off, len, q_dim + kv_dim + kv * d, d),
                    B::AsIs,
                    1.0,
                    past.is_some(),
                    1,
                );
                for (row, sum) in out.chunks_exact_mut(d).zip(&sums) {
                    row.iter_mut().for_each(|v| *v /= sum);
                }
                out
            })
            .collect();
        for (&(s, hd), out) in tasks.iter().zip(&results) {
            for (r, src) in out.chunks_exact(d).enumerate() {
                let dst = (offsets[s] + r) * q_dim + hd * d;
                context[dst..dst + d].copy_from_slice(src);
            }
        }
    }

    fn score(&self, hidden: &[f32]) -> f32 {
        hidden.iter().zip(&self.score_row).map(|(a, b)| a * b).sum()
    }
}

/// Moves rows `rows` (ascending) of `data` to its front, in order.
fn gather_rows(data: &mut [f32], rows: &[usize], width: usize) {
    for (to, &from) in rows.iter().enumerate() {
        data.copy_within(from * width..(from + 1) * width, to * width);
    }
}

fn poisoned() -> Error {
    Error::invalid("the prefix cache was poisoned by a panic in another thread")
}

impl Engine for Qwen3Scorer {
    /// One score per prompt. Prompts that share their beginning (type id 0 tokens, see
    /// `score::prompt`) run it once: grouped here, computed or found in the cache.
    fn predict(&self, batch: &[&Encoding]) -> Result<Vec<f32>> {
        let mut groups: Vec<(&[u32], Vec<usize>)> = Vec::new();
        let mut index: HashMap<&[u32], usize> = HashMap::new();
        for (i, encoding) in batch.iter().enumerate() {
            let ids = encoding.get_ids();
            if ids.is_empty() {
                return Err(Error::invalid(format!("input {i} has no tokens")));
            }
            // At least the last token is the sequence's own: its state gives the score.
            let shared = if self.share_prefixes {
                encoding
                    .get_type_ids()
                    .iter()
                    .take_while(|&&t| t == 0)
                    .count()
                    .min(ids.len() - 1)
            } else {
                0
            };
            let key = &ids[..shared];
            let g = *index.entry(key).or_insert_with(|| {
                groups.push((key, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(i);
        }
        let mut scores = vec![0f32; batch.len()];
        for (shared, members) in groups {
            let alone = members.len() == 1
                && !self
                    .prefixes
                    .lock()
                    .map_err(|_| poisoned())?
                    .iter()
                    .any(|p| p.ids == shared);
            let (prefix, cut) = if shared.is_empty() || alone {
                // Nothing to share: the whole prompt in one pass.
                (None, 0)
            } else {
                (Some(self.prefix(shared)?), shared.len())
            };
            let own: Vec<&[u32]> = members
                .iter()
                .map(|&i| &batch[i].get_ids()[cut..])
                .collect();
            let run = self.forward(prefix.as_deref(), &own, false)?;
            let h = self.config.hidden_size;
            for (&i, hidden) in members.iter().zip(run.last.chunks_exact(h)) {
                scores[i] = self.score(hidden);
            }
        }
        Ok(scores)
    }
}
