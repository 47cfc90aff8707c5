//! The BERT / XLM-R encoder forward pass on the CPU, over packed sequences.
//!
//! Why not candle's ops: on a CPU nothing needs rectangular batches, so sequences are
//! packed back to back (no padding tokens are ever computed), attention runs per
//! (sequence, head) on exactly that sequence's tokens (no mask), Q/K/V are one GEMM,
//! buffers are reused across layers, and the last layer computes only the rows a
//! caller needs (the first token, for cross-encoders). Weights come from the same
//! `VarBuilder` as candle's model in `score::candle::bert`, which stays the reference.
//!
//! # `precision="int8"`: what is quantized
//!
//! Errors compound with depth: with every linear layer in int8, per-query Spearman of
//! int8 vs float32 scores is >= 0.997 on a 6-layer MiniLM cross-encoder but only 0.985
//! (min over 10 Cranfield queries, BM25 top-100, max_length 512) on a 12-layer one.
//! Measured with `examples/int8_accuracy.rs` (12-layer, 3 queries, min Spearman):
//!
//! - everything int8: 0.985. Weights fake-quantized, activations f32: 0.986, so the
//!   weights' rounding, not the activations' (per token, outliers corrected), dominates.
//! - one layer type in f32 (share of the linear multiply-adds): FFN output (33%) 0.996,
//!   attention output (8%) 0.987, QKV (25%) 0.987, FFN input (33%) 0.986.
//! - smoothing, everything int8: alpha 0 0.990, 0.25 0.995, 0.5 0.994.
//! - smoothing 0.25 and the FFN output of the second half of the layers in f32
//!   (17%): 0.996 on 3 queries; on all 10: min 0.9941, median 0.9962 (first half
//!   instead: 0.9942 / 0.9968). 6-layer, 10 queries: 0.9989 / 0.9991.
//! - smoothing 0.25 and the FFN output of every layer in f32 (33%): 10 queries, min
//!   0.9953, median 0.9976. Or in two int8 terms (`QuantizedMatrix::quantize_two_term`,
//!   the rounding residual quantized again: ~14-bit weights at twice the int8 work):
//!   0.9959 / 0.9971, 6-layer 0.9986 / 0.9989 (session 15, Zen 5).
//!
//! So: every int8 layer is smoothed (SmoothQuant, with magnitudes estimated from the
//! weights and LayerNorm parameters since there is no calibration data): input channel
//! `k` is divided by `s[k]` and weight column `k` multiplied by it, which equalizes the
//! columns a per-output-channel weight scale has to cover. And the FFN output
//! projections, where the weights' rounding hurts most, get more than int8 weights
//! (`ffn_output_format`): two int8 terms with the VNNI and dotprod kernels, which do
//! more than twice f32's multiply-adds per second (on Zen 5 the 12-layer int8 model ran
//! as fast as with the f32 FFN outputs of the second half, 1.33x float32), f32 with
//! the AVX2 kernel, which does not (1.43x f32 in its GEMM). Both reach 0.995; int8
//! scores therefore differ between AVX2 hosts and the others, by about int8's own error.

use std::sync::Mutex;

use candle_nn::VarBuilder;
use rayon::prelude::*;
use tokenizers::Encoding;

use super::gemm::{matmul, Mat, MatMut, B};
use super::int8::{self, QuantizedMatrix, QuantizedRows};
use super::isa::Int8Kernel;
use super::kernels;
use crate::error::{Error, Result};
use crate::model::checkpoint::InputScheme;
use crate::model::config::{Config, HiddenAct};
use crate::model::names::{self, Layout};
use crate::model::precision::Precision;

/// `y = x @ weight^T + bias` with PyTorch's (out, in) weight layout.
pub struct Dense {
    weight: Weight,
    bias: Vec<f32>,
    pub in_dim: usize,
    pub out_dim: usize,
    /// Int8 only: per input channel, what the input is multiplied by before it is
    /// quantized (`1 / s`, the weights' columns having been multiplied by `s`).
    smoothing: Option<Vec<f32>>,
}

enum Weight {
    F32(Vec<f32>),
    Int8(QuantizedMatrix),
    /// `QuantizedMatrix::quantize_two_term`, with a zero bias of its width.
    Int8TwoTerm(QuantizedMatrix, Vec<f32>),
}

/// How a linear layer stores its weights (`Weight` before quantization).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum WeightFormat {
    Float32,
    /// One int8 code per weight.
    Int8,
    /// Two int8 terms per weight (`quantize_two_term`): near-f32 weights, int8 speed / 2.
    Int8TwoTerm,
}

impl Dense {
    pub fn load(vb: &VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        Self::load_with_bias(vb, in_dim, out_dim, true)
    }

    /// A layer whose bias may be absent from the checkpoint (then zero).
    pub fn load_with_bias(
        vb: &VarBuilder,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> Result<Self> {
        Ok(Self {
            weight: Weight::F32(
                vb.get((out_dim, in_dim), "weight")?
                    .flatten_all()?
                    .to_vec1()?,
            ),
            bias: if bias {
                vb.get(out_dim, "bias")?.to_vec1()?
            } else {
                vec![0.0; out_dim]
            },
            in_dim,
            out_dim,
            smoothing: None,
        })
    }

    /// Loads `parts` (name, output size; same input size) as one layer whose outputs are
    /// theirs side by side: one GEMM instead of several.
    pub fn load_stacked(
        vb: &VarBuilder,
        parts: &[(&str, usize)],
        in_dim: usize,
        bias: bool,
    ) -> Result<Self> {
        let out_dim: usize = parts.iter().map(|(_, out)| out).sum();
        let mut weight = Vec::with_capacity(out_dim * in_dim);
        let mut biases = Vec::with_capacity(out_dim);
        for &(part, out) in parts {
            let d = Self::load_with_bias(&vb.pp(part), in_dim, out, bias)?;
            weight.extend_from_slice(d.f32_weight());
            biases.extend(d.bias);
        }
        Ok(Self {
            weight: Weight::F32(weight),
            bias: biases,
            in_dim,
            out_dim,
            smoothing: None,
        })
    }

    /// Quantizes the weights for `Precision::Int8`, unless the CPU has no fast int8
    /// kernel: then `int8::enabled` warns once and the layer stays f32. `input`: the
    /// typical magnitude of each input channel, for the smoothing (see the module doc).
    pub(crate) fn with_precision(self, precision: Precision, input: &[f32]) -> Self {
        let format = match precision {
            Precision::Int8 => WeightFormat::Int8,
            Precision::Float32 => WeightFormat::Float32,
        };
        self.with_weight_format(format, input)
    }

    /// As `with_precision`, in `format`.
    pub(crate) fn with_weight_format(self, format: WeightFormat, input: &[f32]) -> Self {
        match (format, self.weight) {
            (WeightFormat::Int8 | WeightFormat::Int8TwoTerm, Weight::F32(mut w))
                if int8::enabled() =>
            {
                let multipliers = smooth(&mut w, self.in_dim, input);
                let (out_dim, in_dim) = (self.out_dim, self.in_dim);
                let weight = if format == WeightFormat::Int8TwoTerm {
                    Weight::Int8TwoTerm(
                        QuantizedMatrix::quantize_two_term(&w, out_dim, in_dim),
                        vec![0.0; 2 * out_dim],
                    )
                } else {
                    Weight::Int8(QuantizedMatrix::quantize(&w, out_dim, in_dim))
                };
                Self {
                    weight,
                    smoothing: Some(multipliers),
                    ..self
                }
            }
            (_, weight) => Self { weight, ..self },
        }
    }

    /// Of outputs `outputs` of this layer reading `norm`'s output: each one's mean and
    /// spread (see [`projected`]), for the int8 smoothing of the layer after it.
    pub(crate) fn output_stats(
        &self,
        outputs: std::ops::Range<usize>,
        norm: &Norm,
    ) -> Vec<(f32, f32)> {
        let weight = &self.f32_weight()[outputs.start * self.in_dim..outputs.end * self.in_dim];
        projected(weight, &self.bias[outputs], norm)
    }

    /// The f32 weights, (out, in) row-major (before any quantization).
    fn f32_weight(&self) -> &[f32] {
        match &self.weight {
            Weight::F32(w) => w,
            Weight::Int8(_) | Weight::Int8TwoTerm(..) => {
                unreachable!("read before with_precision")
            }
        }
    }

    /// Writes `rows` outputs into `out` (rows x out_dim). `scratch` holds the quantized
    /// input of an int8 layer (unused in f32).
    pub fn forward_into(
        &self,
        x: &[f32],
        rows: usize,
        out: &mut [f32],
        scratch: &mut QuantizedRows,
    ) {
        let threads = if rows * self.out_dim >= 1 << 14 {
            rayon::current_num_threads()
        } else {
            1
        };
        let out = &mut out[..rows * self.out_dim];
        match &self.weight {
            Weight::F32(weight) => {
                matmul(
                    MatMut::new(out, rows, self.out_dim),
                    Mat::new(&x[..rows * self.in_dim], rows, self.in_dim),
                    Mat::new(weight, self.out_dim, self.in_dim),
                    B::Transposed,
                    1.0,
                    false,
                    threads,
                );
                kernels::add_bias(out, &self.bias);
            }
            Weight::Int8(weight) => {
                self.quantize_input(x, rows, scratch);
                int8::matmul(out, scratch, weight, &self.bias, threads);
            }
            Weight::Int8TwoTerm(weight, zeros) => {
                self.quantize_input(x, rows, scratch);
                let mut wide = std::mem::take(&mut scratch.wide);
                wide.resize(rows * 2 * self.out_dim, 0.0);
                int8::matmul(&mut wide, scratch, weight, zeros, threads);
                int8::sum_terms(out, &wide, rows, &self.bias);
                scratch.wide = wide;
            }
        }
    }

    fn quantize_input(&self, x: &[f32], rows: usize, scratch: &mut QuantizedRows) {
        match &self.smoothing {
            Some(m) => scratch.quantize_scaled(x, rows, self.in_dim, m),
            None => scratch.quantize(x, rows, self.in_dim),
        }
    }

    pub fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut out = vec![0.0; rows * self.out_dim];
        self.forward_into(x, rows, &mut out, &mut QuantizedRows::default());
        out
    }
}

/// Smoothing strength: 0 equalizes the weights' columns only, 1 the activations' only.
const ALPHA: f32 = 0.25;
/// Spread of a normalized activation counted as its typical extreme, in standard
/// deviations.
const SIGMAS: f32 = 3.0;
/// Least input magnitude credited to a GELU output (a channel whose input is mostly
/// negative still carries small values).
pub(crate) const GELU_FLOOR: f32 = 0.2;

/// Multiplies column `k` of `weight` ((out, in) row-major) by
/// `s[k] = input[k]^ALPHA / max_j |weight[j, k]|^(1 - ALPHA)`, scaled so the `s` have
/// geometric mean 1, and returns `1 / s`: what the input is multiplied by, so the
/// product is unchanged in exact arithmetic.
fn smooth(weight: &mut [f32], in_dim: usize, input: &[f32]) -> Vec<f32> {
    assert_eq!(input.len(), in_dim, "input magnitudes");
    let mut column_max = vec![0f32; in_dim];
    for row in weight.chunks_exact(in_dim) {
        for (m, v) in column_max.iter_mut().zip(row) {
            *m = m.max(v.abs());
        }
    }
    let s: Vec<f32> = input
        .iter()
        .zip(&column_max)
        .map(|(a, w)| a.max(1e-5).powf(ALPHA) / w.max(1e-5).powf(1.0 - ALPHA))
        .collect();
    let mean = (s.iter().map(|v| v.ln()).sum::<f32>() / in_dim as f32).exp();
    let s: Vec<f32> = s.iter().map(|v| v / mean).collect();
    for row in weight.chunks_exact_mut(in_dim) {
        row.iter_mut().zip(&s).for_each(|(v, s)| *v *= s);
    }
    s.iter().map(|v| 1.0 / v).collect()
}

/// Typical magnitude of each channel of a LayerNorm's output: `gamma * z + beta` with
/// z about unit.
pub(crate) fn normalized(norm: &Norm) -> Vec<f32> {
    norm.weight
        .iter()
        .zip(&norm.bias)
        .map(|(g, b)| SIGMAS * g.abs() + b.abs())
        .collect()
}

/// Of each output of a linear layer (weight (out, in), `bias`) reading `norm`'s output:
/// its mean (`z` = 0) and `SIGMAS` standard deviations (z's channels independent, unit).
fn projected(weight: &[f32], bias: &[f32], norm: &Norm) -> Vec<(f32, f32)> {
    let h = norm.weight.len();
    weight
        .chunks_exact(h)
        .zip(bias)
        .map(|(row, b)| {
            let sd = row
                .iter()
                .zip(&norm.weight)
                .map(|(a, g)| (a * g) * (a * g))
                .sum::<f32>()
                .sqrt();
            let mean = b + row.iter().zip(&norm.bias).map(|(a, b)| a * b).sum::<f32>();
            (mean, SIGMAS * sd)
        })
        .collect()
}

/// The weight format of an FFN output projection (the layers most sensitive to int8,
/// see the module doc) at `precision`: under int8 in two int8 terms where that is
/// faster than f32 (`Int8Kernel::two_terms_pay`), else in f32.
pub(crate) fn ffn_output_format(precision: Precision) -> WeightFormat {
    if precision == Precision::Int8 && Int8Kernel::detect().two_terms_pay() {
        WeightFormat::Int8TwoTerm
    } else {
        WeightFormat::Float32
    }
}

pub(crate) struct Norm {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Norm {
    fn load(vb: &VarBuilder, size: usize) -> Result<Self> {
        Self::load_with_bias(vb, size, true)
    }

    /// A LayerNorm whose bias may be absent from the checkpoint (then zero).
    pub fn load_with_bias(vb: &VarBuilder, size: usize, bias: bool) -> Result<Self> {
        Ok(Self {
            weight: vb.get(size, "weight")?.to_vec1()?,
            bias: if bias {
                vb.get(size, "bias")?.to_vec1()?
            } else {
                vec![0.0; size]
            },
        })
    }
}

struct Layer {
    qkv: Dense,
    attention_out: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
}

impl Layer {
    /// `input_norm`: the LayerNorm whose output the layer reads (the previous layer's
    /// output norm, or the embeddings').
    fn load(
        vb: &VarBuilder,
        c: &Config,
        layout: &Layout,
        precision: Precision,
        input_norm: &Norm,
    ) -> Result<Self> {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let qkv = Dense::load_stacked(
            vb,
            &[(layout.query, h), (layout.key, h), (layout.value, h)],
            h,
            true,
        )?;
        let attention_out = Dense::load(&vb.pp(layout.attention_output), h, h)?;
        let attention_norm = Norm::load(&vb.pp(layout.attention_norm), h)?;
        let intermediate = Dense::load(&vb.pp(layout.intermediate), h, i)?;
        let output = Dense::load(&vb.pp(layout.output), i, h)?;
        let output_format = ffn_output_format(precision);
        // Input magnitudes for the int8 smoothing (see the module doc), estimated only
        // for the layers that run in int8. The context is a weighted mean of values (rows
        // 2h..3h of the fused projection); the FFN output reads GELU of the FFN input
        // projection, whose positive side is what reaches it.
        let values: Vec<f32> = if precision == Precision::Int8 {
            qkv.output_stats(2 * h..3 * h, input_norm)
                .into_iter()
                .map(|(mean, spread)| mean.abs() + spread)
                .collect()
        } else {
            Vec::new()
        };
        let gelu: Vec<f32> = if output_format != WeightFormat::Float32 {
            intermediate
                .output_stats(0..i, &attention_norm)
                .into_iter()
                .map(|(mean, spread)| (mean + spread).max(GELU_FLOOR))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Self {
            qkv: qkv.with_precision(precision, &normalized(input_norm)),
            attention_out: attention_out.with_precision(precision, &values),
            intermediate: intermediate.with_precision(precision, &normalized(&attention_norm)),
            attention_norm,
            output: output.with_weight_format(output_format, &gelu),
            output_norm: Norm::load(&vb.pp(layout.output_norm), h)?,
        })
    }
}

/// Sequences packed back to back: sequence `s` is tokens `offsets[s]..offsets[s + 1]`.
pub struct Packed {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    pub positions: Vec<u32>,
    pub offsets: Vec<usize>,
}

impl Packed {
    pub fn new(encodings: &[&Encoding], scheme: InputScheme) -> Self {
        let total: usize = encodings.iter().map(|e| e.len()).sum();
        let mut packed = Packed {
            ids: Vec::with_capacity(total),
            type_ids: Vec::with_capacity(total),
            positions: Vec::with_capacity(total),
            offsets: vec![0],
        };
        for enc in encodings {
            packed.ids.extend_from_slice(enc.get_ids());
            if scheme.token_types {
                packed.type_ids.extend_from_slice(enc.get_type_ids());
            } else {
                packed.type_ids.extend(std::iter::repeat_n(0, enc.len()));
            }
            packed.positions.extend(scheme.positions(enc.get_ids()));
            packed.offsets.push(packed.ids.len());
        }
        packed
    }

    pub fn num_sequences(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn len(&self, s: usize) -> usize {
        self.offsets[s + 1] - self.offsets[s]
    }
}

/// Which rows the last layer must produce.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Every token: (total tokens, hidden).
    AllTokens,
    /// The first token of each sequence: (sequences, hidden).
    FirstToken,
}

pub struct Encoder {
    /// Embedding tables of width `embedding_width` (the hidden size but for ELECTRA).
    word: Vec<f32>,
    position: Vec<f32>,
    /// `None`: the model has no token types (DistilBERT).
    token_type: Option<Vec<f32>>,
    embedding_norm: Norm,
    /// ELECTRA: embedding width -> hidden size, when they differ.
    project: Option<Dense>,
    embedding_width: usize,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    eps: f32,
    act: HiddenAct,
    vocab_size: usize,
    max_positions: usize,
    type_vocab_size: usize,
    workspaces: Mutex<Vec<Workspace>>,
}

impl Encoder {
    /// `vb` points at the encoder (prefix applied), as for `score::candle::bert::BertModel`;
    /// `layout` says where its layers' weights live. `precision` applies to the layers'
    /// linear projections; embeddings, LayerNorm and attention stay f32.
    pub fn load(
        vb: &VarBuilder,
        c: &Config,
        layout: &Layout,
        precision: Precision,
    ) -> Result<Self> {
        c.validate()?;
        let e = c.embedding_width();
        let emb = vb.pp(names::EMBEDDINGS);
        let table = |name: &str, rows: usize| -> Result<Vec<f32>> {
            Ok(emb
                .pp(name)
                .get((rows, e), "weight")?
                .flatten_all()?
                .to_vec1()?)
        };
        let embedding_norm = Norm::load(&emb.pp(names::LAYER_NORM), e)?;
        let project = (e != c.hidden_size)
            .then(|| Dense::load(&vb.pp(names::EMBEDDINGS_PROJECT), e, c.hidden_size))
            .transpose()?;
        // What the first layer reads: the embeddings' LayerNorm output, or its projection,
        // whose channels are described the same way (mean, spread) for the int8 smoothing.
        let projected_norm = project.as_ref().map(|p| {
            let (bias, weight) = projected(p.f32_weight(), &p.bias, &embedding_norm)
                .into_iter()
                .map(|(mean, spread)| (mean, spread / SIGMAS))
                .unzip();
            Norm { weight, bias }
        });
        let n = c.num_hidden_layers;
        let mut layers: Vec<Layer> = Vec::with_capacity(n);
        for i in 0..n {
            let input_norm = layers
                .last()
                .map(|l| &l.output_norm)
                .or(projected_norm.as_ref())
                .unwrap_or(&embedding_norm);
            let layer = Layer::load(&vb.pp(layout.layer(i)), c, layout, precision, input_norm)?;
            layers.push(layer);
        }
        Ok(Self {
            word: table(names::WORD_EMBEDDINGS, c.vocab_size)?,
            position: table(names::POSITION_EMBEDDINGS, c.max_position_embeddings)?,
            token_type: layout
                .token_type_embeddings
                .map(|name| table(name, c.type_vocab_size))
                .transpose()?,
            embedding_norm,
            project,
            embedding_width: e,
            layers,
            hidden: c.hidden_size,
            heads: c.num_attention_heads,
            eps: c.layer_norm_eps as f32,
            act: c.hidden_act,
            vocab_size: c.vocab_size,
            max_positions: c.max_position_embeddings,
            type_vocab_size: c.type_vocab_size,
            workspaces: Mutex::new(Vec::new()),
        })
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    fn embed(&self, p: &Packed, x: &mut Vec<f32>) -> Result<()> {
        let e = self.embedding_width;
        x.resize(p.ids.len() * e, 0.0);
        let types = self.token_type.as_ref().map_or(1, |_| self.type_vocab_size);
        for (t, row) in x.chunks_exact_mut(e).enumerate() {
            let (id, ty, pos) = (
                p.ids[t] as usize,
                p.type_ids[t] as usize,
                p.positions[t] as usize,
            );
            if id >= self.vocab_size || ty >= types || pos >= self.max_positions {
                return Err(Error::invalid(format!(
                    "token {t}: id {id} / type {ty} / position {pos} outside the model's tables \
                     ({} / {types} / {}); does the tokenizer belong to this model?",
                    self.vocab_size, self.max_positions
                )));
            }
            let (w, ps) = (&self.word[id * e..][..e], &self.position[pos * e..][..e]);
            for j in 0..e {
                row[j] = w[j] + ps[j];
            }
            if let Some(token_type) = &self.token_type {
                let tt = &token_type[ty * e..][..e];
                row.iter_mut().zip(tt).for_each(|(r, v)| *r += v);
            }
        }
        kernels::layer_norm(
            x,
            &self.embedding_norm.weight,
            &self.embedding_norm.bias,
            self.eps,
        );
        if let Some(project) = &self.project {
            *x = project.forward(x, p.ids.len());
        }
        Ok(())
    }

    /// Self-attention context for the query rows of each sequence (all, or the first).
    /// `qkv`: (tokens, 3 * hidden). Writes (query rows, hidden) into `context`.
    fn attention(&self, qkv: &[f32], p: &Packed, first_token_only: bool, context: &mut Vec<f32>) {
        let (h, heads) = (self.hidden, self.heads);
        let d = h / heads;
        let scale = 1.0 / (d as f32).sqrt();
        let all = Mat {
            data: qkv,
            rows: p.ids.len(),
            cols: 3 * h,
            row_stride: 3 * h,
        };
        let n_seq = p.num_sequences();
        let q_rows = |s: usize| if first_token_only { 1 } else { p.len(s) };
        let tasks: Vec<(usize, usize)> = (0..n_seq)
            .flat_map(|s| (0..heads).map(move |hd| (s, hd)))
            .collect();
        let results: Vec<Vec<f32>> = tasks
            .par_iter()
            .map_init(
                || (Vec::new(), Vec::new()),
                |(scores, sums): &mut (Vec<f32>, Vec<f32>), &(s, hd)| {
                    let (off, len, rows) = (p.offsets[s], p.len(s), q_rows(s));
                    let q = all.block(off, rows, hd * d, d);
                    let k = all.block(off, len, h + hd * d, d);
                    let v = all.block(off, len, 2 * h + hd * d, d);
                    scores.resize(rows * len, 0.0);
                    sums.resize(rows, 0.0);
                    matmul(
                        MatMut::new(scores, rows, len),
                        q,
                        k,
                        B::Transposed,
                        scale,
                        false,
                        1,
                    );
                    kernels::exp_rows(scores, len, sums);
                    let mut out = vec![0.0; rows * d];
                    matmul(
                        MatMut::new(&mut out, rows, d),
                        Mat::new(scores, rows, len),
                        v,
                        B::AsIs,
                        1.0,
                        false,
                        1,
                    );
                    for (row, sum) in out.chunks_exact_mut(d).zip(sums.iter()) {
                        row.iter_mut().for_each(|x| *x /= sum);
                    }
                    out
                },
            )
            .collect();
        let mut row_start = vec![0usize; n_seq + 1];
        for s in 0..n_seq {
            row_start[s + 1] = row_start[s] + q_rows(s);
        }
        context.resize(row_start[n_seq] * h, 0.0);
        for (&(s, hd), out) in tasks.iter().zip(&results) {
            for (r, src) in out.chunks_exact(d).enumerate() {
                let dst = (row_start[s] + r) * h + hd * d;
                context[dst..dst + d].copy_from_slice(src);
            }
        }
    }

    fn activation(&self, xs: &mut [f32]) {
        match self.act {
            HiddenAct::Gelu => kernels::gelu_erf(xs),
            HiddenAct::GeluNew | HiddenAct::GeluPytorchTanh => kernels::gelu_tanh(xs),
            HiddenAct::Relu => kernels::relu(xs),
            HiddenAct::Silu => kernels::silu(xs),
        }
    }

    /// The last hidden states: every token's, or each sequence's first token's.
    pub fn forward(&self, p: &Packed, output: Output) -> Result<Vec<f32>> {
        self.forward_with(p, output, <[f32]>::to_vec)
    }

    /// Runs the encoder and hands the last hidden states to `read` without copying them.
    pub fn forward_with<R>(
        &self,
        p: &Packed,
        output: Output,
        read: impl FnOnce(&[f32]) -> R,
    ) -> Result<R> {
        // A workspace from the pool (or a new one): reusing the large buffers across
        // batches avoids allocator churn that otherwise grows memory with the input size.
        let mut ws = self
            .workspaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        let result = self
            .run(p, output, &mut ws)
            .map(|rows| read(&ws.x[..rows * self.hidden]));
        self.workspaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ws);
        result
    }

    /// Returns how many rows of `ws.x` hold the output.
    fn run(&self, p: &Packed, output: Output, ws: &mut Workspace) -> Result<usize> {
        let h = self.hidden;
        self.embed(p, &mut ws.x)?;
        let n_layers = self.layers.len();
        let mut rows = p.ids.len();
        for (li, layer) in self.layers.iter().enumerate() {
            let first_only = output == Output::FirstToken && li + 1 == n_layers;
            ws.qkv.resize(rows * 3 * h, 0.0);
            layer
                .qkv
                .forward_into(&ws.x, rows, &mut ws.qkv, &mut ws.quantized);
            self.attention(&ws.qkv, p, first_only, &mut ws.context);
            if first_only {
                // From here on only each sequence's first token matters.
                rows = keep_first_tokens(&mut ws.x, p, h);
            }
            ws.attn.resize(rows * h, 0.0);
            layer
                .attention_out
                .forward_into(&ws.context, rows, &mut ws.attn, &mut ws.quantized);
            let norm = &layer.attention_norm;
            kernels::residual_layer_norm(
                &mut ws.attn,
                &ws.x[..rows * h],
                &norm.weight,
                &norm.bias,
                self.eps,
            );
            ws.inter.resize(rows * layer.intermediate.out_dim, 0.0);
            layer
                .intermediate
                .forward_into(&ws.attn, rows, &mut ws.inter, &mut ws.quantized);
            self.activation(&mut ws.inter);
            layer
                .output
                .forward_into(&ws.inter, rows, &mut ws.x, &mut ws.quantized);
            let norm = &layer.output_norm;
            kernels::residual_layer_norm(
                &mut ws.x[..rows * h],
                &ws.attn,
                &norm.weight,
                &norm.bias,
                self.eps,
            );
        }
        if output == Output::FirstToken && n_layers == 0 {
            rows = keep_first_tokens(&mut ws.x, p, h);
        }
        Ok(rows)
    }
}

/// Moves each sequence's first-token row to the front of `x`; returns the row count.
fn keep_first_tokens(x: &mut [f32], p: &Packed, h: usize) -> usize {
    for (s, &offset) in p.offsets[..p.num_sequences()].iter().enumerate() {
        x.copy_within(offset * h..(offset + 1) * h, s * h);
    }
    p.num_sequences()
}

/// Buffers of one forward pass, kept between batches.
#[derive(Default)]
struct Workspace {
    x: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    attn: Vec<f32>,
    inter: Vec<f32>,
    quantized: QuantizedRows,
}
