//! OpenAI's embeddings API: `POST /v1/embeddings` `{input: str | [str], model?,
//! encoding_format="float" | "base64", dimensions?}` -> `{object: "list", data: [{object:
//! "embedding", index, embedding}], model, usage: {prompt_tokens, total_tokens}}`.
//!
//! Embeddings are the model's own (`BiEncoder.encode`: normalized when the model has a
//! Normalize module). `base64` is the little-endian f32 bytes, which OpenAI's SDK asks for
//! by default and decodes. Token-id inputs and a `dimensions` other than the model's are
//! refused: crossrank embeds text, at the model's width.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::app::{body_bytes, Shared};
use super::errors::{parse_body, ApiError, Dialect, ErrorKind};
use super::service::EmbedRequest;

const DIALECT: Dialect = Dialect::OpenAi;

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
    /// Token ids, or a list with other than strings: matched (never read) to refuse it
    /// with a message that says so.
    #[allow(dead_code)]
    Other(Vec<serde::de::IgnoredAny>),
}

#[derive(Deserialize)]
struct Embeddings {
    input: Input,
    model: Option<String>,
    encoding_format: Option<String>,
    dimensions: Option<i64>,
}

fn invalid(message: String) -> ApiError {
    ApiError::new(DIALECT, ErrorKind::InvalidFields, message)
}

fn base64_floats(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub async fn embeddings(
    State(state): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: Embeddings = parse_body(DIALECT, &body_bytes(DIALECT, body)?)?;
    let texts = match request.input {
        Input::One(text) => vec![text],
        Input::Many(texts) => texts,
        Input::Other(_) => {
            return Err(invalid(
                "`input` must be a string or a list of strings (token ids are not supported)"
                    .into(),
            ))
        }
    };
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(invalid(format!(
                "encoding_format must be \"float\" or \"base64\", got {other:?}"
            )))
        }
    };
    let embedder = state.embedder(DIALECT)?;
    let dim = embedder.model.dim();
    if let Some(dimensions) = request.dimensions.filter(|&d| d != dim as i64) {
        return Err(invalid(format!(
            "dimensions={dimensions}: this model's embeddings have {dim} dimensions"
        )));
    }
    let model = request.model.unwrap_or_else(|| embedder.name.clone());
    let output = state
        .embed(
            DIALECT,
            EmbedRequest {
                texts,
                normalize: false,
                truncate: true,
                count_tokens: true,
            },
        )
        .await?;
    let data: Vec<Value> = output
        .embeddings
        .iter()
        .enumerate()
        .map(|(index, embedding)| {
            let embedding = if base64 {
                json!(base64_floats(embedding))
            } else {
                json!(embedding)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": output.tokens, "total_tokens": output.tokens},
    })))
}
