//! Scoring with a model: the cross-encoder (query, document) -> relevance and the
//! bi-encoder text -> embedding, both over one `Engine` abstraction with two engines
//! (`cpu`, crossrank's own forward pass, and `candle`, the reference and GPU path), plus
//! what surrounds a forward pass: length-sorted batching, pooling, long documents.

pub(crate) mod batching;
pub mod bi_encoder;
pub mod cache;
pub(crate) mod candle;
pub mod cpu;
pub mod cross_encoder;
pub(crate) mod engine;
pub mod long_document;
pub mod pooling;
pub mod prompt;

#[cfg(test)]
mod decoder_tests;
#[cfg(test)]
mod tests;
