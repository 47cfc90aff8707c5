//! The bi-encoder: embeds texts independently, like sentence-transformers'
//! `SentenceTransformer.encode` (Transformer -> Pooling -> optional Normalize).

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::model::checkpoint::Checkpoint;
use crate::model::config::ModelConfig;
use crate::model::device::parse_device;
use crate::model::precision::Precision;
use crate::model::source::{HubOptions, ModelSource};
use crate::model::tokenize::TextTokenizer;
use crate::score::batching::{run_batched, OnBatch};
use crate::score::engine::{Backend, Engine};
use crate::score::pooling::{normalize_rows, Pooling};

#[derive(Debug, Clone, Default)]
pub struct BiEncoderOptions {
    pub max_length: Option<usize>,
    pub device: Option<String>,
    pub precision: Precision,
    /// Overrides the pooling from `1_Pooling/config.json`.
    pub pooling: Option<Pooling>,
    /// Normalize even if the model has no Normalize module.
    pub normalize_embeddings: bool,
    pub hub: HubOptions,
}

pub struct BiEncoder {
    engine: Box<dyn Engine>,
    tokenizer: TextTokenizer,
    pooling: Pooling,
    normalize: bool,
    dim: usize,
    precision: Precision,
}

/// Embeddings for n texts, row-major (n, dim).
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub values: Vec<f32>,
    pub dim: usize,
}

impl BiEncoder {
    pub fn load(name_or_path: &str, options: &BiEncoderOptions) -> Result<Self> {
        let device = parse_device(options.device.as_deref().unwrap_or("cpu"))?;
        Self::load_on(name_or_path, options, Backend::for_device(device))
    }

    /// On `backend`; tests run candle on the CPU as the CPU engine's reference.
    pub(crate) fn load_on(
        name_or_path: &str,
        options: &BiEncoderOptions,
        backend: Backend,
    ) -> Result<Self> {
        let source = ModelSource::resolve(name_or_path, &options.hub)?;
        let config = ModelConfig::load(&source)?;
        let ckpt = Checkpoint::encoder(&source, &config, &backend.device())?;
        let family = ckpt.family;
        let engine = backend.embedder(&ckpt, &config, options.precision)?;
        let st = SentenceTransformerConfig::load(&source)?;
        let tokenizer = TextTokenizer::for_model(
            &source,
            family,
            &config.encoder,
            options.max_length,
            st.max_seq_length,
        )?;
        Ok(Self {
            engine,
            tokenizer,
            pooling: options.pooling.unwrap_or(st.pooling),
            normalize: st.normalize || options.normalize_embeddings,
            dim: config.encoder.hidden_size,
            precision: options.precision,
        })
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn dim(&self) -> usize {
        self.dim
    }
    pub fn max_length(&self) -> usize {
        self.tokenizer.max_length()
    }
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }
    /// Whether `encode` normalizes by default (the model has a Normalize module, or the
    /// caller asked for it at load time).
    pub fn normalizes(&self) -> bool {
        self.normalize
    }

    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        Ok(self
            .tokenizer
            .encode_texts(texts)?
            .into_iter()
            .map(|e| e.get_ids().to_vec())
            .collect())
    }

    /// Tokens each text takes before truncation, special tokens included.
    pub fn untruncated_lengths(&self, texts: &[&str]) -> Result<Vec<usize>> {
        texts
            .par_iter()
            .map(|t| self.tokenizer.untruncated_text_length(t))
            .collect()
    }

    /// `normalize`: `None` uses the model's default ([`normalizes`](Self::normalizes)).
    pub fn encode(
        &self,
        texts: &[&str],
        batch_size: usize,
        max_batch_tokens: Option<usize>,
        normalize: Option<bool>,
        on_batch: &mut OnBatch<'_>,
    ) -> Result<Embeddings> {
        let tokenize = |range| self.tokenizer.encode_texts(&texts[range]);
        let normalize = normalize.unwrap_or(false) || self.normalize;
        let values = run_batched(
            texts.len(),
            &tokenize,
            batch_size,
            max_batch_tokens,
            self.dim,
            on_batch,
            &|batch| {
                let mut pooled = self.engine.embed(batch, self.pooling)?;
                if normalize {
                    normalize_rows(&mut pooled, self.dim);
                }
                Ok(pooled)
            },
        )?;
        Ok(Embeddings {
            values,
            dim: self.dim,
        })
    }
}

/// What the sentence-transformers files (`modules.json`, `sentence_bert_config.json`,
/// the Pooling module's `config.json`) say; defaults for a plain transformers model.
struct SentenceTransformerConfig {
    pooling: Pooling,
    normalize: bool,
    max_seq_length: Option<usize>,
}

impl SentenceTransformerConfig {
    fn load(source: &ModelSource) -> Result<Self> {
        let modules = source.json("modules.json")?;
        let module_path = |kind: &str| -> Option<String> {
            let (_, list) = modules.as_ref()?;
            list.as_array()?.iter().find_map(|m| {
                let t = m.get("type")?.as_str()?;
                t.ends_with(kind).then(|| {
                    m.get("path")
                        .and_then(|p| p.as_str())
                        .unwrap_or("")
                        .to_string()
                })
            })
        };
        let normalize = module_path(".Normalize").is_some();
        let pooling = match module_path(".Pooling") {
            Some(dir) => match source.json(&format!("{dir}/config.json"))? {
                Some((path, cfg)) => pooling_from_config(&path, &cfg)?,
                None => Pooling::Mean,
            },
            None => Pooling::Mean,
        };
        let max_seq_length = source
            .json("sentence_bert_config.json")?
            .and_then(|(_, v)| v.get("max_seq_length").and_then(|n| n.as_u64()))
            .map(|n| n as usize);
        Ok(Self {
            pooling,
            normalize,
            max_seq_length,
        })
    }
}

fn pooling_from_config(path: &std::path::Path, cfg: &serde_json::Value) -> Result<Pooling> {
    if let Some(mode) = cfg.get("pooling_mode").and_then(|m| m.as_str()) {
        return mode.parse();
    }
    let on = |key: &str| cfg.get(key).and_then(|v| v.as_bool()).unwrap_or(false);
    let modes: Vec<Pooling> = [
        ("pooling_mode_cls_token", Pooling::Cls),
        ("pooling_mode_mean_tokens", Pooling::Mean),
        ("pooling_mode_max_tokens", Pooling::Max),
        ("pooling_mode_mean_sqrt_len_tokens", Pooling::MeanSqrtLen),
    ]
    .into_iter()
    .filter(|(k, _)| on(k))
    .map(|(_, p)| p)
    .collect();
    let unsupported: Vec<&str> = ["pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"]
        .into_iter()
        .filter(|k| on(k))
        .collect();
    match (modes.as_slice(), unsupported.is_empty()) {
        ([one], true) => Ok(*one),
        _ => Err(Error::bad_file(
            path,
            "unsupported pooling configuration: exactly one of cls, mean, max or mean_sqrt_len \
             pooling must be enabled",
        )),
    }
}
