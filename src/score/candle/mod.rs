//! candle's forward pass: the reference the CPU engine is tested against, and the engine
//! on devices other than the CPU (CUDA, Metal builds). Padded batches, as transformers.

pub(crate) mod bert;
pub(crate) mod modernbert;
pub(crate) mod qwen3;

use candle_core::{Device, Tensor, D};
use tokenizers::Encoding;

use crate::error::{Error, Result};
use crate::model::checkpoint::{Checkpoint, HeadActivation, InputScheme};
use crate::model::config::Config;
use crate::score::engine::Engine;
use crate::score::pooling::Pooling;
use bert::{cls_token, BertModel, EncoderInput, Linear};

/// A sequence-classification head on the first token: dense, an activation, then the
/// output projection. BERT (pooler + classifier, tanh), XLM-R (classifier.dense +
/// out_proj, tanh), ELECTRA (the same names, GELU) and DistilBERT (pre_classifier +
/// classifier, ReLU) have this shape (`Checkpoint::head`).
pub(crate) struct ClassificationHead {
    dense: Linear,
    activation: HeadActivation,
    out: Linear,
}

impl ClassificationHead {
    pub fn load(ckpt: &Checkpoint, hidden: usize, num_labels: usize) -> Result<Self> {
        let (dense_vb, activation, out_vb) = ckpt.head()?;
        Ok(Self {
            dense: Linear::load(hidden, hidden, dense_vb)?,
            activation,
            out: Linear::load(hidden, num_labels, out_vb)?,
        })
    }

    /// Logits, (batch, num_labels), from the last hidden state (batch, seq, hidden).
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let dense = self.dense.forward(&cls_token(hidden)?)?;
        let pooled = match self.activation {
            HeadActivation::Tanh => dense.tanh()?,
            HeadActivation::Gelu => dense.gelu_erf()?,
            HeadActivation::Relu => dense.relu()?,
        };
        self.out.forward(&pooled)
    }
}

/// How a batch is padded for a checkpoint, and on which device.
struct Inputs {
    scheme: InputScheme,
    pad_id: u32,
    device: Device,
}

impl Inputs {
    fn new(ckpt: &Checkpoint, config: &Config, device: &Device) -> Self {
        Self {
            scheme: ckpt.family.input_scheme(config),
            pad_id: config.pad_token_id,
            device: device.clone(),
        }
    }

    fn make(&self, batch: &[&Encoding]) -> Result<EncoderInput> {
        make_input(batch, self.scheme, self.pad_id, &self.device)
    }
}

/// Encoder + classification head: the cross-encoder's model.
pub(crate) struct Classifier {
    encoder: BertModel,
    head: ClassificationHead,
    inputs: Inputs,
}

impl Classifier {
    pub fn load(
        ckpt: &Checkpoint,
        config: &Config,
        num_labels: usize,
        device: &Device,
    ) -> Result<Self> {
        Ok(Self {
            encoder: BertModel::load(ckpt.encoder_vb(), config, ckpt.family.layout()?)?,
            head: ClassificationHead::load(ckpt, config.hidden_size, num_labels)?,
            inputs: Inputs::new(ckpt, config, device),
        })
    }
}

impl Engine for Classifier {
    fn predict(&self, batch: &[&Encoding]) -> Result<Vec<f32>> {
        let hidden = self.encoder.forward(&self.inputs.make(batch)?)?;
        Ok(self
            .head
            .forward(&hidden)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }
}

/// A bare encoder whose token states are pooled: the bi-encoder's model.
pub(crate) struct Embedder {
    encoder: BertModel,
    inputs: Inputs,
}

impl Embedder {
    pub fn load(ckpt: &Checkpoint, config: &Config, device: &Device) -> Result<Self> {
        Ok(Self {
            encoder: BertModel::load(ckpt.encoder_vb(), config, ckpt.family.layout()?)?,
            inputs: Inputs::new(ckpt, config, device),
        })
    }
}

impl Engine for Embedder {
    fn embed(&self, batch: &[&Encoding], pooling: Pooling) -> Result<Vec<f32>> {
        let input = self.inputs.make(batch)?;
        let hidden = self.encoder.forward(&input)?;
        let pooled = pool(pooling, &hidden, &input.attention_mask)?;
        Ok(pooled.flatten_all()?.to_vec1::<f32>()?)
    }
}

/// `hidden`: (batch, seq, dim); `mask`: (batch, seq) of 0/1. Returns (batch, dim).
fn pool(pooling: Pooling, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask3 = mask.unsqueeze(D::Minus1)?; // (batch, seq, 1)
    let summed = || -> Result<(Tensor, Tensor)> {
        let sum = hidden.broadcast_mul(&mask3)?.sum(1)?;
        let count = mask.sum_keepdim(1)?.clamp(1e-9, f64::INFINITY)?;
        Ok((sum, count))
    };
    Ok(match pooling {
        Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
        Pooling::Mean => {
            let (sum, count) = summed()?;
            sum.broadcast_div(&count)?
        }
        Pooling::MeanSqrtLen => {
            let (sum, count) = summed()?;
            sum.broadcast_div(&count.sqrt()?)?
        }
        Pooling::Max => {
            // As sentence-transformers: padding set to -1e9 before the max.
            let fill = ((mask3.ones_like()? - &mask3)? * -1e9)?;
            hidden.broadcast_mul(&mask3)?.broadcast_add(&fill)?.max(1)?
        }
    })
}

/// Pads the encodings of one batch into model inputs.
pub(crate) fn make_input(
    encodings: &[&Encoding],
    scheme: InputScheme,
    pad_id: u32,
    device: &Device,
) -> Result<EncoderInput> {
    let batch = encodings.len();
    let seq_len = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
    if batch == 0 || seq_len == 0 {
        return Err(Error::invalid("cannot build an empty batch"));
    }
    let size = batch * seq_len;
    let (mut ids, mut types, mut positions, mut mask) = (
        vec![pad_id; size],
        vec![0u32; size],
        vec![0u32; size],
        vec![0f32; size],
    );
    for (row, enc) in encodings.iter().enumerate() {
        let base = row * seq_len;
        for (j, (&id, &type_id)) in enc.get_ids().iter().zip(enc.get_type_ids()).enumerate() {
            ids[base + j] = id;
            if scheme.token_types {
                types[base + j] = type_id;
            }
            mask[base + j] = 1.0;
        }
        for (j, position) in scheme.positions(enc.get_ids()).enumerate() {
            positions[base + j] = position;
        }
        // Padding: RoBERTa's padding position; BERT's padded positions are masked, any do.
        for j in enc.len()..seq_len {
            positions[base + j] = scheme.roberta_padding_idx.unwrap_or(j as u32);
        }
    }
    let shape = (batch, seq_len);
    Ok(EncoderInput {
        input_ids: Tensor::from_vec(ids, shape, device)?,
        token_type_ids: Tensor::from_vec(types, shape, device)?,
        position_ids: Tensor::from_vec(positions, shape, device)?,
        attention_mask: Tensor::from_vec(mask, shape, device)?,
    })
}
