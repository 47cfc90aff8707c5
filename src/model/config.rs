//! A checkpoint's `config.json`: the encoder hyperparameters every engine reads
//! (`Config`) and the whole file with what decides the architecture (`ModelConfig`).

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::checkpoint::Family;
use crate::model::source::ModelSource;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenAct {
    Gelu,
    GeluNew,
    GeluPytorchTanh,
    Relu,
}

fn default_hidden_act() -> HiddenAct {
    HiddenAct::Gelu
}
fn default_type_vocab_size() -> usize {
    2
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}

/// The fields of `config.json` the encoder needs. DistilBERT spells five of them its own
/// way (`dim`, `n_layers`, `n_heads`, `hidden_dim`, `activation`): the aliases.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    #[serde(alias = "dim")]
    pub hidden_size: usize,
    #[serde(alias = "n_layers")]
    pub num_hidden_layers: usize,
    #[serde(alias = "n_heads")]
    pub num_attention_heads: usize,
    #[serde(alias = "hidden_dim")]
    pub intermediate_size: usize,
    #[serde(default = "default_hidden_act", alias = "activation")]
    pub hidden_act: HiddenAct,
    /// ELECTRA: the embeddings' width, projected to `hidden_size` when it differs.
    #[serde(default)]
    pub embedding_size: Option<usize>,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: u32,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

impl Config {
    /// The embeddings' width (ELECTRA's `embedding_size`, else the hidden size).
    pub fn embedding_width(&self) -> usize {
        self.embedding_size.unwrap_or(self.hidden_size)
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(kind) = &self.position_embedding_type {
            if kind != "absolute" {
                return Err(Error::invalid(format!(
                    "position_embedding_type {kind:?} is not supported; only \"absolute\""
                )));
            }
        }
        if self.hidden_size == 0 || self.embedding_width() == 0 {
            return Err(Error::invalid(format!(
                "hidden_size {} / embedding_size {} must be positive",
                self.hidden_size,
                self.embedding_width()
            )));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(Error::invalid(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        Ok(())
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
        let encoder: Config = serde_json::from_value(raw.clone()).map_err(|e| {
            Error::bad_file(
                &path,
                format!("not a usable BERT-style encoder config: {e}"),
            )
        })?;
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
            Some("electra") => Ok(Family::Electra),
            Some("distilbert") => Ok(Family::DistilBert),
            Some(other) => Err(Error::UnsupportedArchitecture {
                found: other.to_string(),
                supported: "model_type bert, roberta, xlm-roberta, electra, distilbert".to_string(),
            }),
        }
    }
}
