//! The model signals of a hybrid re-rank, computed in the core: a cross-encoder's
//! scores, a bi-encoder's cosine similarities and BM25 scores for one query's candidates.
//! The three are independent, so they run in parallel (rayon), with no Python involved;
//! `hybrid::combine` then normalizes and fuses them with any other signals.

use std::sync::Arc;

use crate::rank::scorer::{BiEncoderScorer, CrossEncoderScorer, Scorer};
use crate::retrieve::analyzer::AnalyzerConfig;
use crate::retrieve::bm25::{Bm25, Bm25Params};
use crate::score::batching::OnBatch;
use crate::Result;

/// Signal names, as the weights and explanations spell them.
pub const CROSS_ENCODER: &str = "cross_encoder";
pub const BM25: &str = "bm25";
pub const BI_ENCODER: &str = "bi_encoder";

/// Which statistics BM25 scores with.
#[derive(Clone)]
pub enum Bm25Statistics {
    /// The candidate set's own (an index built per query over the candidates).
    Candidates,
    /// A corpus index's (`Bm25::score`).
    Index(Arc<Bm25>),
}

/// The model signals a hybrid re-rank uses; any may be absent.
#[derive(Clone)]
pub struct ModelSignals {
    pub cross_encoder: Option<Arc<CrossEncoderScorer>>,
    pub bi_encoder: Option<Arc<BiEncoderScorer>>,
    pub bm25: Option<Bm25Statistics>,
}

/// One query's candidates, with their embeddings when the caller already has them
/// (from a `DenseIndex` or a vector store): `(documents.len(), dim)` row-major. The
/// bi-encoder then embeds only the query.
pub struct Candidates<'a> {
    pub query: &'a str,
    pub documents: &'a [&'a str],
    pub embeddings: Option<&'a [f32]>,
}

impl ModelSignals {
    /// The configured signals' names, in the order `compute` returns them.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.cross_encoder.is_some() {
            names.push(CROSS_ENCODER);
        }
        if self.bm25.is_some() {
            names.push(BM25);
        }
        if self.bi_encoder.is_some() {
            names.push(BI_ENCODER);
        }
        names
    }

    /// Each configured signal's raw values for the candidates, in `names()` order. The
    /// cross-encoder runs beside the bi-encoder and BM25; `on_batch` gets the
    /// cross-encoder's progress (pairs) and may stop the run.
    pub fn compute(
        &self,
        candidates: &Candidates<'_>,
        on_batch: &mut (dyn FnMut(usize) -> Result<()> + Send),
    ) -> Result<Vec<(&'static str, Vec<f64>)>> {
        let (cross, (bm25, bi)) = rayon::join(
            || self.cross_encoder_scores(candidates, on_batch),
            || {
                rayon::join(
                    || self.bm25_scores(candidates),
                    || self.bi_encoder_scores(candidates),
                )
            },
        );
        let mut out = Vec::new();
        for (name, values) in [(CROSS_ENCODER, cross), (BM25, bm25), (BI_ENCODER, bi)] {
            if let Some(values) = values? {
                out.push((name, values));
            }
        }
        Ok(out)
    }

    fn cross_encoder_scores(
        &self,
        c: &Candidates<'_>,
        on_batch: &mut OnBatch<'_>,
    ) -> Result<Option<Vec<f64>>> {
        self.cross_encoder
            .as_ref()
            .map(|ce| ce.score(c.query, c.documents, on_batch))
            .transpose()
    }

    fn bm25_scores(&self, c: &Candidates<'_>) -> Result<Option<Vec<f64>>> {
        let scores = match &self.bm25 {
            None => return Ok(None),
            Some(Bm25Statistics::Index(index)) => index.score(c.query, c.documents),
            Some(Bm25Statistics::Candidates) => {
                let index = Bm25::new(
                    c.documents,
                    Bm25Params::default(),
                    AnalyzerConfig::default(),
                )?;
                index.score(c.query, c.documents)
            }
        };
        Ok(Some(scores.into_iter().map(f64::from).collect()))
    }

    fn bi_encoder_scores(&self, c: &Candidates<'_>) -> Result<Option<Vec<f64>>> {
        self.bi_encoder
            .as_ref()
            .map(|be| be.similarities(c.query, c.documents, c.embeddings, &mut |_| Ok(())))
            .transpose()
    }
}
