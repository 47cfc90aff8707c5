//! `BertForSequenceClassification` with every weight a trainable candle `Var`, and a
//! forward pass that candle can differentiate.
//!
//! A separate forward from `score::candle::bert` rather than a training flag in it, because the
//! inference model is built for inference in three ways that break training:
//! * it uses candle-nn's fused softmax and layer norm, which have no backward (see
//!   `ops.rs`);
//! * it stores the transposed weights and the fused query/key/value matrix as copies made
//!   at load time: after an optimizer step those copies would be stale;
//! * its `Linear` owns plain tensors, not `Var`s.
//!
//! Keeping them apart leaves the inference path exactly as fast as before. The config
//! (`model::config::Config`), the batch layout (`EncoderInput`) and the checkpoint reading
//! (`model::checkpoint::Checkpoint`) are shared, so both read the same files the same way.
//!
//! Dropout (`dropout.rs`) sits where transformers' BERT has `hidden_dropout_prob`: after
//! the embeddings, after each attention output and feed-forward output projection, and
//! before the classifier. Not on the attention probabilities
//! (`attention_probs_dropout_prob`): the fused attention op keeps its probabilities for
//! the backward and has no mask; a difference from transformers' training-mode forward,
//! not from its `eval()` forward, which `Dropout::off()` gives exactly.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

use crate::error::{Error, Result};
use crate::model::checkpoint::{Checkpoint, Family};
use crate::model::config::{Config, HiddenAct};
use crate::model::names;
use crate::score::candle::bert::{cls_token, EncoderInput};
use crate::train::dropout::Dropout;
use crate::train::init::NormalRng;
use crate::train::ops::{attention, dense, gelu_erf, layer_norm};

/// `x @ weight^T + bias` over the last dimension.
struct Dense {
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(dense(x, &self.weight, &self.bias)?)
    }
}

struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(layer_norm(x, &self.weight, &self.bias, self.eps)?)
    }
}

struct Embeddings {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    norm: Norm,
}

/// Rows of `table` for `ids` (batch, seq): (batch, seq, hidden). `index_select`'s backward
/// is an `index_add`, so the table gets a (dense) gradient like PyTorch's `nn.Embedding`.
fn lookup(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let (b, l) = ids.dims2()?;
    let hidden = table.dim(1)?;
    Ok(table
        .index_select(&ids.flatten_all()?, 0)?
        .reshape((b, l, hidden))?)
}

impl Embeddings {
    fn forward(&self, input: &EncoderInput, dropout: &mut Dropout) -> Result<Tensor> {
        let x = lookup(&self.word, &input.input_ids)?;
        let x = (x + lookup(&self.position, &input.position_ids)?)?;
        let x = (x + lookup(&self.token_type, &input.token_type_ids)?)?;
        dropout.apply(&self.norm.forward(&x)?)
    }
}

struct Layer {
    query: Dense,
    key: Dense,
    value: Dense,
    attention_out: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
    num_heads: usize,
    head_dim: usize,
    act: HiddenAct,
}

impl Layer {
    fn forward(&self, x: &Tensor, mask_bias: &Tensor, dropout: &mut Dropout) -> Result<Tensor> {
        let context = attention(
            &self.query.forward(x)?,
            &self.key.forward(x)?,
            &self.value.forward(x)?,
            mask_bias,
            self.num_heads,
            1.0 / (self.head_dim as f64).sqrt(),
        )?;
        let x = self
            .attention_norm
            .forward(&(dropout.apply(&self.attention_out.forward(&context)?)? + x)?)?;
        let inner = self.intermediate.forward(&x)?;
        // candle's tanh GELU and ReLU have backwards of their own (the tanh one rounds its
        // constants to 6 digits, far below what the parity test can see); BERT's usual
        // erf GELU is fused (see `ops`).
        let inner = match self.act {
            HiddenAct::Gelu => gelu_erf(&inner)?,
            HiddenAct::GeluNew | HiddenAct::GeluPytorchTanh => inner.gelu()?,
            HiddenAct::Relu => inner.relu()?,
            HiddenAct::Silu => inner.silu()?,
        };
        self.output_norm
            .forward(&(dropout.apply(&self.output.forward(&inner)?)? + x)?)
    }
}

/// Reads weights from a checkpoint (transformers' names, whatever prefix the checkpoint
/// stores the encoder under) or initialises them, and registers each as a `Var`.
struct ParamBuilder<'a> {
    ckpt: &'a Checkpoint,
    varmap: VarMap,
    params: Vec<(String, Var)>,
    initialized: Vec<String>,
    rng: NormalRng,
    init_std: f64,
    device: Device,
    source: String,
}

impl ParamBuilder<'_> {
    /// The checkpoint key of a transformers name: `bert.` is the encoder's prefix, which a
    /// bare encoder (sentence-transformers, `BertModel`) does not have.
    fn checkpoint_vb(&self, name: &str) -> (VarBuilder<'static>, String) {
        match name.strip_prefix("bert.") {
            Some(rest) => (self.ckpt.encoder_vb(), rest.to_string()),
            None => (self.ckpt.vb.clone(), name.to_string()),
        }
    }

    fn has(&self, name: &str) -> bool {
        let (vb, key) = self.checkpoint_vb(name);
        vb.contains_tensor(&key)
    }

    fn register(&mut self, name: &str, value: Tensor) -> Result<Tensor> {
        let var = Var::from_tensor(&value.to_dtype(DType::F32)?.contiguous()?)?;
        let tensor = var.as_tensor().clone();
        self.varmap
            .data()
            .lock()
            .map_err(|_| Error::invalid("the parameter map's lock is poisoned"))?
            .insert(name.to_string(), var.clone());
        self.params.push((name.to_string(), var));
        Ok(tensor)
    }

    fn load(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let (vb, key) = self.checkpoint_vb(name);
        if !vb.contains_tensor(&key) {
            return Err(Error::invalid(format!(
                "checkpoint {} has no weight {name:?} (looked for {:?})",
                self.source,
                full_key(&vb, &key)
            )));
        }
        let value = vb.get(shape, &key).map_err(|e| {
            Error::invalid(format!(
                "checkpoint {}: weight {name:?} does not fit the config: {e}",
                self.source
            ))
        })?;
        self.register(name, value)
    }

    /// As transformers' `_init_weights` for a new `nn.Linear`: weight normal(0,
    /// initializer_range), bias zero.
    fn init_dense(&mut self, name: &str, out_dim: usize, in_dim: usize) -> Result<Dense> {
        let w = self
            .rng
            .normal_tensor(&[out_dim, in_dim], self.init_std, &self.device)?;
        let b = Tensor::zeros(out_dim, DType::F32, &self.device)?;
        self.initialized.push(format!("{name}.weight"));
        self.initialized.push(format!("{name}.bias"));
        Ok(Dense {
            weight: self.register(&format!("{name}.weight"), w)?,
            bias: self.register(&format!("{name}.bias"), b)?,
        })
    }

    fn dense(&mut self, name: &str, out_dim: usize, in_dim: usize) -> Result<Dense> {
        Ok(Dense {
            weight: self.load(&format!("{name}.weight"), &[out_dim, in_dim])?,
            bias: self.load(&format!("{name}.bias"), &[out_dim])?,
        })
    }

    fn norm(&mut self, name: &str, size: usize, eps: f64) -> Result<Norm> {
        Ok(Norm {
            weight: self.load(&format!("{name}.weight"), &[size])?,
            bias: self.load(&format!("{name}.bias"), &[size])?,
            eps,
        })
    }
}

fn full_key(vb: &VarBuilder, key: &str) -> String {
    let prefix = vb.prefix();
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// How a model's head came to be, for the caller to report (transformers warns likewise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Weights not in the checkpoint, initialised from the seed.
    pub initialized: Vec<String>,
}

pub struct TrainableBert {
    varmap: VarMap,
    /// In transformers' `named_parameters()` order.
    params: Vec<(String, Var)>,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    pooler: Dense,
    classifier: Dense,
    num_labels: usize,
    config: Config,
}

impl TrainableBert {
    /// `num_labels`: `None` takes the checkpoint's head, or 1 when it has none. A head is
    /// created when the checkpoint has none (a bare encoder such as a sentence-transformers
    /// model), and so is a missing pooler; `init_std` is config.json's `initializer_range`.
    pub fn load(
        ckpt: &Checkpoint,
        config: &Config,
        num_labels: Option<usize>,
        init_std: f64,
        seed: u64,
        source: &str,
    ) -> Result<(Self, LoadReport)> {
        if ckpt.family != Family::Bert {
            return Err(Error::UnsupportedArchitecture {
                found: format!("{:?}", ckpt.family),
                supported: "BERT checkpoints (BertForSequenceClassification, BertModel) \
                            for training"
                    .to_string(),
            });
        }
        config.validate()?;
        let device = ckpt.vb.device().clone();
        let mut pb = ParamBuilder {
            ckpt,
            varmap: VarMap::new(),
            params: Vec::new(),
            initialized: Vec::new(),
            rng: NormalRng::new(seed),
            init_std,
            device,
            source: source.to_string(),
        };
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        // Trained models are saved as BertForSequenceClassification: encoder under "bert".
        let e = format!("bert.{}", names::EMBEDDINGS);
        let table = |name: &str| format!("{e}.{name}.weight");
        let embeddings = Embeddings {
            word: pb.load(&table(names::WORD_EMBEDDINGS), &[config.vocab_size, h])?,
            position: pb.load(
                &table(names::POSITION_EMBEDDINGS),
                &[config.max_position_embeddings, h],
            )?,
            token_type: pb.load(
                &table(names::TOKEN_TYPE_EMBEDDINGS),
                &[config.type_vocab_size, h],
            )?,
            norm: pb.norm(&format!("{e}.{}", names::LAYER_NORM), h, eps)?,
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let bert = &names::BERT_LAYOUT;
            let p = format!("bert.{}", bert.layer(i));
            let name = |part: &str| format!("{p}.{part}");
            layers.push(Layer {
                query: pb.dense(&name(bert.query), h, h)?,
                key: pb.dense(&name(bert.key), h, h)?,
                value: pb.dense(&name(bert.value), h, h)?,
                attention_out: pb.dense(&name(bert.attention_output), h, h)?,
                attention_norm: pb.norm(&name(bert.attention_norm), h, eps)?,
                intermediate: pb.dense(&name(bert.intermediate), config.intermediate_size, h)?,
                output: pb.dense(&name(bert.output), h, config.intermediate_size)?,
                output_norm: pb.norm(&name(bert.output_norm), h, eps)?,
                num_heads: config.num_attention_heads,
                head_dim: h / config.num_attention_heads,
                act: config.hidden_act,
            });
        }
        let pooler_name = format!("bert.{}", names::BERT_POOLER);
        let pooler = if pb.has(&format!("{pooler_name}.weight")) {
            pb.dense(&pooler_name, h, h)?
        } else {
            pb.init_dense(&pooler_name, h, h)?
        };
        let classifier_weight = format!("{}.weight", names::BERT_CLASSIFIER);
        let (classifier, num_labels) = if pb.has(&classifier_weight) {
            let (vb, key) = pb.checkpoint_vb(&classifier_weight);
            let found = vb
                .get_unchecked(&key)
                .and_then(|t| t.dim(0))
                .map_err(|e| Error::invalid(format!("checkpoint {source}: {e}")))?;
            if let Some(n) = num_labels.filter(|&n| n != found) {
                return Err(Error::invalid(format!(
                    "num_labels {n} was asked for, but checkpoint {source} has a head with \
                     {found} labels; train from its encoder alone to get a new head"
                )));
            }
            (pb.dense(names::BERT_CLASSIFIER, found, h)?, found)
        } else {
            let n = num_labels.unwrap_or(1);
            if n == 0 {
                return Err(Error::invalid("num_labels must be at least 1"));
            }
            (pb.init_dense(names::BERT_CLASSIFIER, n, h)?, n)
        };
        let report = LoadReport {
            initialized: pb.initialized,
        };
        Ok((
            Self {
                varmap: pb.varmap,
                params: pb.params,
                embeddings,
                layers,
                pooler,
                classifier,
                num_labels,
                config: config.clone(),
            },
            report,
        ))
    }

    /// Logits, (batch, num_labels), with the graph for a backward pass. `Dropout::off()`
    /// gives transformers' `eval()` forward.
    pub fn forward(&self, input: &EncoderInput, dropout: &mut Dropout) -> Result<Tensor> {
        let (b, l) = input.attention_mask.dims2()?;
        // As transformers' eager attention: (1 - mask) * finfo(f32).min added to the
        // scores, so padded keys get exactly zero probability.
        let mask_bias = ((1.0 - &input.attention_mask)? * f32::MIN as f64)?
            .to_dtype(DType::F32)?
            .reshape((b, 1, 1, l))?;
        let mut x = self.embeddings.forward(input, dropout)?;
        for layer in &self.layers {
            x = layer.forward(&x, &mask_bias, dropout)?;
        }
        let pooled = self.pooler.forward(&cls_token(&x)?)?.tanh()?;
        self.classifier.forward(&dropout.apply(&pooled)?)
    }

    /// Every weight, in transformers' `named_parameters()` order.
    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// The same vars by name, as candle-nn's optimizers and `VarMap::save` expect.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    pub fn num_labels(&self) -> usize {
        self.num_labels
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        self.embeddings.word.device()
    }
}
