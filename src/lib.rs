//! crossrank: re-ranking for retrieval pipelines. The core (this crate) runs without
//! Python; the pyo3 bindings live in `python/` behind the `python` feature.
//!
//! # Module map
//!
//! The path of a query, in the order it runs:
//!
//! - [`retrieve`]: first-stage candidates. BM25 over an analyzer, an exact dense index,
//!   hits and their ids.
//! - [`score`]: re-scoring candidates with a model. [`CrossEncoder`] (query, document)
//!   -> relevance and [`BiEncoder`] text -> embedding, over one engine abstraction
//!   (`score::engine::Engine`) with two engines: crossrank's CPU forward pass
//!   ([`score::cpu`]: packed sequences, its own GEMM dispatch and int8 kernels) and
//!   candle's (the CPU engine's reference, and the path on GPUs). Batching, pooling and
//!   long-document windows live beside them.
//! - [`rank`]: ordering from scores. The re-rankers ([`HybridReranker`],
//!   [`MultiStage`], [`PairwiseReranker`]) over one [`Scorer`] trait; normalization,
//!   fusion, hybrid signal weighting (weights fit by coordinate ascent), calibration,
//!   pairwise preference aggregation.
//! - [`metrics`]: trec_eval-exact evaluation of a run against judgments.
//!
//! Beside that path:
//!
//! - [`model`]: loading a checkpoint for any engine (source, `config.json`, weights,
//!   tokenizer, device, precision).
//! - [`train`]: fine-tuning a cross-encoder (forward and backward on the CPU, AdamW,
//!   checkpoints transformers reads back).
//! - [`error`]: the crate's one error type.
//! - [`serve`] (feature `server`): the HTTP server (`crossrank serve`) that speaks TEI,
//!   Cohere, Jina and OpenAI, batching concurrent requests into the models' calls.
//! - `python` (feature `python`): the pyo3 bindings, a thin layer over the above.

pub mod error;
pub mod metrics;
pub mod model;
pub mod rank;
pub mod retrieve;
pub mod score;
#[cfg(feature = "server")]
pub mod serve;
pub mod train;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, Result};
pub use model::precision::Precision;
pub use model::source::HubOptions;
pub use rank::hybrid::{Extra, Fusion, HybridReranker, SignalWeight};
pub use rank::multistage::{Cascade, MultiStage, Stage};
pub use rank::pairwise::{Comparator, Method as PairwiseMethod, PairwiseReranker};
pub use rank::scorer::{BiEncoderScorer, CrossEncoderScorer, Scorer};
pub use rank::signals::{Bm25Statistics, Candidates, ModelSignals};
pub use retrieve::analyzer::AnalyzerConfig;
pub use retrieve::bm25::{Bm25, Bm25Params};
pub use retrieve::dense_index::DenseIndex;
pub use score::bi_encoder::{BiEncoder, BiEncoderOptions, Embeddings};
pub use score::cross_encoder::{
    Activation, CrossEncoder, CrossEncoderOptions, PredictOptions, Scores,
};
pub use score::long_document::LongDocument;
pub use score::pooling::Pooling;
