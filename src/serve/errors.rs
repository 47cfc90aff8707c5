//! Errors as each dialect's clients expect them. One [`ApiError`] (what went wrong) is
//! rendered by the [`Dialect`] of the route it happened on:
//!
//! | kind | TEI `{error, error_type}` | Cohere / Jina `{message}` | OpenAI `{error: {message, type, param, code}}` |
//! |---|---|---|---|
//! | malformed JSON | 400 | 400 | 400 |
//! | wrong or missing fields | 422 | 400 | 400 |
//! | empty input list | 400 | 400 | 400 |
//! | too many documents, body too large, input too long (truncate=false) | 413 | 413 | 413 |
//! | missing or wrong API key | 401 | 401 | 401 |
//! | unknown route | 404 | 404 | 404 |
//! | queue full (`max_concurrent_requests`) | 429 | 429 | 429 |
//! | not answered within the request timeout | 503 | 503 | 503 |
//! | the model failed | 424 | 500 | 500 |

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Tei,
    Cohere,
    OpenAi,
}

impl Dialect {
    /// The dialect a path's errors are written in; TEI's for paths that are no route.
    pub fn of_path(path: &str) -> Self {
        match path {
            "/v1/rerank" | "/v2/rerank" => Self::Cohere,
            "/v1/embeddings" => Self::OpenAi,
            _ => Self::Tei,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    MalformedJson,
    InvalidFields,
    Empty,
    TooLarge,
    Unauthorized,
    NotFound,
    Overloaded,
    Timeout,
    Backend,
}

#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    pub dialect: Dialect,
}

impl ApiError {
    pub fn new(dialect: Dialect, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            dialect,
        }
    }

    /// A core error from the model: the caller's input (a `ValueError` in Python) or the
    /// model itself.
    pub fn from_core(dialect: Dialect, error: Error) -> Self {
        let kind = match error {
            Error::InvalidArgument(_) | Error::Tokenizer(_) => ErrorKind::InvalidFields,
            _ => ErrorKind::Backend,
        };
        Self::new(dialect, kind, error.to_string())
    }

    pub fn status(&self) -> StatusCode {
        use ErrorKind::*;
        match (self.kind, self.dialect) {
            (MalformedJson | Empty, _) => StatusCode::BAD_REQUEST,
            (InvalidFields, Dialect::Tei) => StatusCode::UNPROCESSABLE_ENTITY,
            (InvalidFields, _) => StatusCode::BAD_REQUEST,
            (TooLarge, _) => StatusCode::PAYLOAD_TOO_LARGE,
            (Unauthorized, _) => StatusCode::UNAUTHORIZED,
            (NotFound, _) => StatusCode::NOT_FOUND,
            (Overloaded, _) => StatusCode::TOO_MANY_REQUESTS,
            (Timeout, _) => StatusCode::SERVICE_UNAVAILABLE,
            (Backend, Dialect::Tei) => StatusCode::FAILED_DEPENDENCY,
            (Backend, _) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// TEI's `error_type`.
    fn tei_type(&self) -> &'static str {
        use ErrorKind::*;
        match self.kind {
            MalformedJson | InvalidFields | TooLarge => "Validation",
            Empty => "Empty",
            Unauthorized => "Unauthorized",
            NotFound => "NotFound",
            Overloaded => "Overloaded",
            Timeout => "Unhealthy",
            Backend => "Backend",
        }
    }

    /// OpenAI's `type` and `code`.
    fn openai_type(&self) -> (&'static str, Option<&'static str>) {
        use ErrorKind::*;
        match self.kind {
            MalformedJson | InvalidFields | Empty | TooLarge | NotFound => {
                ("invalid_request_error", None)
            }
            Unauthorized => ("invalid_request_error", Some("invalid_api_key")),
            Overloaded => ("rate_limit_error", Some("rate_limit_exceeded")),
            Timeout | Backend => ("server_error", None),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.dialect {
            Dialect::Tei => json!({"error": self.message, "error_type": self.tei_type()}),
            Dialect::Cohere => json!({"message": self.message}),
            Dialect::OpenAi => {
                let (kind, code) = self.openai_type();
                json!({"error": {"message": self.message, "type": kind, "param": null, "code": code}})
            }
        };
        (self.status(), Json(body)).into_response()
    }
}

/// A request body parsed as `T`, with the dialect's errors for bad JSON.
pub fn parse_body<T: serde::de::DeserializeOwned>(
    dialect: Dialect,
    body: &[u8],
) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let kind = if e.is_data() {
            ErrorKind::InvalidFields
        } else {
            ErrorKind::MalformedJson
        };
        ApiError::new(dialect, kind, format!("invalid request body: {e}"))
    })
}
