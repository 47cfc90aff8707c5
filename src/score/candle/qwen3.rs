//! A Qwen3 decoder reranker on candle-transformers' Qwen3 (`ModelForCausalLM`), one prompt
//! at a time: the score is `logit(yes) - logit(no)` at the last token. The reference the
//! CPU engine's decoder (`score::cpu::qwen3`) is tested against, and the engine on other
//! devices.

use std::sync::Mutex;

use candle_core::{Device, Tensor};
use candle_transformers::models::qwen3::{Config as CandleConfig, ModelForCausalLM};
use tokenizers::Encoding;

use crate::error::{Error, Result};
use crate::model::checkpoint::Checkpoint;
use crate::model::config::Qwen3Config;
use crate::score::engine::Engine;
use crate::score::prompt::YesNoTokens;

pub(crate) struct Qwen3Scorer {
    /// candle's model keeps a key/value cache between calls, hence `&mut` and the lock.
    model: Mutex<ModelForCausalLM>,
    tokens: YesNoTokens,
    device: Device,
}

impl Qwen3Scorer {
    pub fn load(
        ckpt: &Checkpoint,
        c: &Qwen3Config,
        tokens: YesNoTokens,
        device: &Device,
    ) -> Result<Self> {
        let config = CandleConfig {
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            intermediate_size: c.intermediate_size,
            num_hidden_layers: c.num_hidden_layers,
            num_attention_heads: c.num_attention_heads,
            head_dim: c.head_dim(),
            attention_bias: c.attention_bias,
            num_key_value_heads: c.num_key_value_heads,
            max_position_embeddings: c.max_position_embeddings,
            sliding_window: None,
            max_window_layers: c.num_hidden_layers,
            tie_word_embeddings: c.tie_word_embeddings,
            rope_theta: c.rope_theta(),
            rms_norm_eps: c.rms_norm_eps,
            use_sliding_window: false,
            hidden_act: candle_nn::Activation::Silu,
        };
        for id in [Some(tokens.yes), tokens.no].into_iter().flatten() {
            if id as usize >= c.vocab_size {
                return Err(Error::invalid(format!(
                    "the score token id {id} is outside the vocabulary ({} tokens)",
                    c.vocab_size
                )));
            }
        }
        Ok(Self {
            model: Mutex::new(ModelForCausalLM::new(&config, ckpt.vb.clone())?),
            tokens,
            device: device.clone(),
        })
    }
}

impl Engine for Qwen3Scorer {
    fn predict(&self, batch: &[&Encoding]) -> Result<Vec<f32>> {
        let mut model = self
            .model
            .lock()
            .map_err(|_| Error::invalid("the model was poisoned by a panic in another thread"))?;
        batch
            .iter()
            .map(|encoding| {
                model.clear_kv_cache();
                let ids = Tensor::new(encoding.get_ids(), &self.device)?.unsqueeze(0)?;
                let logits: Vec<f32> = model.forward(&ids, 0)?.flatten_all()?.to_vec1()?;
                let yes = logits[self.tokens.yes as usize];
                Ok(match self.tokens.no {
                    Some(no) => yes - logits[no as usize],
                    None => yes,
                })
            })
            .collect()
    }
}
