//! The bi-encoder: embeds texts independently, like sentence-transformers'
//! `SentenceTransformer.encode` (Transformer -> Pooling -> optional Normalize).

use std::str::FromStr;

use candle_core::{Device, Tensor, D};

use crate::batching::{make_input, run_batched, OnBatch};
use crate::device::parse_device;
use crate::error::{Error, Result};
use crate::fast;
use crate::models::bert::BertModel;
use crate::models::{Checkpoint, InputScheme, ModelConfig};
use crate::precision::Precision;
use crate::source::{HubOptions, ModelSource};
use crate::tokenize::{resolve_max_length, TextTokenizer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    Mean,
    Cls,
    Max,
    MeanSqrtLen,
}

impl FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mean" => Ok(Self::Mean),
            "cls" => Ok(Self::Cls),
            "max" => Ok(Self::Max),
            "mean_sqrt_len" | "mean_sqrt_len_tokens" => Ok(Self::MeanSqrtLen),
            _ => Err(Error::invalid(format!(
                "unknown pooling {s:?}; expected \"mean\", \"cls\", \"max\" or \"mean_sqrt_len\""
            ))),
        }
    }
}

impl Pooling {
    pub fn name(self) -> &'static str {
        match self {
            Self::Mean => "mean",
            Self::Cls => "cls",
            Self::Max => "max",
            Self::MeanSqrtLen => "mean_sqrt_len",
        }
    }

    /// `hidden`: (batch, seq, dim); `mask`: (batch, seq) of 0/1. Returns (batch, dim).
    /// Pooling for candle's model (GPU builds; the CPU engine's test reference).
    pub(crate) fn pool(self, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let mask3 = mask.unsqueeze(D::Minus1)?; // (batch, seq, 1)
        let summed = || -> Result<(Tensor, Tensor)> {
            let sum = hidden.broadcast_mul(&mask3)?.sum(1)?;
            let count = mask.sum_keepdim(1)?.clamp(1e-9, f64::INFINITY)?;
            Ok((sum, count))
        };
        Ok(match self {
            Self::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Self::Mean => {
                let (sum, count) = summed()?;
                sum.broadcast_div(&count)?
            }
            Self::MeanSqrtLen => {
                let (sum, count) = summed()?;
                sum.broadcast_div(&count.sqrt()?)?
            }
            Self::Max => {
                // As sentence-transformers: padding set to -1e9 before the max.
                let fill = ((mask3.ones_like()? - &mask3)? * -1e9)?;
                hidden.broadcast_mul(&mask3)?.broadcast_add(&fill)?.max(1)?
            }
        })
    }
}

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

/// The forward pass in use: crossrank's CPU engine, or candle's model (GPU builds; on
/// the CPU it is the engine's test reference).
enum Engine {
    Cpu(fast::Embedder),
    Candle {
        model: BertModel,
        scheme: InputScheme,
        pad_id: u32,
        device: Device,
    },
}

pub struct BiEncoder {
    engine: Engine,
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
        let candle = !device.is_cpu();
        Self::load_on(name_or_path, options, device, candle)
    }

    /// `candle`: run candle's model instead of crossrank's CPU engine. Needed on every
    /// device but the CPU; tests use it on the CPU as the engine's reference.
    pub(crate) fn load_on(
        name_or_path: &str,
        options: &BiEncoderOptions,
        device: Device,
        candle: bool,
    ) -> Result<Self> {
        if candle && options.precision != Precision::Float32 {
            return Err(Error::invalid(format!(
                "precision {:?} runs on the CPU only; use precision=\"float32\" on {device:?}",
                options.precision.name()
            )));
        }
        let source = ModelSource::resolve(name_or_path, &options.hub)?;
        let config = ModelConfig::load(&source)?;
        let ckpt = Checkpoint::encoder(&source, &config, &device)?;
        let family = ckpt.family;
        let engine = if !candle {
            Engine::Cpu(fast::Embedder::load(
                &ckpt,
                &config.encoder,
                options.precision,
            )?)
        } else {
            Engine::Candle {
                model: BertModel::load(ckpt.encoder_vb(), &config.encoder)?,
                scheme: family.input_scheme(&config.encoder),
                pad_id: config.encoder.pad_token_id,
                device,
            }
        };
        let st = SentenceTransformerConfig::load(&source)?;
        let limit = family.max_tokens(&config.encoder);
        let max_length = resolve_max_length(&source, options.max_length, st.max_seq_length, limit)?;
        let tokenizer = TextTokenizer::load(&source, family, max_length)?;
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
            &|batch| match &self.engine {
                Engine::Cpu(model) => model.forward(batch, self.pooling, normalize),
                Engine::Candle {
                    model,
                    scheme,
                    pad_id,
                    device,
                } => {
                    let input = make_input(batch, *scheme, *pad_id, device)?;
                    let hidden = model.forward(&input)?;
                    let mut pooled = self.pooling.pool(&hidden, &input.attention_mask)?;
                    if normalize {
                        // torch.nn.functional.normalize: x / max(||x||, 1e-12)
                        let norm = pooled
                            .sqr()?
                            .sum_keepdim(1)?
                            .sqrt()?
                            .clamp(1e-12, f64::INFINITY)?;
                        pooled = pooled.broadcast_div(&norm)?;
                    }
                    Ok(pooled.flatten_all()?.to_vec1::<f32>()?)
                }
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
