//! `XLMRobertaForSequenceClassification` (the bge-reranker family). The encoder is BERT's;
//! XLM-R differs in its position ids (offset past the padding index, see
//! `InputScheme::roberta`) and in its head: dense + tanh + out_proj on the first token.

use candle_nn::VarBuilder;

use super::bert::{cls_token, BertModel, Config, EncoderInput, Linear};
use crate::error::Result;

pub struct XLMRobertaForSequenceClassification {
    pub roberta: BertModel,
    dense: Linear,
    out_proj: Linear,
}

impl XLMRobertaForSequenceClassification {
    pub fn load(vb: VarBuilder, prefix: &str, config: &Config, num_labels: usize) -> Result<Self> {
        let encoder_vb = if prefix.is_empty() {
            vb.clone()
        } else {
            vb.pp(prefix)
        };
        let h = config.hidden_size;
        Ok(Self {
            roberta: BertModel::load(encoder_vb, config)?,
            dense: Linear::load(h, h, vb.pp("classifier.dense"))?,
            out_proj: Linear::load(h, num_labels, vb.pp("classifier.out_proj"))?,
        })
    }

    /// Logits, (batch, num_labels).
    pub fn forward(&self, input: &EncoderInput) -> Result<candle_core::Tensor> {
        let hidden = self.roberta.forward(input)?;
        let x = self.dense.forward(&cls_token(&hidden)?)?.tanh()?;
        self.out_proj.forward(&x)
    }
}
