//! Fine-tuning a BERT cross-encoder in the Rust core (stage 1: the training step).
//!
//! `Trainer` loads a `BertForSequenceClassification` checkpoint, or a bare BERT encoder
//! to which it adds a seeded classification head, with every weight a trainable candle
//! `Var` (`model.rs`, a forward built from the differentiable fused ops of `ops/`), and
//! takes one step per `train_step` call as transformers' Trainer would: the
//! loss (`loss.rs`), backward, gradient clipping by the global norm (`clip.rs`), AdamW with
//! Trainer's weight-decay groups (`optimizer.rs`) at the rate of a linear warmup/decay
//! schedule (`schedule.rs`). `save` writes a Hugging Face checkpoint directory
//! (`checkpoint.rs`).
//!
//! The gradients, losses and updated weights equal PyTorch's (transformers +
//! torch.optim.AdamW) within f32 rounding: `tests/train_parity.rs` checks that against
//! `scripts/train_reference.py`.
//!
//! Seeded dropout (`dropout.rs`) on the hidden states as in transformers' BERT (not on
//! the attention probabilities). Shuffling and epochs over a dataset are the Python
//! side's (`crossrank.train`). Not yet: GPU training, XLM-RoBERTa.
//!
//! ```no_run
//! use crossrank::train::{Batch, Trainer, TrainerConfig};
//!
//! let mut config = TrainerConfig::new("sentence-transformers/all-MiniLM-L6-v2");
//! config.max_length = Some(256);
//! let pairs = [("what is bm25", "BM25 is a ranking function..."), ("what is bm25", "A cat.")];
//! let labels = [1.0, 0.0];
//! let mut trainer = Trainer::new(config, pairs.len())?;
//! let stats = trainer.train_step(&Batch::Pairs { pairs: &pairs, labels: &labels })?;
//! println!("loss {} grad_norm {} lr {}", stats.loss, stats.grad_norm, stats.learning_rate);
//! trainer.save("my-cross-encoder", false)?;
//! # Ok::<(), crossrank::Error>(())
//! ```

pub mod batch;
pub mod checkpoint;
pub mod clip;
pub mod dropout;
pub mod init;
pub mod loss;
pub mod model;
pub mod ops;
pub mod optimizer;
pub mod schedule;
pub mod trainer;

#[cfg(test)]
mod tests;

pub use batch::{Batch, Group};
pub use loss::Loss;
pub use model::LoadReport;
pub use optimizer::AdamWConfig;
pub use schedule::LinearSchedule;
pub use trainer::{Gradients, StepStats, Trainer, TrainerConfig};
