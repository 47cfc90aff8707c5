//! Model definitions (one per file) and the table of supported architectures.

pub mod bert;
pub mod xlm_roberta;

#[cfg(test)]
mod tests;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::error::{Error, Result};
use crate::source::ModelSource;
use crate::weights::load_weights;
use bert::{BertForSequenceClassification, Config, EncoderInput};
use xlm_roberta::XLMRobertaForSequenceClassification;

pub const SUPPORTED_CLASSIFIERS: &str =
    "BertForSequenceClassification, XLMRobertaForSequenceClassification";

/// The encoder family, which decides position ids, token types and weight prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Bert,
    XlmRoberta,
}

impl Family {
    fn weight_prefixes(self) -> &'static [&'static str] {
        match self {
            Family::Bert => &["bert", ""],
            Family::XlmRoberta => &["roberta", ""],
        }
    }

    /// Positions usable by tokens: RoBERTa's position table starts past the padding index.
    pub fn max_tokens(self, config: &Config) -> usize {
        match self {
            Family::Bert => config.max_position_embeddings,
            Family::XlmRoberta => config
                .max_position_embeddings
                .saturating_sub(config.pad_token_id as usize + 1),
        }
    }

    pub fn input_scheme(self, config: &Config) -> InputScheme {
        match self {
            Family::Bert => InputScheme {
                roberta_padding_idx: None,
                token_types: true,
            },
            // transformers' XLM-R tokenizers send no token_type_ids: the model uses zeros.
            Family::XlmRoberta => InputScheme {
                roberta_padding_idx: Some(config.pad_token_id),
                token_types: false,
            },
        }
    }
}

/// How padded inputs are laid out for a family (see `batching::make_input`).
#[derive(Debug, Clone, Copy)]
pub struct InputScheme {
    /// RoBERTa numbers tokens from `padding_idx + 1`; padding gets `padding_idx`.
    pub roberta_padding_idx: Option<u32>,
    pub token_types: bool,
}

impl InputScheme {
    /// Position ids of a sequence's tokens. BERT: 0, 1, 2, ... RoBERTa (transformers'
    /// `create_position_ids_from_input_ids`): tokens are counted from `padding_idx + 1`
    /// and a padding token gets `padding_idx` without being counted, even one that the
    /// text itself contained (a literal "<pad>"), so later tokens shift down by one.
    pub fn positions<'a>(&self, ids: &'a [u32]) -> impl Iterator<Item = u32> + 'a {
        let pad = self.roberta_padding_idx;
        let mut counted = 0u32;
        ids.iter().enumerate().map(move |(j, &id)| match pad {
            None => j as u32,
            Some(pad) if id == pad => pad,
            Some(pad) => {
                counted += 1;
                pad + counted
            }
        })
    }
}

/// The parsed `config.json` of a checkpoint.
pub struct ModelConfig {
    pub encoder: Config,
    pub raw: serde_json::Value,
    pub architectures: Vec<String>,
    pub model_type: Option<String>,
}

impl ModelConfig {
    pub fn load(source: &ModelSource) -> Result<Self> {
        let (path, raw) = source.json("config.json")?.ok_or_else(|| {
            Error::NotFound(format!("model {} has no config.json", source.describe()))
        })?;
        let encoder: Config = serde_json::from_value(raw.clone())
            .map_err(|e| Error::bad_file(&path, format!("not a usable BERT/XLM-R config: {e}")))?;
        let architectures = raw
            .get("architectures")
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let model_type = raw
            .get("model_type")
            .and_then(|s| s.as_str())
            .map(str::to_string);
        Ok(Self {
            encoder,
            raw,
            architectures,
            model_type,
        })
    }

    /// As transformers: the size of `id2label` if present, else `num_labels`, else 2.
    pub fn num_labels(&self) -> usize {
        if let Some(map) = self.raw.get("id2label").and_then(|m| m.as_object()) {
            return map.len();
        }
        self.raw
            .get("num_labels")
            .and_then(|n| n.as_u64())
            .map(|n| n as usize)
            .unwrap_or(2)
    }

    /// The encoder family from `model_type`, for checkpoints used as bi-encoders.
    pub fn family(&self) -> Result<Family> {
        match self.model_type.as_deref() {
            Some("bert") | None => Ok(Family::Bert),
            Some("xlm-roberta") | Some("roberta") => Ok(Family::XlmRoberta),
            Some(other) => Err(Error::UnsupportedArchitecture {
                found: other.to_string(),
                supported: "model_type bert, roberta, xlm-roberta".to_string(),
            }),
        }
    }
}

/// A checkpoint's weights, with the family and the prefix its encoder lives under.
pub struct Checkpoint {
    pub vb: VarBuilder<'static>,
    pub family: Family,
    /// `"bert"` / `"roberta"` in a model with a head, `""` in a bare encoder.
    pub prefix: String,
}

impl Checkpoint {
    /// A checkpoint with a sequence-classification head: the cross-encoder's model.
    pub fn classifier(source: &ModelSource, config: &ModelConfig, device: &Device) -> Result<Self> {
        let arch = config.architectures.first().cloned().unwrap_or_default();
        let family = match arch.as_str() {
            "BertForSequenceClassification" => Family::Bert,
            "XLMRobertaForSequenceClassification" | "RobertaForSequenceClassification" => {
                Family::XlmRoberta
            }
            _ => {
                return Err(Error::UnsupportedArchitecture {
                    found: if arch.is_empty() {
                        "<none in config.json>".into()
                    } else {
                        arch
                    },
                    supported: SUPPORTED_CLASSIFIERS.to_string(),
                })
            }
        };
        Self::load(source, family, device)
    }

    /// Any checkpoint of a supported family, used as a bare encoder (head ignored).
    pub fn encoder(source: &ModelSource, config: &ModelConfig, device: &Device) -> Result<Self> {
        Self::load(source, config.family()?, device)
    }

    fn load(source: &ModelSource, family: Family, device: &Device) -> Result<Self> {
        let vb = VarBuilder::from_tensors(load_weights(source)?, DType::F32, device);
        let prefix = find_prefix(&|k| vb.contains_tensor(k), family)?;
        Ok(Self { vb, family, prefix })
    }

    /// The encoder's weights.
    pub fn encoder_vb(&self) -> VarBuilder<'static> {
        if self.prefix.is_empty() {
            self.vb.clone()
        } else {
            self.vb.pp(&self.prefix)
        }
    }

    /// The classification head: (dense + tanh on the first token, output projection).
    pub fn head_vbs(&self) -> (VarBuilder<'static>, VarBuilder<'static>) {
        match self.family {
            Family::Bert => (
                self.encoder_vb().pp("pooler.dense"),
                self.vb.pp("classifier"),
            ),
            Family::XlmRoberta => (
                self.vb.pp("classifier.dense"),
                self.vb.pp("classifier.out_proj"),
            ),
        }
    }
}

/// The candle implementation of a sequence classifier: the reference forward pass the
/// CPU engine (`fast`) is tested against.
pub enum SequenceClassifier {
    Bert(BertForSequenceClassification),
    XlmRoberta(XLMRobertaForSequenceClassification),
}

impl SequenceClassifier {
    pub fn load(ckpt: &Checkpoint, config: &Config, num_labels: usize) -> Result<Self> {
        let vb = ckpt.vb.clone();
        Ok(match ckpt.family {
            Family::Bert => Self::Bert(BertForSequenceClassification::load(
                vb,
                &ckpt.prefix,
                config,
                num_labels,
            )?),
            Family::XlmRoberta => Self::XlmRoberta(XLMRobertaForSequenceClassification::load(
                vb,
                &ckpt.prefix,
                config,
                num_labels,
            )?),
        })
    }

    pub fn forward(&self, input: &EncoderInput) -> Result<Tensor> {
        match self {
            Self::Bert(m) => m.forward(input),
            Self::XlmRoberta(m) => m.forward(input),
        }
    }
}

fn find_prefix(has: &dyn Fn(&str) -> bool, family: Family) -> Result<String> {
    for prefix in family.weight_prefixes() {
        let key = if prefix.is_empty() {
            "embeddings.word_embeddings.weight".to_string()
        } else {
            format!("{prefix}.embeddings.word_embeddings.weight")
        };
        if has(&key) {
            return Ok(prefix.to_string());
        }
    }
    Err(Error::invalid(format!(
        "the weights have no encoder embeddings (looked for embeddings.word_embeddings.weight \
         under the prefixes {:?})",
        family.weight_prefixes()
    )))
}
