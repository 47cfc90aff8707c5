//! crossrank: re-ranking for retrieval pipelines. The core (this crate) runs without
//! Python; the pyo3 bindings live in `python/` behind the `python` feature.

pub mod analyzer;
pub mod batching;
pub mod bi_encoder;
pub mod bm25;
pub mod calibration;
pub mod coordinate_ascent;
pub mod cross_encoder;
pub mod dense_index;
pub mod device;
pub mod error;
pub mod fast;
pub mod fusion;
pub mod hit;
pub mod hybrid;
pub mod index_file;
pub mod long_document;
pub mod metrics;
pub mod models;
pub mod normalize;
pub mod pairwise;
pub mod precision;
pub mod similarity;
pub mod source;
pub mod tokenize;
pub mod train;
pub mod weights;

#[cfg(feature = "python")]
mod python;

pub use bi_encoder::{BiEncoder, BiEncoderOptions, Embeddings, Pooling};
pub use cross_encoder::{Activation, CrossEncoder, CrossEncoderOptions, PredictOptions, Scores};
pub use error::{Error, Result};
pub use precision::Precision;
pub use source::HubOptions;
