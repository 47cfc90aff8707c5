//! The one abstraction over forward passes (as TEI's `Model` trait): a model runs a
//! batch of tokenized inputs and returns logits or pooled embeddings. The encoders above
//! it (`CrossEncoder`, `BiEncoder`) tokenize, batch and post-process; an engine only
//! computes. Two implement it today: crossrank's CPU engine (`cpu`) and candle's
//! reference model (`candle`, which also runs on GPUs); a new architecture adds its own.

use candle_core::Device;
use tokenizers::Encoding;

use crate::error::{Error, Result};
use crate::model::checkpoint::{Checkpoint, Family};
use crate::model::config::{ModelConfig, ModernBertConfig, Qwen3Config};
use crate::model::precision::Precision;
use crate::score::pooling::Pooling;
use crate::score::prompt::YesNoTokens;
use crate::score::{candle, cpu};

pub(crate) trait Engine: Send + Sync {
    /// A sequence classifier's logits: (batch, num_labels) row-major.
    fn predict(&self, _batch: &[&Encoding]) -> Result<Vec<f32>> {
        Err(Error::invalid("this model has no classification head"))
    }

    /// Pooled, unnormalized embeddings: (batch, hidden) row-major.
    fn embed(&self, _batch: &[&Encoding], _pooling: Pooling) -> Result<Vec<f32>> {
        Err(Error::invalid("this model does not embed texts"))
    }
}

/// Where a model runs: crossrank's CPU engine, or candle on `device` (every device but
/// the CPU; on the CPU it is the CPU engine's test reference).
pub(crate) enum Backend {
    Cpu,
    Candle(Device),
}

impl Backend {
    /// The CPU engine on the CPU, candle elsewhere.
    pub fn for_device(device: Device) -> Self {
        if device.is_cpu() {
            Self::Cpu
        } else {
            Self::Candle(device)
        }
    }

    /// Reduced precisions run on the CPU engine only.
    fn check_precision(&self, precision: Precision) -> Result<()> {
        match self {
            Self::Candle(device) if precision != Precision::Float32 => {
                Err(Error::invalid(format!(
                    "precision {:?} runs on the CPU only; use precision=\"float32\" on {device:?}",
                    precision.name()
                )))
            }
            _ => Ok(()),
        }
    }

    /// A sequence classifier: the encoder and its classification head.
    pub fn classifier(
        &self,
        ckpt: &Checkpoint,
        model_config: &ModelConfig,
        num_labels: usize,
        precision: Precision,
    ) -> Result<Box<dyn Engine>> {
        self.check_precision(precision)?;
        if ckpt.family == Family::ModernBert {
            let config = ModernBertConfig::from_json(&model_config.raw)?;
            return Ok(match self {
                Self::Cpu => Box::new(cpu::modernbert::Classifier::load(
                    ckpt, &config, num_labels, precision,
                )?),
                Self::Candle(device) => Box::new(candle::modernbert::Classifier::load(
                    ckpt, &config, num_labels, device,
                )?),
            });
        }
        let config = &model_config.encoder;
        Ok(match self {
            Self::Cpu => Box::new(cpu::Classifier::load(ckpt, config, num_labels, precision)?),
            Self::Candle(device) => {
                Box::new(candle::Classifier::load(ckpt, config, num_labels, device)?)
            }
        })
    }

    /// A decoder reranker: the "yes"/"no" logits of its language-model head at a prompt's
    /// last token.
    pub fn yes_no_scorer(
        &self,
        ckpt: &Checkpoint,
        model_config: &ModelConfig,
        tokens: YesNoTokens,
        precision: Precision,
    ) -> Result<Box<dyn Engine>> {
        self.check_precision(precision)?;
        let config = Qwen3Config::from_json(&model_config.raw)?;
        Ok(match self {
            Self::Cpu => Box::new(cpu::qwen3::Qwen3Scorer::load(
                ckpt, &config, tokens, precision,
            )?),
            Self::Candle(device) => Box::new(candle::qwen3::Qwen3Scorer::load(
                ckpt, &config, tokens, device,
            )?),
        })
    }

    /// A bare encoder whose token states are pooled (any head is ignored).
    pub fn embedder(
        &self,
        ckpt: &Checkpoint,
        model_config: &ModelConfig,
        precision: Precision,
    ) -> Result<Box<dyn Engine>> {
        self.check_precision(precision)?;
        if ckpt.family == Family::ModernBert {
            let config = ModernBertConfig::from_json(&model_config.raw)?;
            return Ok(match self {
                Self::Cpu => Box::new(cpu::modernbert::Embedder::load(ckpt, &config, precision)?),
                Self::Candle(device) => {
                    Box::new(candle::modernbert::Embedder::load(ckpt, &config, device)?)
                }
            });
        }
        let config = &model_config.encoder;
        Ok(match self {
            Self::Cpu => Box::new(cpu::Embedder::load(ckpt, config, precision)?),
            Self::Candle(device) => Box::new(candle::Embedder::load(ckpt, config, device)?),
        })
    }

    /// The device the checkpoint's weights are loaded on.
    pub fn device(&self) -> Device {
        match self {
            Self::Cpu => Device::Cpu,
            Self::Candle(device) => device.clone(),
        }
    }
}
