//! The BERT encoder in candle, as in transformers' `modeling_bert.py`.
//!
//! It also serves XLM-RoBERTa (same layers; only position ids and the head differ: see
//! `InputScheme` and `ClassificationHead`), ELECTRA (embeddings of their own width,
//! projected) and DistilBERT (other weight names, no token types: `names::Layout`). Query, key and value projections are fused into one
//! matrix at load time so that each layer does one GEMM for them instead of three.

use candle_core::{DType, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder};

use crate::error::Result;
use crate::model::config::{Config, HiddenAct};
use crate::model::names::{self, Layout};

/// One padded batch, all `(batch, seq_len)`: ids as u32, the attention mask as f32 (1 = token).
pub struct EncoderInput {
    pub input_ids: Tensor,
    pub token_type_ids: Tensor,
    pub position_ids: Tensor,
    pub attention_mask: Tensor,
}

/// `x @ w^T + b` as one GEMM over all tokens, whatever the leading dimensions.
#[derive(Debug, Clone)]
pub struct Linear {
    weight_t: Tensor,
    bias: Tensor,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Tensor) -> Result<Self> {
        Ok(Self {
            weight_t: weight.t()?.contiguous()?,
            bias,
        })
    }

    pub fn load(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        Self::new(
            vb.get((out_dim, in_dim), "weight")?,
            vb.get(out_dim, "bias")?,
        )
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim;
        let y = x
            .reshape((rows, in_dim))?
            .matmul(&self.weight_t)?
            .broadcast_add(&self.bias)?;
        let mut out_dims = dims;
        *out_dims.last_mut().expect("tensor has at least one dim") = self.weight_t.dim(1)?;
        Ok(y.reshape(out_dims)?)
    }
}

fn layer_norm(size: usize, eps: f64, vb: VarBuilder) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        vb.get(size, "weight")?,
        vb.get(size, "bias")?,
        eps,
    ))
}

struct Embeddings {
    word: Embedding,
    position: Embedding,
    token_type: Option<Embedding>,
    layer_norm: LayerNorm,
    /// ELECTRA: embedding width -> hidden size, when they differ.
    project: Option<Linear>,
}

impl Embeddings {
    /// `vb`: the encoder's weights (the embeddings block and ELECTRA's projection beside it).
    fn load(vb: &VarBuilder, c: &Config, layout: &Layout) -> Result<Self> {
        let e = c.embedding_width();
        let emb = vb.pp(names::EMBEDDINGS);
        let table = |name: &str, rows: usize| -> Result<Embedding> {
            Ok(Embedding::new(emb.pp(name).get((rows, e), "weight")?, e))
        };
        Ok(Self {
            word: table(names::WORD_EMBEDDINGS, c.vocab_size)?,
            position: table(names::POSITION_EMBEDDINGS, c.max_position_embeddings)?,
            token_type: layout
                .token_type_embeddings
                .map(|name| table(name, c.type_vocab_size))
                .transpose()?,
            layer_norm: layer_norm(e, c.layer_norm_eps, emb.pp(names::LAYER_NORM))?,
            project: (e != c.hidden_size)
                .then(|| Linear::load(e, c.hidden_size, vb.pp(names::EMBEDDINGS_PROJECT)))
                .transpose()?,
        })
    }

    fn forward(&self, input: &EncoderInput) -> Result<Tensor> {
        let x = self.word.forward(&input.input_ids)?;
        let mut x = (x + self.position.forward(&input.position_ids)?)?;
        if let Some(token_type) = &self.token_type {
            x = (x + token_type.forward(&input.token_type_ids)?)?;
        }
        let x = self.layer_norm.forward(&x)?;
        match &self.project {
            Some(project) => project.forward(&x),
            None => Ok(x),
        }
    }
}

struct Layer {
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
    num_heads: usize,
    head_dim: usize,
    act: HiddenAct,
}

impl Layer {
    fn load(vb: VarBuilder, c: &Config, layout: &Layout) -> Result<Self> {
        let h = c.hidden_size;
        let projections = [layout.query, layout.key, layout.value].map(|p| vb.pp(p));
        let weight = Tensor::cat(
            &projections
                .iter()
                .map(|p| p.get((h, h), "weight"))
                .collect::<candle_core::Result<Vec<_>>>()?,
            0,
        )?;
        let bias = Tensor::cat(
            &projections
                .iter()
                .map(|p| p.get(h, "bias"))
                .collect::<candle_core::Result<Vec<_>>>()?,
            0,
        )?;
        Ok(Self {
            qkv: Linear::new(weight, bias)?,
            attention_out: Linear::load(h, h, vb.pp(layout.attention_output))?,
            attention_norm: layer_norm(h, c.layer_norm_eps, vb.pp(layout.attention_norm))?,
            intermediate: Linear::load(h, c.intermediate_size, vb.pp(layout.intermediate))?,
            output: Linear::load(c.intermediate_size, h, vb.pp(layout.output))?,
            output_norm: layer_norm(h, c.layer_norm_eps, vb.pp(layout.output_norm))?,
            num_heads: c.num_attention_heads,
            head_dim: h / c.num_attention_heads,
            act: c.hidden_act,
        })
    }

    /// `x`: (batch, seq, hidden); `mask_bias`: (batch, 1, 1, seq), 0 for tokens and a
    /// large negative number for padding.
    fn forward(&self, x: &Tensor, mask_bias: &Tensor) -> Result<Tensor> {
        let (b, l, h) = x.dims3()?;
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((b, l, 3, self.num_heads, self.head_dim))?;
        let heads = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(2, i, 1)?
                .squeeze(2)?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (q, k, v) = (heads(0)?, heads(1)?, heads(2)?);

        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask_bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, l, h))?;

        let x = self
            .attention_norm
            .forward(&(self.attention_out.forward(&context)? + x)?)?;
        let inner = self.intermediate.forward(&x)?;
        let inner = match self.act {
            HiddenAct::Gelu => inner.gelu_erf()?,
            HiddenAct::GeluNew | HiddenAct::GeluPytorchTanh => inner.gelu()?,
            HiddenAct::Relu => inner.relu()?,
            HiddenAct::Silu => inner.silu()?,
        };
        Ok(self
            .output_norm
            .forward(&(self.output.forward(&inner)? + x)?)?)
    }
}

/// The transformer encoder: embeddings then `num_hidden_layers` layers.
pub struct BertModel {
    embeddings: Embeddings,
    layers: Vec<Layer>,
}

impl BertModel {
    /// `vb` points at the encoder (the `bert.` / `roberta.` / ... prefix already
    /// applied); `layout` says where its layers' weights live.
    pub fn load(vb: VarBuilder, config: &Config, layout: &Layout) -> Result<Self> {
        config.validate()?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(layout.layer(i)), config, layout))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embeddings: Embeddings::load(&vb, config, layout)?,
            layers,
        })
    }

    /// Returns the last hidden state, (batch, seq, hidden).
    pub fn forward(&self, input: &EncoderInput) -> Result<Tensor> {
        let (b, l) = input.attention_mask.dims2()?;
        // HF: (1 - mask) * finfo.min; exp() of it is exactly 0 for padded keys.
        let mask_bias = ((1.0 - &input.attention_mask)? * f32::MIN as f64)?
            .to_dtype(DType::F32)?
            .reshape((b, 1, 1, l))?;
        let mut x = self.embeddings.forward(input)?;
        for layer in &self.layers {
            x = layer.forward(&x, &mask_bias)?;
        }
        Ok(x)
    }
}

/// The first token's hidden state, (batch, hidden).
pub fn cls_token(hidden: &Tensor) -> Result<Tensor> {
    Ok(hidden.narrow(1, 0, 1)?.squeeze(1)?)
}
