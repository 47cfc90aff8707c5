//! What every dialect's handlers share: admission (the request limit), validation that
//! does not depend on the dialect, the models' batchers, and the scores and embeddings
//! exactly as `CrossEncoder::predict` / `BiEncoder::encode` give them.

use std::future::Future;
use std::sync::Arc;

use rayon::ThreadPool;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::batcher::Batcher;
use super::errors::{ApiError, Dialect, ErrorKind};
use super::metrics::Metrics;
use super::{Embedder, Reranker, ServeOptions};
use crate::error::Error;
use crate::score::bi_encoder::BiEncoder;
use crate::score::cross_encoder::{Activation, CrossEncoder};
use crate::score::long_document::LongDocument;
use crate::score::pooling::normalize_rows;

pub struct RerankModel {
    pub name: String,
    pub model: Arc<CrossEncoder>,
    long_document: LongDocument,
    /// (query, document) -> raw logit.
    batcher: Batcher<(String, String), f32>,
}

pub struct EmbedModel {
    pub name: String,
    pub model: Arc<BiEncoder>,
    /// text -> the model's embedding (normalized when the model normalizes).
    batcher: Batcher<String, Vec<f32>>,
}

pub struct AppState {
    pub reranker: Option<RerankModel>,
    pub embedder: Option<EmbedModel>,
    pub options: ServeOptions,
    pub metrics: Arc<Metrics>,
    admission: Arc<Semaphore>,
}

/// A rerank request once its dialect is parsed.
pub struct RerankRequest {
    pub query: String,
    pub documents: Vec<String>,
    /// Logits instead of the model's activation (TEI `raw_scores`).
    pub raw_scores: bool,
    /// False: a pair longer than `max_length` is an error (TEI `truncate: false`).
    pub truncate: bool,
    /// Documents are cut to this many tokens first (Cohere `max_tokens_per_doc`).
    pub max_tokens_per_doc: Option<usize>,
    /// The answer reports the tokens read (Jina's and infinity's `usage`); counting them
    /// tokenizes the pairs once more, so dialects that do not report them skip it.
    pub count_tokens: bool,
}

pub struct RerankOutput {
    /// One score per document, in the request's order.
    pub scores: Vec<f32>,
    /// Tokens the model read (each pair's, truncated to `max_length`), for `usage`; 0
    /// unless the request asked to count them.
    pub tokens: usize,
}

pub struct EmbedRequest {
    pub texts: Vec<String>,
    /// Unit length even when the model does not normalize (TEI `normalize`).
    pub normalize: bool,
    pub truncate: bool,
    /// The answer reports the tokens read (OpenAI's `usage`).
    pub count_tokens: bool,
}

pub struct EmbedOutput {
    pub embeddings: Vec<Vec<f32>>,
    pub tokens: usize,
}

impl AppState {
    pub fn new(
        reranker: Option<Reranker>,
        embedder: Option<Embedder>,
        options: ServeOptions,
    ) -> crate::Result<Self> {
        let metrics = Arc::new(Metrics::default());
        // The models run inside a pool of the server's own (rayon's default size:
        // RAYON_NUM_THREADS, else the CPU count), shared by both so they never oversubscribe
        // the CPU. Called from inside a pool, the engine's parallel steps keep the calling
        // thread working beside the others; called from outside, each of its thousands of
        // parallel steps per batch is handed to the pool and waited for.
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .thread_name(|i| format!("crossrank-model-{i}"))
                .build()
                .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?,
        );
        let reranker = reranker
            .map(|r| RerankModel::start(r, metrics.clone(), pool.clone()))
            .transpose()?;
        let embedder = embedder
            .map(|e| EmbedModel::start(e, metrics.clone(), pool))
            .transpose()?;
        Ok(Self {
            reranker,
            embedder,
            admission: Arc::new(Semaphore::new(options.max_concurrent_requests)),
            options,
            metrics,
        })
    }

    /// A place among the requests being served, or 429 when all are taken.
    fn admit(&self, dialect: Dialect) -> Result<OwnedSemaphorePermit, ApiError> {
        self.admission.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                dialect,
                ErrorKind::Overloaded,
                format!(
                    "the server is serving its limit of {} requests; retry later",
                    self.options.max_concurrent_requests
                ),
            )
        })
    }

    /// The checks on an input list that every dialect shares.
    fn check_count(&self, dialect: Dialect, what: &str, count: usize) -> Result<(), ApiError> {
        if count == 0 {
            return Err(ApiError::new(
                dialect,
                ErrorKind::Empty,
                format!("`{what}` must not be empty"),
            ));
        }
        let limit = self.options.max_client_batch_size;
        if count > limit {
            return Err(ApiError::new(
                dialect,
                ErrorKind::TooLarge,
                format!("`{what}` has {count} items, more than the server's limit of {limit} (max_client_batch_size)"),
            ));
        }
        Ok(())
    }

    /// `work` within the request timeout.
    async fn in_time<T>(
        &self,
        dialect: Dialect,
        work: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let timeout = self.options.request_timeout;
        tokio::time::timeout(timeout, work).await.map_err(|_| {
            ApiError::new(
                dialect,
                ErrorKind::Timeout,
                format!("the request was not answered within {timeout:?}"),
            )
        })?
    }

    pub fn reranker(&self, dialect: Dialect) -> Result<&RerankModel, ApiError> {
        self.reranker.as_ref().ok_or_else(|| {
            ApiError::new(
                dialect,
                ErrorKind::NotFound,
                "this server has no reranker (start it with --model)",
            )
        })
    }

    pub fn embedder(&self, dialect: Dialect) -> Result<&EmbedModel, ApiError> {
        self.embedder.as_ref().ok_or_else(|| {
            ApiError::new(
                dialect,
                ErrorKind::NotFound,
                "this server has no embedding model (start it with --embed-model)",
            )
        })
    }

    pub async fn rerank(
        &self,
        dialect: Dialect,
        request: RerankRequest,
    ) -> Result<RerankOutput, ApiError> {
        let reranker = self.reranker(dialect)?;
        self.check_count(dialect, "documents", request.documents.len())?;
        let _permit = self.admit(dialect)?;
        self.in_time(dialect, reranker.rerank(dialect, request))
            .await
    }

    pub async fn embed(
        &self,
        dialect: Dialect,
        request: EmbedRequest,
    ) -> Result<EmbedOutput, ApiError> {
        let embedder = self.embedder(dialect)?;
        self.check_count(dialect, "input", request.texts.len())?;
        let _permit = self.admit(dialect)?;
        self.in_time(dialect, embedder.embed(dialect, request))
            .await
    }
}

/// Runs blocking tokenizer work off the server's threads.
async fn blocking<T: Send + 'static>(
    dialect: Dialect,
    work: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::new(dialect, ErrorKind::Backend, e.to_string()))?
        .map_err(|e| ApiError::from_core(dialect, e))
}

/// The first input longer than `max_length`, as a 413 naming it.
fn check_lengths(
    dialect: Dialect,
    what: &str,
    lengths: &[usize],
    max_length: usize,
) -> Result<(), ApiError> {
    match lengths.iter().position(|&n| n > max_length) {
        Some(i) => Err(ApiError::new(
            dialect,
            ErrorKind::TooLarge,
            format!(
                "{what} {i} has {} tokens, more than the model's max_length {max_length} \
                 (truncate is false)",
                lengths[i]
            ),
        )),
        None => Ok(()),
    }
}

impl RerankModel {
    fn start(
        reranker: Reranker,
        metrics: Arc<Metrics>,
        pool: Arc<ThreadPool>,
    ) -> crate::Result<Self> {
        let model = reranker.model.clone();
        let options = reranker.options.clone();
        let batcher = Batcher::start(
            "rerank",
            Box::new(move |pairs: &[(String, String)], on_batch| {
                let pairs: Vec<(&str, &str)> = pairs
                    .iter()
                    .map(|(q, d)| (q.as_str(), d.as_str()))
                    .collect();
                Ok(model.window_logits(&pairs, &options, on_batch)?.values)
            }),
            metrics,
            pool,
        )?;
        Ok(Self {
            name: reranker.name,
            model: reranker.model,
            long_document: reranker.options.long_document,
            batcher,
        })
    }

    async fn rerank(
        &self,
        dialect: Dialect,
        request: RerankRequest,
    ) -> Result<RerankOutput, ApiError> {
        let RerankRequest {
            query,
            documents,
            raw_scores,
            truncate,
            max_tokens_per_doc,
            count_tokens,
        } = request;
        let max_length = self.model.max_length();
        // Cutting to at least max_length changes nothing unless windows read past it.
        let cut_documents = max_tokens_per_doc
            .filter(|&n| n < max_length || self.long_document != LongDocument::Truncate);
        let check_length = !truncate && self.long_document == LongDocument::Truncate;
        let model = self.model.clone();
        let (pairs, tokens) = blocking(dialect, move || {
            let documents = match cut_documents {
                Some(n) => documents
                    .iter()
                    .map(|d| Ok(model.document_prefix(d, n)?.to_string()))
                    .collect::<crate::Result<Vec<_>>>()?,
                None => documents,
            };
            let pairs: Vec<(String, String)> =
                documents.into_iter().map(|d| (query.clone(), d)).collect();
            if !(check_length || count_tokens) {
                return Ok((pairs, Vec::new()));
            }
            let borrowed: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(q, d)| (q.as_str(), d.as_str()))
                .collect();
            let lengths = model.untruncated_lengths(&borrowed)?;
            Ok((pairs, lengths))
        })
        .await?;
        if check_length {
            check_lengths(dialect, "document", &tokens, max_length)?;
        }
        let mut scores = self
            .batcher
            .submit(pairs)
            .await
            .map_err(|e| ApiError::from_core(dialect, e))?;
        let activation = if raw_scores {
            Activation::Identity
        } else {
            self.model.activation()
        };
        activation.apply(&mut scores, 1);
        if let Some(i) = scores.iter().position(|v| !v.is_finite()) {
            return Err(ApiError::new(
                dialect,
                ErrorKind::Backend,
                format!("the model produced a non-finite score for document {i}"),
            ));
        }
        Ok(RerankOutput {
            scores,
            tokens: tokens.iter().map(|&n| n.min(max_length)).sum(),
        })
    }
}

impl EmbedModel {
    fn start(
        embedder: Embedder,
        metrics: Arc<Metrics>,
        pool: Arc<ThreadPool>,
    ) -> crate::Result<Self> {
        let model = embedder.model.clone();
        let (batch_size, max_batch_tokens) = (embedder.batch_size, embedder.max_batch_tokens);
        let batcher = Batcher::start(
            "embed",
            Box::new(move |texts: &[String], on_batch| {
                let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                let embeddings =
                    model.encode(&texts, batch_size, max_batch_tokens, None, on_batch)?;
                Ok(embeddings
                    .values
                    .chunks(embeddings.dim.max(1))
                    .map(<[f32]>::to_vec)
                    .collect())
            }),
            metrics,
            pool,
        )?;
        Ok(Self {
            name: embedder.name,
            model: embedder.model,
            batcher,
        })
    }

    async fn embed(
        &self,
        dialect: Dialect,
        request: EmbedRequest,
    ) -> Result<EmbedOutput, ApiError> {
        let max_length = self.model.max_length();
        let model = self.model.clone();
        let EmbedRequest {
            texts,
            normalize,
            truncate,
            count_tokens,
        } = request;
        let (texts, tokens) = if truncate && !count_tokens {
            (texts, Vec::new())
        } else {
            blocking(dialect, move || {
                let borrowed: Vec<&str> = texts.iter().map(String::as_str).collect();
                let lengths = model.untruncated_lengths(&borrowed)?;
                Ok((texts, lengths))
            })
            .await?
        };
        if !truncate {
            check_lengths(dialect, "input", &tokens, max_length)?;
        }
        let mut embeddings = self
            .batcher
            .submit(texts)
            .await
            .map_err(|e| ApiError::from_core(dialect, e))?;
        if normalize && !self.model.normalizes() {
            for row in &mut embeddings {
                let dim = row.len();
                normalize_rows(row, dim);
            }
        }
        Ok(EmbedOutput {
            embeddings,
            tokens: tokens.iter().map(|&n| n.min(max_length)).sum(),
        })
    }
}
