//! What a re-ranking step calls to score one query's candidates: a cross-encoder, a
//! bi-encoder, or anything else that implements [`Scorer`] (the Python bindings wrap a
//! Python callable or `Reranker` as one). `MultiStage`'s stages and `HybridReranker`'s
//! signals are scorers, so they agree on batching and on the checks of what comes back.

use std::sync::Arc;

use crate::retrieve::similarity::cosine_matrix;
use crate::score::batching::OnBatch;
use crate::score::bi_encoder::BiEncoder;
use crate::score::cross_encoder::{CrossEncoder, PredictOptions};
use crate::{Error, Result};

/// Scores a query's candidate documents, one score per document, higher = more relevant.
pub trait Scorer: Send + Sync {
    /// One score per document, in order. `on_batch` gets progress (documents) and may
    /// stop the work (Ctrl-C).
    fn score(
        &self,
        query: &str,
        documents: &[&str],
        on_batch: &mut OnBatch<'_>,
    ) -> Result<Vec<f64>>;

    /// A short name for timings and error messages.
    fn label(&self) -> String;
}

/// A cross-encoder's score of each (query, document) pair, with the options the model
/// was configured with (long-document mode, stride, token budget).
pub struct CrossEncoderScorer {
    pub model: Arc<CrossEncoder>,
    pub options: PredictOptions,
}

impl Scorer for CrossEncoderScorer {
    fn score(
        &self,
        query: &str,
        documents: &[&str],
        on_batch: &mut OnBatch<'_>,
    ) -> Result<Vec<f64>> {
        let pairs: Vec<(&str, &str)> = documents.iter().map(|d| (query, *d)).collect();
        let scores = self.model.predict(&pairs, &self.options, on_batch)?;
        if scores.num_labels != 1 {
            return Err(Error::invalid(format!(
                "re-ranking needs a cross-encoder with one output label; this one has {}",
                scores.num_labels
            )));
        }
        Ok(scores.values.into_iter().map(f64::from).collect())
    }

    fn label(&self) -> String {
        "CrossEncoder".into()
    }
}

/// A bi-encoder's cosine similarity of the query's and each document's embedding.
pub struct BiEncoderScorer {
    pub model: Arc<BiEncoder>,
    pub batch_size: usize,
    pub max_batch_tokens: Option<usize>,
}

impl BiEncoderScorer {
    /// The cosines against `embeddings`, the documents' rows `(n, dim)` when the caller
    /// already has them (a `DenseIndex`, a vector store); else the documents are encoded.
    pub fn similarities(
        &self,
        query: &str,
        documents: &[&str],
        embeddings: Option<&[f32]>,
        on_batch: &mut OnBatch<'_>,
    ) -> Result<Vec<f64>> {
        let dim = self.model.dim();
        if let Some(e) = embeddings {
            if e.len() != documents.len() * dim {
                return Err(Error::invalid(format!(
                    "embeddings hold {} values for {} documents of dimension {dim}",
                    e.len(),
                    documents.len(),
                )));
            }
        }
        let query = self.model.encode(&[query], 1, None, None, on_batch)?;
        let encoded;
        let rows = match embeddings {
            Some(e) => e,
            None => {
                encoded = self.model.encode(
                    documents,
                    self.batch_size,
                    self.max_batch_tokens,
                    None,
                    on_batch,
                )?;
                &encoded.values
            }
        };
        let sims = cosine_matrix(&query.values, rows, dim)?;
        Ok(sims.into_iter().map(f64::from).collect())
    }
}

impl Scorer for BiEncoderScorer {
    fn score(
        &self,
        query: &str,
        documents: &[&str],
        on_batch: &mut OnBatch<'_>,
    ) -> Result<Vec<f64>> {
        self.similarities(query, documents, None, on_batch)
    }

    fn label(&self) -> String {
        "BiEncoder".into()
    }
}

/// `scores` when they are one finite number per document; else an error naming `who`.
pub fn check_scores(scores: Vec<f64>, n: usize, who: &str) -> Result<Vec<f64>> {
    if scores.len() != n {
        return Err(Error::invalid(format!(
            "{who} returned {} scores for {n} documents",
            scores.len()
        )));
    }
    if let Some(i) = scores.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(format!(
            "{who} returned a non-finite score ({}) for document {i}",
            scores[i]
        )));
    }
    Ok(scores)
}

/// `scorer`'s checked scores of `documents`; no documents: no call.
pub fn score_checked(
    scorer: &dyn Scorer,
    query: &str,
    documents: &[&str],
    who: &str,
    on_batch: &mut OnBatch<'_>,
) -> Result<Vec<f64>> {
    if documents.is_empty() {
        return Ok(Vec::new());
    }
    check_scores(
        scorer.score(query, documents, on_batch)?,
        documents.len(),
        who,
    )
}
