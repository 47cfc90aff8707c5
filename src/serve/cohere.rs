//! Cohere's rerank API, which Jina and infinity also speak.
//!
//! - `POST /v1/rerank` (Cohere v1 and Jina/infinity, one handler) `{model?, query,
//!   documents: [str | {text}], top_n?, return_documents=false, max_tokens_per_doc=4096}`
//!   -> `{id, model, results: [{index, relevance_score, document?: {text}}], meta, usage}`:
//!   Cohere's fields (`id`, `meta`) and Jina's (`model`, `usage`) side by side.
//! - `POST /v2/rerank`: the same request -> `{id, results, meta}`.
//!
//! Results are sorted by score, best first, `index` pointing into the request's documents;
//! scores are the model's (sigmoid for one label), as Cohere's `relevance_score` in [0, 1].
//! `return_documents` defaults to false, as in Cohere's and infinity's APIs (Jina's own
//! service defaults it to true; Jina clients that want the text ask for it).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::app::{body_bytes, Shared};
use super::errors::{parse_body, ApiError, Dialect, ErrorKind};
use super::service::{AppState, RerankOutput, RerankRequest};
use crate::score::cross_encoder::rank_by_score;

const DIALECT: Dialect = Dialect::Cohere;

/// Cohere's default `max_tokens_per_doc`.
const MAX_TOKENS_PER_DOC: usize = 4096;

/// A document as a string, or as an object whose `text` is read.
#[derive(Deserialize)]
#[serde(untagged)]
enum Document {
    Text(String),
    Object(Map<String, Value>),
}

impl Document {
    fn text(self, index: usize) -> Result<String, ApiError> {
        match self {
            Self::Text(text) => Ok(text),
            Self::Object(mut object) => match object.remove("text") {
                Some(Value::String(text)) => Ok(text),
                _ => Err(ApiError::new(
                    DIALECT,
                    ErrorKind::InvalidFields,
                    format!("documents[{index}] is an object without a string \"text\" field"),
                )),
            },
        }
    }
}

#[derive(Deserialize)]
struct Rerank {
    model: Option<String>,
    query: String,
    documents: Vec<Document>,
    top_n: Option<i64>,
    #[serde(default)]
    return_documents: bool,
    max_tokens_per_doc: Option<i64>,
}

/// A request's documents, `top_n` and `max_tokens_per_doc`, checked.
struct Checked {
    documents: Vec<String>,
    top_n: Option<usize>,
    max_tokens_per_doc: usize,
}

fn positive(name: &str, value: Option<i64>) -> Result<Option<usize>, ApiError> {
    match value {
        None => Ok(None),
        Some(n) if n >= 1 => Ok(Some(n as usize)),
        Some(n) => Err(ApiError::new(
            DIALECT,
            ErrorKind::InvalidFields,
            format!("{name} must be >= 1, got {n}"),
        )),
    }
}

impl Rerank {
    fn check(&mut self) -> Result<Checked, ApiError> {
        let documents = std::mem::take(&mut self.documents)
            .into_iter()
            .enumerate()
            .map(|(i, d)| d.text(i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Checked {
            documents,
            top_n: positive("top_n", self.top_n)?,
            max_tokens_per_doc: positive("max_tokens_per_doc", self.max_tokens_per_doc)?
                .unwrap_or(MAX_TOKENS_PER_DOC),
        })
    }
}

/// `count_tokens`: the v1 route (Jina, infinity) reports the tokens read in `usage`; v2
/// does not.
async fn score(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
    count_tokens: bool,
) -> Result<(Rerank, Checked, RerankOutput), ApiError> {
    let mut request: Rerank = parse_body(DIALECT, &body_bytes(DIALECT, body)?)?;
    let checked = request.check()?;
    let output = state
        .rerank(
            DIALECT,
            RerankRequest {
                query: request.query.clone(),
                documents: checked.documents.clone(),
                raw_scores: false,
                truncate: true,
                max_tokens_per_doc: Some(checked.max_tokens_per_doc),
                count_tokens,
            },
        )
        .await?;
    Ok((request, checked, output))
}

fn results(request: &Rerank, checked: Checked, scores: Vec<f32>) -> Vec<Value> {
    let mut documents = checked.documents;
    rank_by_score(scores, checked.top_n)
        .into_iter()
        .map(|(index, score)| {
            let mut result = json!({"index": index, "relevance_score": score});
            if request.return_documents {
                result["document"] = json!({"text": std::mem::take(&mut documents[index])});
            }
            result
        })
        .collect()
}

fn meta(version: &str) -> Value {
    json!({"api_version": {"version": version}, "billed_units": {"search_units": 1}})
}

pub async fn rerank_v1(
    State(state): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (request, checked, output) = score(&state, body, true).await?;
    let model = request.model.clone().unwrap_or_else(|| {
        state
            .reranker(DIALECT)
            .map(|r| r.name.clone())
            .unwrap_or_default()
    });
    Ok(Json(json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "model": model,
        "results": results(&request, checked, output.scores),
        "meta": meta("1"),
        "usage": {"total_tokens": output.tokens, "prompt_tokens": output.tokens},
    })))
}

pub async fn rerank_v2(
    State(state): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (request, checked, output) = score(&state, body, false).await?;
    Ok(Json(json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "results": results(&request, checked, output.scores),
        "meta": meta("2"),
    })))
}
