//! Text Embeddings Inference's routes: `POST /rerank`, `POST /embed`, `GET /info`.
//!
//! - `/rerank` `{query, texts, raw_scores=false, return_text=false, truncate=true}` ->
//!   `[{index, score, text?}]`, best first. `raw_scores`: the logits, else the model's
//!   activation (sigmoid for one label). `truncate: false`: a pair longer than max_length
//!   is a 413, not silently cut.
//! - `/embed` `{inputs: str | [str], normalize=true, truncate=true}` -> `[[f32]]`.
//!
//! TEI cuts on the right only; `truncation_direction: "Left"` is refused, as is
//! `prompt_name` (crossrank models have no named prompts).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::app::{body_bytes, Shared};
use super::errors::{parse_body, ApiError, Dialect, ErrorKind};
use super::service::{EmbedRequest, RerankRequest};
use crate::score::cross_encoder::rank_by_score;

const DIALECT: Dialect = Dialect::Tei;

#[derive(Deserialize)]
struct Rerank {
    query: String,
    texts: Vec<String>,
    #[serde(default)]
    raw_scores: bool,
    #[serde(default)]
    return_text: bool,
    truncate: Option<bool>,
    truncation_direction: Option<String>,
}

/// One text or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Texts {
    One(String),
    Many(Vec<String>),
}

impl Texts {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(text) => vec![text],
            Self::Many(texts) => texts,
        }
    }
}

#[derive(Deserialize)]
struct Embed {
    inputs: Texts,
    normalize: Option<bool>,
    truncate: Option<bool>,
    truncation_direction: Option<String>,
    prompt_name: Option<String>,
}

fn check_direction(direction: Option<&str>) -> Result<(), ApiError> {
    match direction {
        None | Some("Right" | "right") => Ok(()),
        Some(other) => Err(ApiError::new(
            DIALECT,
            ErrorKind::InvalidFields,
            format!("truncation_direction {other:?} is not supported; crossrank cuts on the right"),
        )),
    }
}

pub async fn rerank(
    State(state): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: Rerank = parse_body(DIALECT, &body_bytes(DIALECT, body)?)?;
    check_direction(request.truncation_direction.as_deref())?;
    let output = state
        .rerank(
            DIALECT,
            RerankRequest {
                query: request.query,
                documents: request.texts.clone(),
                raw_scores: request.raw_scores,
                truncate: request.truncate.unwrap_or(true),
                max_tokens_per_doc: None,
                count_tokens: false,
            },
        )
        .await?;
    let results: Vec<Value> = rank_by_score(output.scores, None)
        .into_iter()
        .map(|(index, score)| {
            let mut result = json!({"index": index, "score": score});
            if request.return_text {
                result["text"] = json!(request.texts[index]);
            }
            result
        })
        .collect();
    Ok(Json(Value::Array(results)))
}

pub async fn embed(
    State(state): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Vec<Vec<f32>>>, ApiError> {
    let request: Embed = parse_body(DIALECT, &body_bytes(DIALECT, body)?)?;
    check_direction(request.truncation_direction.as_deref())?;
    if let Some(name) = request.prompt_name {
        return Err(ApiError::new(
            DIALECT,
            ErrorKind::InvalidFields,
            format!("prompt_name {name:?}: this model has no named prompts"),
        ));
    }
    let output = state
        .embed(
            DIALECT,
            EmbedRequest {
                texts: request.inputs.into_vec(),
                normalize: request.normalize.unwrap_or(true),
                truncate: request.truncate.unwrap_or(true),
                count_tokens: false,
            },
        )
        .await?;
    Ok(Json(output.embeddings))
}

/// What the server runs, as TEI's `/info` describes it (one model: the reranker if there
/// is one, else the embedding model; `models` lists both).
pub async fn info(State(state): Shared) -> Json<Value> {
    let options = &state.options;
    let reranker = state.reranker.as_ref().map(|r| {
        json!({
            "model_id": r.name,
            "model_type": {"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}},
            "max_input_length": r.model.max_length(),
            "model_dtype": r.model.precision().name(),
        })
    });
    let embedder = state.embedder.as_ref().map(|e| {
        json!({
            "model_id": e.name,
            "model_type": {"embedding": {"pooling": e.model.pooling().name()}},
            "max_input_length": e.model.max_length(),
            "model_dtype": e.model.precision().name(),
        })
    });
    let main = reranker
        .clone()
        .or_else(|| embedder.clone())
        .unwrap_or_default();
    let mut info = json!({
        "model_sha": null,
        "max_concurrent_requests": options.max_concurrent_requests,
        "max_client_batch_size": options.max_client_batch_size,
        "max_batch_requests": null,
        "tokenization_workers": rayon::current_num_threads(),
        "version": env!("CARGO_PKG_VERSION"),
        "sha": null,
        "docker_label": null,
    });
    info["models"] = json!([reranker, embedder]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>());
    if let (Value::Object(info), Value::Object(main)) = (&mut info, main) {
        info.extend(main);
    }
    Json(info)
}
