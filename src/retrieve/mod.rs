//! First-stage retrieval: candidates for a query from a corpus, by terms (BM25 over an
//! analyzer) or by embeddings (an exact dense index), as `Hit`s.

pub mod analyzer;
pub mod bm25;
pub mod dense_index;
pub mod hit;
pub(crate) mod index_file;
pub mod similarity;
