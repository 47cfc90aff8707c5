//! The cross-encoder: scores (query, document) pairs with a sequence-classification
//! model, like sentence-transformers' `CrossEncoder`.

use std::num::NonZeroUsize;
use std::str::FromStr;

use rayon::prelude::*;
use tokenizers::Encoding;

use crate::error::{Error, Result};
use crate::model::checkpoint::{Checkpoint, Family};
use crate::model::config::ModelConfig;
use crate::model::device::parse_device;
use crate::model::precision::Precision;
use crate::model::source::{HubOptions, ModelSource};
use crate::model::tokenize::{TextTokenizer, Truncation};
use crate::score::batching::{run_batched, OnBatch, CHUNK};
use crate::score::cache::{CacheInfo, ScoreCache};
use crate::score::engine::{Backend, Engine};
use crate::score::long_document::LongDocument;
use crate::score::prompt::PromptTokenizer;

/// The function applied to the logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Sigmoid,
    Identity,
    Softmax,
    Tanh,
}

impl FromStr for Activation {
    type Err = Error;

    /// Accepts short names (`"sigmoid"`) and the torch class paths that
    /// sentence-transformers stores in config.json (`"torch.nn.modules.activation.Sigmoid"`).
    fn from_str(s: &str) -> Result<Self> {
        let name = s.rsplit('.').next().unwrap_or(s).to_ascii_lowercase();
        match name.as_str() {
            "sigmoid" => Ok(Self::Sigmoid),
            "identity" | "none" | "linear" => Ok(Self::Identity),
            "softmax" => Ok(Self::Softmax),
            "tanh" => Ok(Self::Tanh),
            _ => Err(Error::invalid(format!(
                "unknown activation_fn {s:?}; expected \"sigmoid\", \"identity\", \"softmax\" or \"tanh\""
            ))),
        }
    }
}

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sigmoid => "sigmoid",
            Self::Identity => "identity",
            Self::Softmax => "softmax",
            Self::Tanh => "tanh",
        }
    }

    /// Applies the activation to each row of `num_labels` values.
    pub fn apply(self, values: &mut [f32], num_labels: usize) {
        match self {
            Self::Identity => {}
            Self::Sigmoid => values
                .iter_mut()
                .for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
            Self::Tanh => values.iter_mut().for_each(|v| *v = v.tanh()),
            Self::Softmax => values.chunks_mut(num_labels).for_each(softmax),
        }
    }
}

fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row
        .iter_mut()
        .map(|v| {
            *v = (*v - max).exp();
            *v
        })
        .sum();
    row.iter_mut().for_each(|v| *v /= sum);
}

#[derive(Debug, Clone, Default)]
pub struct CrossEncoderOptions {
    pub max_length: Option<usize>,
    pub activation: Option<Activation>,
    pub device: Option<String>,
    pub precision: Precision,
    pub hub: HubOptions,
    /// A decoder reranker's instruction (the system message of its prompt).
    pub instruction: Option<String>,
    /// How pairs longer than `max_length` are cut (long_document="truncate").
    pub truncation: Truncation,
    /// Pairs whose logits are kept in an LRU (see `score::cache`); `None` or 0: no cache.
    pub cache_size: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct PredictOptions {
    pub batch_size: usize,
    pub max_batch_tokens: Option<usize>,
    /// `None`: the model's default activation.
    pub activation: Option<Activation>,
    /// Softmax over the labels after the activation (only when num_labels > 1).
    pub apply_softmax: bool,
    /// What to do with pairs longer than `max_length`.
    pub long_document: LongDocument,
    /// Tokens shared by neighbouring windows (long_document other than truncate).
    pub stride: usize,
}

impl Default for PredictOptions {
    fn default() -> Self {
        Self {
            batch_size: 32,
            max_batch_tokens: None,
            activation: None,
            apply_softmax: false,
            long_document: LongDocument::Truncate,
            stride: 64,
        }
    }
}

/// Scores for n pairs, row-major (n, num_labels).
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub values: Vec<f32>,
    pub num_labels: usize,
}

/// How pairs become a model's inputs: an encoder's `[CLS] query [SEP] document [SEP]`, or
/// a decoder reranker's rendered prompt.
enum PairInputs {
    Encoder(Box<TextTokenizer>),
    Prompt(Box<PromptTokenizer>),
}

impl PairInputs {
    fn max_length(&self) -> usize {
        match self {
            Self::Encoder(t) => t.max_length(),
            Self::Prompt(p) => p.max_length(),
        }
    }

    fn encode_pairs(&self, pairs: &[(&str, &str)]) -> Result<Vec<Encoding>> {
        match self {
            Self::Encoder(t) => t.encode_pairs(pairs),
            Self::Prompt(p) => p.encode_pairs(pairs),
        }
    }

    fn untruncated_lengths(&self, pairs: &[(&str, &str)]) -> Result<Vec<usize>> {
        pairs
            .par_iter()
            .map(|&(q, d)| match self {
                Self::Encoder(t) => t.untruncated_pair_length(q, d),
                Self::Prompt(p) => p.untruncated_pair_length(q, d),
            })
            .collect()
    }

    fn prefix_of_tokens<'a>(&self, text: &'a str, max_tokens: usize) -> Result<&'a str> {
        match self {
            Self::Encoder(t) => t.prefix_of_tokens(text, max_tokens),
            Self::Prompt(p) => p.prefix_of_tokens(text, max_tokens),
        }
    }

    /// The encoder's tokenizer, for what only encoders do (`what`).
    fn encoder(&self, what: &str) -> Result<&TextTokenizer> {
        match self {
            Self::Encoder(t) => Ok(t),
            Self::Prompt(_) => Err(Error::invalid(format!(
                "{what} is not available for decoder rerankers"
            ))),
        }
    }
}

pub struct CrossEncoder {
    engine: Box<dyn Engine>,
    inputs: PairInputs,
    num_labels: usize,
    activation: Activation,
    precision: Precision,
    truncation: Truncation,
    cache: Option<ScoreCache>,
}

/// What happened to one pair's input (`predict(..., return_details=True)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairDetails {
    /// Tokens of the pair's input before truncation (special tokens included).
    pub num_tokens: usize,
    /// Whether the model read fewer tokens than that.
    pub truncated: bool,
    /// long_document other than truncate: the window that scored best.
    pub window: Option<WindowChoice>,
}

/// The best-scoring window of a long document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowChoice {
    pub index: usize,
    pub count: usize,
    /// Its span in the document's tokens (no special tokens): `start..end`.
    pub start: usize,
    pub end: usize,
}

impl CrossEncoder {
    pub fn load(name_or_path: &str, options: &CrossEncoderOptions) -> Result<Self> {
        let device = parse_device(options.device.as_deref().unwrap_or("cpu"))?;
        Self::load_on(name_or_path, options, Backend::for_device(device))
    }

    /// On `backend`; tests run candle on the CPU as the CPU engine's reference.
    pub(crate) fn load_on(
        name_or_path: &str,
        options: &CrossEncoderOptions,
        backend: Backend,
    ) -> Result<Self> {
        let source = ModelSource::resolve(name_or_path, &options.hub)?;
        let config = ModelConfig::load(&source)?;
        let num_labels = config.num_labels();
        let ckpt = Checkpoint::classifier(&source, &config, &backend.device())?;
        let family = ckpt.family;
        let (engine, inputs, num_labels) = if family == Family::Qwen3 {
            let prompts = PromptTokenizer::load(
                &source,
                family.max_tokens(&config.encoder),
                options.max_length,
                options.instruction.as_deref(),
            )?;
            let engine =
                backend.yes_no_scorer(&ckpt, &config, prompts.tokens(), options.precision)?;
            (engine, PairInputs::Prompt(Box::new(prompts)), 1)
        } else {
            if options.instruction.is_some() {
                return Err(Error::invalid(
                    "instruction applies to decoder rerankers (such as Qwen3-Reranker) only",
                ));
            }
            let engine = backend.classifier(&ckpt, &config, num_labels, options.precision)?;
            let tokenizer = TextTokenizer::for_model(
                &source,
                family,
                &config.encoder,
                options.max_length,
                None,
            )?
            .with_truncation(options.truncation);
            (engine, PairInputs::Encoder(Box::new(tokenizer)), num_labels)
        };
        let activation = match options.activation {
            Some(a) => a,
            None => default_activation(&config, num_labels)?,
        };
        let cache = options
            .cache_size
            .and_then(NonZeroUsize::new)
            .map(|capacity| {
                let identity = format!(
                    "{} revision={:?} max_length={} precision={} truncation={}",
                    source.describe(),
                    options.hub.revision,
                    inputs.max_length(),
                    options.precision.name(),
                    options.truncation.name()
                );
                ScoreCache::new(identity, capacity)
            });
        Ok(Self {
            engine,
            inputs,
            num_labels,
            activation,
            precision: options.precision,
            truncation: options.truncation,
            cache,
        })
    }

    /// The score cache's counters, when the model has one.
    pub fn cache_info(&self) -> Option<CacheInfo> {
        self.cache.as_ref().map(ScoreCache::info)
    }

    /// Empties the score cache and resets its counters.
    pub fn cache_clear(&self) {
        if let Some(cache) = &self.cache {
            cache.clear();
        }
    }

    pub fn truncation(&self) -> Truncation {
        self.truncation
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn num_labels(&self) -> usize {
        self.num_labels
    }

    pub fn max_length(&self) -> usize {
        self.inputs.max_length()
    }

    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Tokens each pair's input takes before truncation (with the special tokens, or the
    /// decoder's whole prompt), to compare with [`max_length`](Self::max_length).
    pub fn untruncated_lengths(&self, pairs: &[(&str, &str)]) -> Result<Vec<usize>> {
        self.inputs.untruncated_lengths(pairs)
    }

    /// The longest prefix of `document` within `max_tokens` of this model's tokens.
    pub fn document_prefix<'a>(&self, document: &'a str, max_tokens: usize) -> Result<&'a str> {
        self.inputs.prefix_of_tokens(document, max_tokens)
    }

    /// Token ids of each pair as the model sees them (after truncation).
    pub fn tokenize(&self, pairs: &[(&str, &str)]) -> Result<Vec<Vec<u32>>> {
        Ok(self
            .inputs
            .encode_pairs(pairs)?
            .into_iter()
            .map(|e| e.get_ids().to_vec())
            .collect())
    }

    /// Logits of already tokenized inputs, batched as `options` says, in input order.
    /// `on_batch(0)` after each batch lets the caller stop the run (its progress counts
    /// pairs, not inputs, so the caller reports those itself).
    fn forward_encodings(
        &self,
        inputs: &[Encoding],
        options: &PredictOptions,
        on_batch: &mut OnBatch<'_>,
    ) -> Result<Vec<f32>> {
        run_batched(
            inputs.len(),
            &|range| Ok(inputs[range].to_vec()),
            options.batch_size,
            options.max_batch_tokens,
            self.num_labels,
            &mut |_| on_batch(0),
            &|batch| self.engine.predict(batch),
        )
    }

    /// Raw logits, (n, num_labels), in input order.
    pub fn logits(
        &self,
        pairs: &[(&str, &str)],
        batch_size: usize,
        max_batch_tokens: Option<usize>,
        on_batch: &mut OnBatch<'_>,
    ) -> Result<Scores> {
        let tokenize = |range| self.inputs.encode_pairs(&pairs[range]);
        let values = run_batched(
            pairs.len(),
            &tokenize,
            batch_size,
            max_batch_tokens,
            self.num_labels,
            on_batch,
            &|batch| self.engine.predict(batch),
        )?;
        Ok(Scores {
            values,
            num_labels: self.num_labels,
        })
    }

    /// Whether `mode` (with `stride`) applies to this model.
    pub fn check_long_document(&self, mode: LongDocument, stride: usize) -> Result<()> {
        if mode != LongDocument::Truncate && self.truncation != Truncation::LongestFirst {
            return Err(Error::invalid(format!(
                "truncation={:?} applies to long_document=\"truncate\"; long_document={:?} \
                 reads the whole document in windows",
                self.truncation.name(),
                mode.name()
            )));
        }
        if mode != LongDocument::Truncate {
            self.inputs
                .encoder(&format!("long_document={:?}", mode.name()))?;
        }
        mode.check_stride(stride, self.max_length())
    }

    /// Raw logits with long documents split into windows and aggregated per pair
    /// (`long_document` other than truncate), (n, num_labels), in input order.
    /// With a score cache, cached pairs are looked up and only the others run.
    pub fn window_logits(
        &self,
        pairs: &[(&str, &str)],
        options: &PredictOptions,
        on_batch: &mut OnBatch<'_>,
    ) -> Result<Scores> {
        let Some(cache) = &self.cache else {
            return Ok(self.scored_windows(pairs, options, on_batch, false)?.0);
        };
        let mut computed = 0;
        let values = cache.logits(
            pairs,
            options.long_document,
            options.stride,
            self.num_labels,
            |missing| {
                computed = missing.len();
                Ok(self
                    .scored_windows(missing, options, on_batch, false)?
                    .0
                    .values)
            },
        )?;
        // Progress counts pairs: the cached ones are done at once.
        on_batch(pairs.len() - computed)?;
        Ok(Scores {
            values,
            num_labels: self.num_labels,
        })
    }

    /// [`window_logits`](Self::window_logits), and with `choose` (in long_document modes)
    /// each pair's best-scoring window.
    fn scored_windows(
        &self,
        pairs: &[(&str, &str)],
        options: &PredictOptions,
        on_batch: &mut OnBatch<'_>,
        choose: bool,
    ) -> Result<(Scores, Vec<WindowChoice>)> {
        let mode = options.long_document;
        if mode == LongDocument::Truncate {
            if self.truncation == Truncation::Error {
                self.check_fits(pairs)?;
            }
            let scores = self.logits(
                pairs,
                options.batch_size,
                options.max_batch_tokens,
                on_batch,
            )?;
            return Ok((scores, Vec::new()));
        }
        let tokenizer = self
            .inputs
            .encoder(&format!("long_document={:?}", mode.name()))?;
        mode.check_stride(options.stride, self.max_length())?;
        let mut values = Vec::with_capacity(pairs.len() * self.num_labels);
        let mut choices = Vec::new();
        for chunk in pairs.chunks(CHUNK) {
            let mut windows = tokenizer.encode_pair_windows(chunk, options.stride)?;
            if mode == LongDocument::First {
                windows.iter_mut().for_each(|w| w.truncate(1));
            }
            let counts: Vec<usize> = windows.iter().map(Vec::len).collect();
            let spans: Vec<Vec<(usize, usize)>> = if choose {
                windows
                    .iter()
                    .map(|w| document_spans(w, options.stride))
                    .collect()
            } else {
                Vec::new()
            };
            let flat: Vec<Encoding> = windows.into_iter().flatten().collect();
            let logits = self.forward_encodings(&flat, options, on_batch)?;
            if choose {
                choices.extend(best_windows(&logits, &counts, self.num_labels, spans));
            }
            values.extend(mode.aggregate(&logits, &counts, self.num_labels));
            on_batch(chunk.len())?;
        }
        let scores = Scores {
            values,
            num_labels: self.num_labels,
        };
        Ok((scores, choices))
    }

    /// truncation="error": every pair must fit within max_length.
    fn check_fits(&self, pairs: &[(&str, &str)]) -> Result<()> {
        let lengths = self.untruncated_lengths(pairs)?;
        let max_length = self.max_length();
        match lengths.iter().position(|&n| n > max_length) {
            Some(i) => Err(Error::invalid(format!(
                "pair {i} has {} tokens, more than max_length {max_length} \
                 (truncation=\"error\"; use \"longest_first\" or \"only_second\" to cut it)",
                lengths[i]
            ))),
            None => Ok(()),
        }
    }

    /// A duo model's P(a is more relevant to `query` than b) for each `(a, b)`: the input
    /// is `[CLS] query [SEP] a [SEP] b [SEP]`; the probability is the sigmoid of the logit
    /// (one label) or the softmax's second label (two labels, as duoBERT checkpoints).
    /// Of `options` only the batching fields apply.
    pub fn compare(
        &self,
        query: &str,
        pairs: &[(&str, &str)],
        options: &PredictOptions,
        on_batch: &mut OnBatch<'_>,
    ) -> Result<Vec<f64>> {
        if !matches!(self.num_labels, 1 | 2) {
            return Err(Error::invalid(format!(
                "a pairwise comparator needs a model with 1 or 2 labels, this one has {}",
                self.num_labels
            )));
        }
        let tokenizer = self
            .inputs
            .encoder("compare() (a duo model's pairwise input)")?;
        let mut probabilities = Vec::with_capacity(pairs.len());
        for chunk in pairs.chunks(CHUNK) {
            let inputs = tokenizer.encode_duos(query, chunk)?;
            let logits = self.forward_encodings(&inputs, options, on_batch)?;
            probabilities.extend(logits.chunks(self.num_labels).map(|row| match row {
                [logit] => 1.0 / (1.0 + (-*logit as f64).exp()),
                // softmax(row)[1] of two labels = sigmoid(l1 - l0)
                [l0, l1] => 1.0 / (1.0 + ((*l0 - *l1) as f64).exp()),
                _ => unreachable!("num_labels checked above"),
            }));
            on_batch(chunk.len())?;
        }
        Ok(probabilities)
    }

    /// Scores with the activation (and optional softmax) applied, (n, num_labels).
    pub fn predict(
        &self,
        pairs: &[(&str, &str)],
        options: &PredictOptions,
        on_batch: &mut OnBatch<'_>,
    ) -> Result<Scores> {
        let scores = self.window_logits(pairs, options, on_batch)?;
        self.activated(scores, options)
    }

    /// [`predict`](Self::predict), and what happened to each pair's input: its length
    /// before truncation, whether it was cut, and in long_document modes the best window.
    pub fn predict_with_details(
        &self,
        pairs: &[(&str, &str)],
        options: &PredictOptions,
        on_batch: &mut OnBatch<'_>,
    ) -> Result<(Scores, Vec<PairDetails>)> {
        let mode = options.long_document;
        let (scores, windows) =
            self.scored_windows(pairs, options, on_batch, mode != LongDocument::Truncate)?;
        let scores = self.activated(scores, options)?;
        let max_length = self.max_length();
        let mut windows = windows.into_iter();
        let details = self
            .untruncated_lengths(pairs)?
            .into_iter()
            .map(|num_tokens| PairDetails {
                num_tokens,
                // Max and mean read every token, in windows; first reads the first window.
                truncated: num_tokens > max_length
                    && matches!(mode, LongDocument::Truncate | LongDocument::First),
                window: windows.next(),
            })
            .collect();
        Ok((scores, details))
    }

    /// Logits with the activation (and optional softmax) applied; a non-finite score is
    /// an error.
    fn activated(&self, mut scores: Scores, options: &PredictOptions) -> Result<Scores> {
        options
            .activation
            .unwrap_or(self.activation)
            .apply(&mut scores.values, self.num_labels);
        if options.apply_softmax && self.num_labels > 1 {
            scores.values.chunks_mut(self.num_labels).for_each(softmax);
        }
        if let Some(i) = scores.values.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!(
                "the model produced a non-finite score for pair {} (are the weights corrupt?)",
                i / self.num_labels
            )));
        }
        Ok(scores)
    }

    /// Ranking needs one score per pair: a model with one output label.
    pub fn check_rankable(&self) -> Result<()> {
        if self.num_labels != 1 {
            return Err(Error::invalid(format!(
                "rank() needs a model with one output label; this one has {}",
                self.num_labels
            )));
        }
        Ok(())
    }

    /// Documents ranked by score, best first: `(document index, score)`. Ties keep input order.
    pub fn rank(
        &self,
        query: &str,
        documents: &[&str],
        top_k: Option<usize>,
        options: &PredictOptions,
        on_batch: &mut OnBatch<'_>,
    ) -> Result<Vec<(usize, f32)>> {
        self.check_rankable()?;
        let pairs: Vec<(&str, &str)> = documents.iter().map(|d| (query, *d)).collect();
        let scores = self.predict(&pairs, options, on_batch)?;
        Ok(rank_by_score(scores.values, top_k))
    }
}

/// Each window's span in its document's tokens (the tokens of sequence 1): windows are
/// cut `stride` tokens before the previous one ends, as `Encoding::truncate` cuts them.
fn document_spans(windows: &[Encoding], stride: usize) -> Vec<(usize, usize)> {
    let document_tokens = |w: &Encoding| {
        w.get_sequence_ids()
            .iter()
            .filter(|s| **s == Some(1))
            .count()
    };
    let first = windows.first().map_or(0, document_tokens);
    let step = first.saturating_sub(stride).max(1);
    windows
        .iter()
        .enumerate()
        .map(|(k, w)| {
            let start = if windows.len() > 1 { k * step } else { 0 };
            (start, start + document_tokens(w))
        })
        .collect()
}

/// Per pair, the window whose first label's logit is highest (the first on ties).
fn best_windows(
    logits: &[f32],
    counts: &[usize],
    num_labels: usize,
    spans: Vec<Vec<(usize, usize)>>,
) -> Vec<WindowChoice> {
    let mut at = 0;
    counts
        .iter()
        .zip(spans)
        .map(|(&count, spans)| {
            let index = (0..count)
                .max_by(|&a, &b| {
                    let (x, y) = (logits[(at + a) * num_labels], logits[(at + b) * num_labels]);
                    x.total_cmp(&y).then(b.cmp(&a))
                })
                .unwrap_or(0);
            at += count;
            let (start, end) = spans.get(index).copied().unwrap_or((0, 0));
            WindowChoice {
                index,
                count,
                start,
                end,
            }
        })
        .collect()
}

/// `(index, score)` best first; ties keep input order; at most `top_k`.
pub(crate) fn rank_by_score(scores: Vec<f32>, top_k: Option<usize>) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = scores.into_iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(top_k.unwrap_or(usize::MAX));
    ranked
}

/// sentence-transformers' rule: `sentence_transformers.activation_fn` (or the older
/// `sbert_ce_default_activation_function`) from config.json, else sigmoid for a single
/// label and identity otherwise.
fn default_activation(config: &ModelConfig, num_labels: usize) -> Result<Activation> {
    let stored = config
        .raw
        .get("sentence_transformers")
        .and_then(|st| st.get("activation_fn"))
        .or_else(|| config.raw.get("sbert_ce_default_activation_function"))
        .and_then(|v| v.as_str());
    match stored {
        Some(path) => path.parse(),
        None if num_labels == 1 => Ok(Activation::Sigmoid),
        None => Ok(Activation::Identity),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_names_parse() {
        assert_eq!(
            "torch.nn.modules.activation.Sigmoid"
                .parse::<Activation>()
                .unwrap(),
            Activation::Sigmoid
        );
        assert_eq!(
            "torch.nn.modules.linear.Identity"
                .parse::<Activation>()
                .unwrap(),
            Activation::Identity
        );
        assert!("relu6".parse::<Activation>().is_err());
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let mut v = vec![1.0, 2.0, 3.0, -1000.0, 0.0, 1000.0];
        Activation::Softmax.apply(&mut v, 3);
        assert!((v[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((v[5] - 1.0).abs() < 1e-6 && v.iter().all(|x| x.is_finite()));
    }
}
