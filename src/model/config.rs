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
    /// The decoders' (Qwen3) gated MLP activation.
    Silu,
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
    /// `null` in decoders' configs (Qwen3), where nothing reads it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub pad_token_id: u32,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn null_as_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(
    deserializer: D,
) -> std::result::Result<T, D::Error> {
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
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

/// Whether a classifier pools the first token or the mean of all tokens (ModernBERT's
/// `classifier_pooling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassifierPooling {
    Cls,
    Mean,
}

/// ModernBERT's `config.json`, in transformers' current spelling (`layer_types`,
/// `rope_parameters`) or the original one (`global_attn_every_n_layers`,
/// `global_rope_theta`, `local_rope_theta`).
#[derive(Debug, Clone)]
pub struct ModernBertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub norm_eps: f64,
    pub norm_bias: bool,
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub classifier_bias: bool,
    pub hidden_activation: HiddenAct,
    pub classifier_activation: HiddenAct,
    pub classifier_pooling: ClassifierPooling,
    pub pad_token_id: u32,
    /// Per layer: `Some(w)` for sliding-window attention (a token sees the tokens at most
    /// `w` positions away), `None` for global attention.
    pub windows: Vec<Option<usize>>,
    /// Rotary base of the global and of the sliding-window layers.
    pub global_rope_theta: f64,
    pub local_rope_theta: f64,
}

#[derive(Deserialize)]
struct RawModernBert {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    #[serde(default = "modernbert_positions")]
    max_position_embeddings: usize,
    #[serde(default = "modernbert_eps")]
    norm_eps: f64,
    #[serde(default)]
    norm_bias: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default)]
    classifier_bias: bool,
    #[serde(default = "default_hidden_act")]
    hidden_activation: HiddenAct,
    #[serde(default = "default_hidden_act")]
    classifier_activation: HiddenAct,
    #[serde(default = "cls_pooling")]
    classifier_pooling: ClassifierPooling,
    #[serde(default)]
    pad_token_id: u32,
    #[serde(default = "modernbert_window")]
    local_attention: usize,
    #[serde(default = "modernbert_global_every")]
    global_attn_every_n_layers: usize,
    #[serde(default)]
    layer_types: Option<Vec<String>>,
    #[serde(default)]
    rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    global_rope_theta: Option<f64>,
    #[serde(default)]
    local_rope_theta: Option<f64>,
}

fn modernbert_positions() -> usize {
    8192
}
fn modernbert_eps() -> f64 {
    1e-5
}
fn cls_pooling() -> ClassifierPooling {
    ClassifierPooling::Cls
}
fn modernbert_window() -> usize {
    128
}
fn modernbert_global_every() -> usize {
    3
}

impl ModernBertConfig {
    pub fn from_json(raw: &serde_json::Value) -> Result<Self> {
        let r: RawModernBert = serde_json::from_value(raw.clone())
            .map_err(|e| Error::invalid(format!("not a usable ModernBERT config: {e}")))?;
        let n = r.num_hidden_layers;
        let half_window = r.local_attention / 2;
        let windows = match &r.layer_types {
            Some(types) => {
                if types.len() != n {
                    return Err(Error::invalid(format!(
                        "layer_types lists {} layers for num_hidden_layers {n}",
                        types.len()
                    )));
                }
                types
                    .iter()
                    .map(|t| match t.as_str() {
                        "full_attention" => Ok(None),
                        "sliding_attention" => Ok(Some(half_window)),
                        other => Err(Error::invalid(format!(
                            "unknown layer type {other:?}; expected \"full_attention\" or \
                             \"sliding_attention\""
                        ))),
                    })
                    .collect::<Result<Vec<_>>>()?
            }
            None => {
                let every = r.global_attn_every_n_layers.max(1);
                (0..n)
                    .map(|i| (i % every != 0).then_some(half_window))
                    .collect()
            }
        };
        let theta = |kind: &str| {
            r.rope_parameters
                .as_ref()
                .and_then(|p| p.get(kind))
                .and_then(|p| p.get("rope_theta"))
                .and_then(serde_json::Value::as_f64)
        };
        let config = Self {
            vocab_size: r.vocab_size,
            hidden_size: r.hidden_size,
            intermediate_size: r.intermediate_size,
            num_attention_heads: r.num_attention_heads,
            max_position_embeddings: r.max_position_embeddings,
            norm_eps: r.norm_eps,
            norm_bias: r.norm_bias,
            attention_bias: r.attention_bias,
            mlp_bias: r.mlp_bias,
            classifier_bias: r.classifier_bias,
            hidden_activation: r.hidden_activation,
            classifier_activation: r.classifier_activation,
            classifier_pooling: r.classifier_pooling,
            pad_token_id: r.pad_token_id,
            windows,
            global_rope_theta: theta("full_attention")
                .or(r.global_rope_theta)
                .unwrap_or(160_000.0),
            local_rope_theta: theta("sliding_attention")
                .or(r.local_rope_theta)
                .unwrap_or(10_000.0),
        };
        config.validate(r.local_attention)?;
        Ok(config)
    }

    fn validate(&self, local_attention: usize) -> Result<()> {
        let heads = self.num_attention_heads;
        if self.hidden_size == 0 || heads == 0 || !self.hidden_size.is_multiple_of(heads) {
            return Err(Error::invalid(format!(
                "hidden_size {} is not a positive multiple of num_attention_heads {heads}",
                self.hidden_size
            )));
        }
        if !(self.hidden_size / heads).is_multiple_of(2) {
            return Err(Error::invalid(format!(
                "the head size {} is odd; rotary positions need an even one",
                self.hidden_size / heads
            )));
        }
        if self.windows.iter().any(Option::is_some)
            && local_attention > self.max_position_embeddings
        {
            return Err(Error::invalid(format!(
                "local_attention {local_attention} is larger than the position table \
                 (max_position_embeddings {})",
                self.max_position_embeddings
            )));
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The rotary angles for base `theta`: (max_position_embeddings, head_dim / 2)
    /// row-major, `position * theta^(-2i / head_dim)` as transformers' default RoPE.
    pub fn rotary_angles(&self, theta: f64) -> Vec<f32> {
        let d = self.head_dim();
        let inv_freq: Vec<f32> = (0..d / 2)
            .map(|i| (1.0 / theta.powf(2.0 * i as f64 / d as f64)) as f32)
            .collect();
        (0..self.max_position_embeddings)
            .flat_map(|p| inv_freq.iter().map(move |f| p as f32 * f))
            .collect()
    }
}

/// A Qwen3 decoder's `config.json` (`Qwen3ForCausalLM`, as Qwen3-Reranker): RMSNorm
/// pre-norm layers, grouped-query attention with RMS-normed queries and keys, rotary
/// positions, a SiLU-gated MLP, and the language-model head (tied to the embeddings or
/// not) whose "yes"/"no" rows give the reranker's score.
#[derive(Debug, Clone, Deserialize)]
pub struct Qwen3Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    #[serde(default)]
    pub head_dim: Option<usize>,
    pub max_position_embeddings: usize,
    #[serde(default = "qwen3_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default = "qwen3_act")]
    pub hidden_act: HiddenAct,
    /// transformers 4 writes `rope_theta`, transformers 5 `rope_parameters.rope_theta`.
    #[serde(default)]
    rope_theta: Option<f64>,
    #[serde(default)]
    rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    use_sliding_window: bool,
}

fn qwen3_eps() -> f64 {
    1e-6
}
fn qwen3_act() -> HiddenAct {
    HiddenAct::Silu
}

impl Qwen3Config {
    pub fn from_json(raw: &serde_json::Value) -> Result<Self> {
        let config: Self = serde_json::from_value(raw.clone())
            .map_err(|e| Error::invalid(format!("not a usable Qwen3 config: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    pub fn rope_theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|p| p.get("rope_theta"))
            .and_then(serde_json::Value::as_f64)
            .or(self.rope_theta)
            .unwrap_or(1_000_000.0)
    }

    /// The rotary angles: (max_position_embeddings, head_dim / 2) row-major,
    /// `position * theta^(-2i / head_dim)` as transformers' default RoPE.
    pub fn rotary_angles(&self) -> Vec<f32> {
        let (d, theta) = (self.head_dim(), self.rope_theta());
        let inv_freq: Vec<f32> = (0..d / 2)
            .map(|i| (1.0 / theta.powf(2.0 * i as f64 / d as f64)) as f32)
            .collect();
        (0..self.max_position_embeddings)
            .flat_map(|p| inv_freq.iter().map(move |f| p as f32 * f))
            .collect()
    }

    fn validate(&self) -> Result<()> {
        let (heads, kv_heads) = (self.num_attention_heads, self.num_key_value_heads);
        if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(Error::invalid(format!(
                "num_attention_heads {heads} is not a positive multiple of num_key_value_heads \
                 {kv_heads}"
            )));
        }
        if self.hidden_size == 0 || self.head_dim() == 0 || !self.head_dim().is_multiple_of(2) {
            return Err(Error::invalid(format!(
                "head_dim {} must be positive and even (rotary positions)",
                self.head_dim()
            )));
        }
        if self.hidden_act != HiddenAct::Silu {
            return Err(Error::invalid(format!(
                "hidden_act {:?} is not supported for Qwen3; only \"silu\"",
                self.hidden_act
            )));
        }
        let rope_type = [&self.rope_parameters, &self.rope_scaling]
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("rope_type").or_else(|| p.get("type")))
            .filter_map(serde_json::Value::as_str)
            .find(|t| *t != "default");
        if let Some(kind) = rope_type {
            return Err(Error::invalid(format!(
                "rope_type {kind:?} is not supported; only the default rotary positions"
            )));
        }
        if self.use_sliding_window {
            return Err(Error::invalid(
                "use_sliding_window is not supported for Qwen3 rerankers",
            ));
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
            Some("modernbert") => Ok(Family::ModernBert),
            Some(other) => Err(Error::UnsupportedArchitecture {
                found: other.to_string(),
                supported: "model_type bert, roberta, xlm-roberta, electra, distilbert, modernbert"
                    .to_string(),
            }),
        }
    }
}
