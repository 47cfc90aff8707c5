//! What a checkpoint is made of, whichever engine runs it: its family (which decides
//! position ids, token types and where the weights live) and its weights, found under
//! the prefix the encoder was saved with.

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::error::{Error, Result};
use crate::model::config::{Config, ModelConfig};
use crate::model::names;
use crate::model::source::ModelSource;
use crate::model::weights::load_weights;

pub const SUPPORTED_CLASSIFIERS: &str = "BertForSequenceClassification, \
     XLMRobertaForSequenceClassification, RobertaForSequenceClassification, \
     ElectraForSequenceClassification, DistilBertForSequenceClassification, \
     ModernBertForSequenceClassification, \
     Qwen3ForCausalLM (a yes/no reranker such as Qwen3-Reranker)";

/// The encoder family, which decides position ids, token types, weight names and the
/// classification head. All are BERT-style post-norm encoders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Bert,
    XlmRoberta,
    /// BERT's layers; embeddings of their own size, projected to the hidden size when
    /// it differs; a head with GELU instead of tanh.
    Electra,
    /// BERT's layers under other names, no token types, a head with ReLU.
    DistilBert,
    /// Not BERT-style: rotary positions, pre-norm, GeGLU, sliding-window layers; its own
    /// model (`score::candle::modernbert`) and config (`ModernBertConfig`).
    ModernBert,
    /// A causal decoder scored by its "yes"/"no" next-token logits (Qwen3-Reranker); its
    /// own models (`score::candle::qwen3`, `score::cpu::qwen3`) and config (`Qwen3Config`).
    Qwen3,
}

/// The function between a classification head's dense layer and its output projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadActivation {
    Tanh,
    Gelu,
    Relu,
}

impl Family {
    /// By `architectures[0]` of a sequence classifier's config.
    fn of_classifier(architecture: &str) -> Option<Self> {
        match architecture {
            "BertForSequenceClassification" => Some(Family::Bert),
            "XLMRobertaForSequenceClassification" | "RobertaForSequenceClassification" => {
                Some(Family::XlmRoberta)
            }
            "ElectraForSequenceClassification" => Some(Family::Electra),
            "DistilBertForSequenceClassification" => Some(Family::DistilBert),
            "ModernBertForSequenceClassification" => Some(Family::ModernBert),
            // Not a classifier in transformers' sense: the reranker reads two of the
            // language-model head's logits (see `score::prompt`).
            "Qwen3ForCausalLM" => Some(Family::Qwen3),
            _ => None,
        }
    }

    fn weight_prefixes(self) -> &'static [&'static str] {
        match self {
            Family::Bert => &["bert", ""],
            Family::XlmRoberta => &["roberta", ""],
            Family::Electra => &["electra", ""],
            Family::DistilBert => &["distilbert", ""],
            Family::ModernBert | Family::Qwen3 => &["model", ""],
        }
    }

    /// The word embeddings' name under the encoder, which tells where the encoder is.
    fn word_embeddings(self) -> &'static str {
        match self {
            Family::ModernBert => names::MODERNBERT_WORD_EMBEDDINGS,
            Family::Qwen3 => names::QWEN3_WORD_EMBEDDINGS,
            _ => names::BERT_WORD_EMBEDDINGS,
        }
    }

    /// Where a BERT-style family's layers' weights live.
    pub fn layout(self) -> Result<&'static names::Layout> {
        match self {
            Family::DistilBert => Ok(&names::DISTILBERT_LAYOUT),
            Family::Bert | Family::XlmRoberta | Family::Electra => Ok(&names::BERT_LAYOUT),
            Family::ModernBert | Family::Qwen3 => Err(not_bert_style()),
        }
    }

    /// Positions usable by tokens: RoBERTa's position table starts past the padding index.
    pub fn max_tokens(self, config: &Config) -> usize {
        match self {
            Family::XlmRoberta => config
                .max_position_embeddings
                .saturating_sub(config.pad_token_id as usize + 1),
            Family::Bert
            | Family::Electra
            | Family::DistilBert
            | Family::ModernBert
            | Family::Qwen3 => config.max_position_embeddings,
        }
    }

    pub fn input_scheme(self, config: &Config) -> InputScheme {
        match self {
            Family::Bert | Family::Electra => InputScheme {
                roberta_padding_idx: None,
                token_types: true,
            },
            // transformers' XLM-R tokenizers send no token_type_ids: the model uses zeros.
            Family::XlmRoberta => InputScheme {
                roberta_padding_idx: Some(config.pad_token_id),
                token_types: false,
            },
            // DistilBERT has no token-type table at all; ModernBERT's positions are
            // rotary, counted from 0 as BERT's.
            Family::DistilBert | Family::ModernBert | Family::Qwen3 => InputScheme {
                roberta_padding_idx: None,
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
        let Some(family) = Family::of_classifier(&arch) else {
            return Err(Error::UnsupportedArchitecture {
                found: if arch.is_empty() {
                    "<none in config.json>".into()
                } else {
                    arch
                },
                supported: SUPPORTED_CLASSIFIERS.to_string(),
            });
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

    /// The classification head on the first token: its dense layer's weights, the
    /// activation after it, and the output projection's weights.
    pub fn head(&self) -> Result<(VarBuilder<'static>, HeadActivation, VarBuilder<'static>)> {
        Ok(match self.family {
            Family::Bert => (
                self.encoder_vb().pp(names::BERT_POOLER),
                HeadActivation::Tanh,
                self.vb.pp(names::BERT_CLASSIFIER),
            ),
            Family::XlmRoberta => (
                self.vb.pp(names::ROBERTA_HEAD_DENSE),
                HeadActivation::Tanh,
                self.vb.pp(names::ROBERTA_HEAD_OUT),
            ),
            // transformers' ElectraClassificationHead: "although BERT uses tanh here, it
            // seems Electra authors used gelu".
            Family::Electra => (
                self.vb.pp(names::ROBERTA_HEAD_DENSE),
                HeadActivation::Gelu,
                self.vb.pp(names::ROBERTA_HEAD_OUT),
            ),
            Family::DistilBert => (
                self.vb.pp(names::DISTILBERT_PRE_CLASSIFIER),
                HeadActivation::Relu,
                self.vb.pp(names::DISTILBERT_CLASSIFIER),
            ),
            Family::ModernBert | Family::Qwen3 => return Err(not_bert_style()),
        })
    }
}

fn find_prefix(has: &dyn Fn(&str) -> bool, family: Family) -> Result<String> {
    let name = family.word_embeddings();
    for prefix in family.weight_prefixes() {
        if has(&names::under(prefix, name)) {
            return Ok(prefix.to_string());
        }
    }
    Err(Error::invalid(format!(
        "the weights have no encoder embeddings (looked for {name} under the prefixes {:?})",
        family.weight_prefixes()
    )))
}

/// ModernBERT or a decoder reached code written for the BERT-style families: a bug,
/// reported as such.
fn not_bert_style() -> Error {
    Error::invalid("this model has no BERT-style layout or head (internal error)")
}
