//! ModernBERT in candle, as transformers' `modeling_modernbert.py`: token embeddings and a
//! norm, pre-norm layers with rotary positions (one base for the global layers, another
//! for the sliding-window ones), GeGLU feed-forward, a final norm; no biases unless the
//! config asks. Padded batches; a sliding-window layer sees the keys at most `w` positions
//! away. The reference the CPU engine's ModernBERT (`score::cpu::modernbert`) is tested
//! against, and the engine on other devices.

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use tokenizers::Encoding;

use crate::error::{Error, Result};
use crate::model::checkpoint::Checkpoint;
use crate::model::config::{ClassifierPooling, HiddenAct, ModernBertConfig};
use crate::model::names::modernbert as names;
use crate::score::engine::Engine;
use crate::score::pooling::Pooling;

fn linear(vb: VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Linear> {
    Ok(candle_nn::linear_b(in_dim, out_dim, bias, vb)?)
}

fn norm(vb: VarBuilder, c: &ModernBertConfig) -> Result<LayerNorm> {
    let h = c.hidden_size;
    Ok(if c.norm_bias {
        candle_nn::layer_norm(h, c.norm_eps, vb)?
    } else {
        LayerNorm::new_no_bias(vb.get(h, "weight")?, c.norm_eps)
    })
}

fn activate(x: &Tensor, act: HiddenAct) -> Result<Tensor> {
    Ok(match act {
        HiddenAct::Gelu => x.gelu_erf()?,
        HiddenAct::GeluNew | HiddenAct::GeluPytorchTanh => x.gelu()?,
        HiddenAct::Relu => x.relu()?,
        HiddenAct::Silu => x.silu()?,
    })
}

/// cos / sin of the rotary angles, (positions, head_dim / 2), for one base.
struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    fn new(c: &ModernBertConfig, theta: f64, device: &Device) -> Result<Self> {
        let shape = (c.max_position_embeddings, c.head_dim() / 2);
        let angles = Tensor::from_vec(c.rotary_angles(theta), shape, device)?;
        Ok(Self {
            cos: angles.cos()?,
            sin: angles.sin()?,
        })
    }

    /// `x`: (batch, heads, seq, head_dim), rotated as transformers' `rotate_half`.
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let seq = x.dim(2)?;
        let (cos, sin) = (self.cos.narrow(0, 0, seq)?, self.sin.narrow(0, 0, seq)?);
        Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, &cos, &sin)?)
    }
}

struct Layer {
    attn_norm: Option<LayerNorm>,
    qkv: Linear,
    attn_out: Linear,
    mlp_norm: LayerNorm,
    mlp_in: Linear,
    mlp_out: Linear,
    /// `Some(w)`: sliding-window attention of half-width `w`.
    window: Option<usize>,
}

impl Layer {
    fn load(vb: VarBuilder, c: &ModernBertConfig, index: usize) -> Result<Self> {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        Ok(Self {
            attn_norm: (index > 0)
                .then(|| norm(vb.pp(names::ATTENTION_NORM), c))
                .transpose()?,
            qkv: linear(vb.pp(names::QKV), h, 3 * h, c.attention_bias)?,
            attn_out: linear(vb.pp(names::ATTENTION_OUTPUT), h, h, c.attention_bias)?,
            mlp_norm: norm(vb.pp(names::MLP_NORM), c)?,
            mlp_in: linear(vb.pp(names::MLP_INPUT), h, 2 * i, c.mlp_bias)?,
            mlp_out: linear(vb.pp(names::MLP_OUTPUT), i, h, c.mlp_bias)?,
            window: c.windows[index],
        })
    }
}

/// The ModernBERT encoder; `forward` returns the last hidden state after the final norm.
pub struct ModernBertModel {
    embeddings: Embedding,
    embeddings_norm: LayerNorm,
    layers: Vec<Layer>,
    final_norm: LayerNorm,
    global_rotary: Rotary,
    local_rotary: Rotary,
    config: ModernBertConfig,
}

impl ModernBertModel {
    /// `vb` points at the encoder (the `model.` prefix applied).
    pub fn load(vb: VarBuilder, c: &ModernBertConfig, device: &Device) -> Result<Self> {
        let h = c.hidden_size;
        let layers = (0..c.windows.len())
            .map(|i| Layer::load(vb.pp(names::layer(i)), c, i))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embeddings: Embedding::new(
                vb.pp(names::EMBEDDINGS).get((c.vocab_size, h), "weight")?,
                h,
            ),
            embeddings_norm: norm(vb.pp(names::EMBEDDINGS_NORM), c)?,
            layers,
            final_norm: norm(vb.pp(names::FINAL_NORM), c)?,
            global_rotary: Rotary::new(c, c.global_rope_theta, device)?,
            local_rotary: Rotary::new(c, c.local_rope_theta, device)?,
            config: c.clone(),
        })
    }

    /// `ids`: (batch, seq) u32; `mask`: (batch, seq) f32, 1 for tokens.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        let device = ids.device();
        // A key is seen when it is a token and (sliding layers) within the window; the
        // rest get the most negative f32 once, as transformers' masks do.
        let keys = mask.reshape((b, 1, 1, l))?;
        let bias = |allowed: &Tensor| -> Result<Tensor> {
            Ok(((1.0 - allowed)? * f32::MIN as f64)?.to_dtype(DType::F32)?)
        };
        let global_bias = bias(&keys)?;
        let window_bias = |w: usize| -> Result<Tensor> {
            let near: Vec<f32> = (0..l)
                .flat_map(|i| (0..l).map(move |j| f32::from(i.abs_diff(j) <= w)))
                .collect();
            let near = Tensor::from_vec(near, (1, 1, l, l), device)?;
            bias(&keys.broadcast_mul(&near)?)
        };
        // Every sliding layer of a model has the same window.
        let local_bias = self
            .layers
            .iter()
            .find_map(|layer| layer.window)
            .map(window_bias)
            .transpose()?;
        let mut x = self
            .embeddings_norm
            .forward(&self.embeddings.forward(ids)?)?;
        let (heads, d) = (self.config.num_attention_heads, self.config.head_dim());
        for layer in &self.layers {
            let (rotary, mask_bias) = match (layer.window, &local_bias) {
                (Some(_), Some(local)) => (&self.local_rotary, local),
                _ => (&self.global_rotary, &global_bias),
            };
            let normed = match &layer.attn_norm {
                Some(n) => n.forward(&x)?,
                None => x.clone(),
            };
            let qkv = layer
                .qkv
                .forward(&normed)?
                .reshape((b, l, 3, heads, d))?
                .permute((2, 0, 3, 1, 4))?;
            let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?.contiguous()?);
            let (q, k) = (rotary.apply(&q)?, rotary.apply(&k)?);
            let scores =
                (q.matmul(&k.t()?)? * (1.0 / (d as f64).sqrt()))?.broadcast_add(mask_bias)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let context = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((b, l, heads * d))?;
            x = (x + layer.attn_out.forward(&context)?)?;
            let inner = layer.mlp_in.forward(&layer.mlp_norm.forward(&x)?)?;
            let half = self.config.intermediate_size;
            let (input, gate) = (
                inner.narrow(D::Minus1, 0, half)?,
                inner.narrow(D::Minus1, half, half)?,
            );
            let glu = (activate(&input, self.config.hidden_activation)? * gate)?;
            x = (x + layer.mlp_out.forward(&glu)?)?;
        }
        Ok(self.final_norm.forward(&x)?)
    }
}

/// Pads a batch: ids (pad token past each sequence's end) and the 0/1 mask.
fn pad(batch: &[&Encoding], pad_id: u32, device: &Device) -> Result<(Tensor, Tensor)> {
    let l = batch.iter().map(|e| e.len()).max().unwrap_or(0);
    if batch.is_empty() || l == 0 {
        return Err(Error::invalid("cannot build an empty batch"));
    }
    let mut ids = vec![pad_id; batch.len() * l];
    let mut mask = vec![0f32; batch.len() * l];
    for (row, e) in batch.iter().enumerate() {
        ids[row * l..][..e.len()].copy_from_slice(e.get_ids());
        mask[row * l..][..e.len()].fill(1.0);
    }
    Ok((
        Tensor::from_vec(ids, (batch.len(), l), device)?,
        Tensor::from_vec(mask, (batch.len(), l), device)?,
    ))
}

/// `ModernBertForSequenceClassification`: the encoder, first-token or mean pooling, then
/// dense, activation, norm and the classifier.
pub(crate) struct Classifier {
    model: ModernBertModel,
    dense: Linear,
    head_norm: LayerNorm,
    classifier: Linear,
    device: Device,
}

impl Classifier {
    pub fn load(
        ckpt: &Checkpoint,
        config: &ModernBertConfig,
        num_labels: usize,
        device: &Device,
    ) -> Result<Self> {
        let h = config.hidden_size;
        Ok(Self {
            model: ModernBertModel::load(ckpt.encoder_vb(), config, device)?,
            dense: linear(ckpt.vb.pp(names::HEAD_DENSE), h, h, config.classifier_bias)?,
            head_norm: norm(ckpt.vb.pp(names::HEAD_NORM), config)?,
            classifier: linear(ckpt.vb.pp(names::CLASSIFIER), h, num_labels, true)?,
            device: device.clone(),
        })
    }
}

impl Engine for Classifier {
    fn predict(&self, batch: &[&Encoding]) -> Result<Vec<f32>> {
        let c = &self.model.config;
        let (ids, mask) = pad(batch, c.pad_token_id, &self.device)?;
        let hidden = self.model.forward(&ids, &mask)?;
        let pooled = match c.classifier_pooling {
            ClassifierPooling::Cls => super::pool(Pooling::Cls, &hidden, &mask)?,
            ClassifierPooling::Mean => super::pool(Pooling::Mean, &hidden, &mask)?,
        };
        let x = activate(&self.dense.forward(&pooled)?, c.classifier_activation)?;
        let logits = self.classifier.forward(&self.head_norm.forward(&x)?)?;
        Ok(logits.flatten_all()?.to_vec1::<f32>()?)
    }
}

/// A bare ModernBERT encoder whose token states are pooled: the bi-encoder's model.
pub(crate) struct Embedder {
    model: ModernBertModel,
    device: Device,
}

impl Embedder {
    pub fn load(ckpt: &Checkpoint, config: &ModernBertConfig, device: &Device) -> Result<Self> {
        Ok(Self {
            model: ModernBertModel::load(ckpt.encoder_vb(), config, device)?,
            device: device.clone(),
        })
    }
}

impl Engine for Embedder {
    fn embed(&self, batch: &[&Encoding], pooling: Pooling) -> Result<Vec<f32>> {
        let (ids, mask) = pad(batch, self.model.config.pad_token_id, &self.device)?;
        let hidden = self.model.forward(&ids, &mask)?;
        Ok(super::pool(pooling, &hidden, &mask)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }
}
