//! The trainer: a model, its tokenizer, AdamW, the schedule and clipping, one batch at a
//! time, as transformers' Trainer does each step.

use std::path::Path;

use candle_core::{Device, Tensor, Var};

use crate::error::{Error, Result};
use crate::model::checkpoint::{Checkpoint, Family, InputScheme};
use crate::model::config::ModelConfig;
use crate::model::source::{HubOptions, ModelSource};
use crate::model::tokenize::TextTokenizer;
use crate::score::candle::bert::EncoderInput;
use crate::score::candle::make_input;
use crate::train::batch::{Batch, Target};
use crate::train::checkpoint::{self, CheckpointContents, TOKENIZER_FILES};
use crate::train::clip::{clip_grad_norm, global_norm};
use crate::train::dropout::Dropout;
use crate::train::loss::{
    binary_cross_entropy_with_logits, listwise_kl_divergence, listwise_softmax_cross_entropy,
    margin_mse, Loss,
};
use crate::train::model::{LoadReport, TrainableBert};
use crate::train::optimizer::{AdamW, AdamWConfig};
use crate::train::schedule::LinearSchedule;

/// How to train. `TrainerConfig::new(base)` gives sentence-transformers' and
/// transformers' defaults; set the fields to change them.
#[derive(Debug, Clone)]
pub struct TrainerConfig {
    /// A local directory or a hub id: a `BertForSequenceClassification` checkpoint, or a
    /// bare BERT encoder (e.g. a sentence-transformers model), which gets a new head.
    pub base: String,
    /// `None`: the base's head, or 1 label when it has none.
    pub num_labels: Option<usize>,
    /// `None`: the tokenizer's `model_max_length`, capped at the position table.
    pub max_length: Option<usize>,
    /// The peak learning rate (2e-5).
    pub learning_rate: f64,
    /// Examples per step, used with `epochs` to count the schedule's steps (16).
    pub batch_size: usize,
    pub epochs: usize,
    /// Fraction of the steps spent warming up, rounded up (0.1).
    pub warmup_ratio: f64,
    /// Decoupled weight decay for all weights but biases and layer norms (0.01).
    pub weight_decay: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
    /// Clip the global gradient norm to this (1.0); `None`: no clipping.
    pub max_grad_norm: Option<f64>,
    /// Seeds the initialisation of a new head and the dropout masks (batches come in
    /// the caller's order).
    pub seed: u64,
    /// Dropout on the hidden states during training steps; `None`: config.json's
    /// `hidden_dropout_prob` (0.1 for BERT). `Some(0.0)` trains the `eval()` forward.
    pub dropout: Option<f64>,
    pub loss: Loss,
    pub hub: HubOptions,
}

impl TrainerConfig {
    pub fn new(base: impl Into<String>) -> Self {
        let adam = AdamWConfig::default();
        Self {
            base: base.into(),
            num_labels: None,
            max_length: None,
            learning_rate: 2e-5,
            batch_size: 16,
            epochs: 1,
            warmup_ratio: 0.1,
            weight_decay: adam.weight_decay,
            adam_beta1: adam.beta1,
            adam_beta2: adam.beta2,
            adam_epsilon: adam.eps,
            max_grad_norm: Some(1.0),
            seed: 42,
            dropout: None,
            loss: Loss::BinaryCrossEntropy,
            hub: HubOptions::default(),
        }
    }

    /// Optimizer steps for `num_examples` training examples (pairs, or groups for the
    /// listwise loss): `ceil(num_examples / batch_size)` per epoch, as a DataLoader that
    /// keeps the last partial batch.
    pub fn total_steps(&self, num_examples: usize) -> Result<usize> {
        if self.batch_size == 0 {
            return Err(Error::invalid(
                "batch_size must be a positive integer, got 0",
            ));
        }
        if self.epochs == 0 {
            return Err(Error::invalid("epochs must be a positive integer, got 0"));
        }
        if num_examples == 0 {
            return Err(Error::invalid("no training examples"));
        }
        Ok(num_examples.div_ceil(self.batch_size) * self.epochs)
    }

    fn adamw(&self) -> AdamWConfig {
        AdamWConfig {
            beta1: self.adam_beta1,
            beta2: self.adam_beta2,
            eps: self.adam_epsilon,
            weight_decay: self.weight_decay,
        }
    }
}

/// What one step did, as transformers' Trainer logs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    pub loss: f32,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
    /// The rate this step used.
    pub learning_rate: f64,
}

/// The loss of a batch and the gradient of every parameter (flattened, in
/// `Trainer::parameters` order), before clipping.
pub struct Gradients {
    pub loss: f32,
    pub values: Vec<Option<Vec<f32>>>,
}

pub struct Trainer {
    config: TrainerConfig,
    model: TrainableBert,
    tokenizer: TextTokenizer,
    scheme: InputScheme,
    pad_id: u32,
    optimizer: AdamW,
    schedule: LinearSchedule,
    dropout: Dropout,
    steps_done: usize,
    source: ModelSource,
    base_config: serde_json::Value,
    report: LoadReport,
}

impl Trainer {
    /// Loads the base model for training on `num_examples` examples (which, with
    /// `batch_size` and `epochs`, sets the schedule's length). CPU only in this stage.
    pub fn new(config: TrainerConfig, num_examples: usize) -> Result<Self> {
        let total_steps = config.total_steps(num_examples)?;
        let schedule = LinearSchedule::with_warmup_ratio(
            config.learning_rate,
            total_steps,
            config.warmup_ratio,
        )?;
        if let Some(norm) = config.max_grad_norm {
            if !(norm.is_finite() && norm > 0.0) {
                return Err(Error::invalid(format!(
                    "max_grad_norm must be a positive number (or None), got {norm}"
                )));
            }
        }
        let source = ModelSource::resolve(&config.base, &config.hub)?;
        let model_config = ModelConfig::load(&source)?;
        let family = model_config.family()?;
        let device = Device::Cpu;
        let (model, report) = {
            let ckpt = Checkpoint::encoder(&source, &model_config, &device)?;
            let init_std = model_config
                .raw
                .get("initializer_range")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.02);
            TrainableBert::load(
                &ckpt,
                &model_config.encoder,
                config.num_labels,
                init_std,
                config.seed,
                &source.describe(),
            )?
        };
        if !report.initialized.is_empty() {
            // As transformers warns when it adds a head to a checkpoint.
            log::warn!(
                "Some weights of the model were not initialized from the checkpoint at {} and \
                 are newly initialized: {:?}. Train this model before using it for predictions.",
                source.describe(),
                report.initialized
            );
        }
        if config.loss.takes_groups() && model.num_labels() != 1 {
            return Err(Error::invalid(format!(
                "the {} loss needs a one-label model, this one has {}",
                config.loss.name(),
                model.num_labels()
            )));
        }
        let tokenizer = TextTokenizer::for_model(
            &source,
            family,
            &model_config.encoder,
            config.max_length,
            None,
        )?;
        let dropout_p = match config.dropout {
            Some(p) => p,
            None => model_config
                .raw
                .get("hidden_dropout_prob")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.1),
        };
        // A different stream from the head's initialisation, from the same seed.
        let dropout = Dropout::new(dropout_p, config.seed ^ 0xD50F_0D50)?;
        let optimizer = AdamW::new(
            config.adamw(),
            model.params().iter().map(|(n, _)| n.as_str()),
        )?;
        Ok(Self {
            scheme: Family::Bert.input_scheme(&model_config.encoder),
            pad_id: model_config.encoder.pad_token_id,
            base_config: model_config.raw,
            config,
            model,
            tokenizer,
            optimizer,
            schedule,
            dropout,
            steps_done: 0,
            source,
            report,
        })
    }

    pub fn config(&self) -> &TrainerConfig {
        &self.config
    }

    /// Which weights were created rather than loaded (a new head, a missing pooler).
    pub fn load_report(&self) -> &LoadReport {
        &self.report
    }

    pub fn num_labels(&self) -> usize {
        self.model.num_labels()
    }

    pub fn max_length(&self) -> usize {
        self.tokenizer.max_length()
    }

    /// The dropout probability the training steps use.
    pub fn dropout(&self) -> f64 {
        self.dropout.p()
    }

    pub fn steps_done(&self) -> usize {
        self.steps_done
    }

    pub fn schedule(&self) -> &LinearSchedule {
        &self.schedule
    }

    /// Every trainable weight with its transformers name, in `named_parameters()` order.
    pub fn parameters(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.model
            .params()
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_tensor()))
    }

    /// Whether each parameter (in `parameters` order) is in the weight-decay group.
    pub fn decay_mask(&self) -> &[bool] {
        self.optimizer.decay_mask()
    }

    /// Tokenizes pairs (longest-first truncation to `max_length`) and pads them into one
    /// batch, as the tokenizer with `padding=True` does.
    pub fn encode(&self, pairs: &[(&str, &str)]) -> Result<EncoderInput> {
        let encodings = self.tokenizer.encode_pairs(pairs)?;
        let refs: Vec<_> = encodings.iter().collect();
        make_input(&refs, self.scheme, self.pad_id, self.model.device())
    }

    /// Logits of the model as it is now, (n, num_labels) row-major, in batches of
    /// `batch_size` pairs.
    pub fn logits(&self, pairs: &[(&str, &str)]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(pairs.len() * self.num_labels());
        for chunk in pairs.chunks(self.config.batch_size.max(1)) {
            let logits = self
                .model
                .forward(&self.encode(chunk)?, &mut Dropout::off())?
                .detach();
            out.extend(logits.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    /// Forward (with dropout) and backward on one batch; changes no weight.
    pub fn loss_and_gradients(&mut self, batch: &Batch) -> Result<Gradients> {
        let prepared = batch.prepare(self.config.loss, self.num_labels())?;
        let input = self.encode(&prepared.pairs)?;
        let logits = self.model.forward(&input, &mut self.dropout)?;
        let loss = match &prepared.target {
            Target::Labels(labels) => {
                let labels = Tensor::from_slice(labels, logits.shape(), logits.device())?;
                binary_cross_entropy_with_logits(&logits, &labels)?
            }
            Target::GroupSizes(sizes) => listwise_softmax_cross_entropy(&logits, sizes)?,
            Target::Teacher { sizes, scores } if self.config.loss == Loss::MarginMse => {
                margin_mse(&logits, sizes, scores)?
            }
            Target::Teacher { sizes, scores } => listwise_kl_divergence(&logits, sizes, scores)?,
        };
        let value = loss.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Err(Error::invalid(format!(
                "the loss is {value}: the model diverged (lower the learning rate?)"
            )));
        }
        let grads = loss.backward()?;
        let values = self
            .model
            .params()
            .iter()
            .map(|(_, var)| {
                grads
                    .get(var.as_tensor())
                    .map(|g| g.flatten_all().and_then(|g| g.to_vec1::<f32>()))
                    .transpose()
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Gradients {
            loss: value,
            values,
        })
    }

    /// Clips the gradients, takes one AdamW step at the schedule's rate and advances the
    /// schedule.
    pub fn apply_gradients(&mut self, mut grads: Gradients) -> Result<StepStats> {
        let grad_norm = match self.config.max_grad_norm {
            Some(max_norm) => clip_grad_norm(&mut grads.values, max_norm)?,
            None => global_norm(&grads.values),
        };
        let lr = self.schedule.lr(self.steps_done);
        let vars: Vec<&Var> = self.model.params().iter().map(|(_, v)| v).collect();
        self.optimizer.step(&vars, &grads.values, lr)?;
        self.steps_done += 1;
        Ok(StepStats {
            loss: grads.loss,
            grad_norm,
            learning_rate: lr,
        })
    }

    /// One training step on `batch`: forward, loss, backward, clipping, AdamW, schedule.
    pub fn train_step(&mut self, batch: &Batch) -> Result<StepStats> {
        let grads = self.loss_and_gradients(batch)?;
        self.apply_gradients(grads)
    }

    /// Saves the model as a Hugging Face checkpoint directory (see `checkpoint.rs`).
    pub fn save(&self, dir: impl AsRef<Path>, overwrite: bool) -> Result<()> {
        let tensors: Vec<(String, Tensor)> = self
            .model
            .params()
            .iter()
            .map(|(n, v)| (n.clone(), v.as_detached_tensor()))
            .collect();
        let config = checkpoint::classifier_config(&self.base_config, self.num_labels())?;
        let mut files = Vec::new();
        for name in TOKENIZER_FILES {
            if let Some(path) = self.source.file(name)? {
                files.push((name.to_string(), path));
            }
        }
        checkpoint::save(
            dir.as_ref(),
            overwrite,
            &CheckpointContents {
                tensors: &tensors,
                config: &config,
                files: &files,
            },
        )
    }
}
