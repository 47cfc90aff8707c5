//! The router, what wraps every route (API key, metrics, body limit), and the runtime
//! that serves it until the server is told to stop.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use subtle::ConstantTimeEq;
use tokio::sync::watch;

use super::errors::{ApiError, Dialect, ErrorKind};
use super::service::AppState;
use super::{cohere, openai, tei, Embedder, Reranker, ServeOptions};
use crate::error::Error;

pub type Shared = State<Arc<AppState>>;

/// Serves on `listener` until `stop` turns true, then answers the requests in flight.
pub fn run(
    listener: TcpListener,
    reranker: Option<Reranker>,
    embedder: Option<Embedder>,
    options: ServeOptions,
    mut stop: watch::Receiver<bool>,
) -> crate::Result<()> {
    // Two threads: handlers only parse, wait and answer; the models run on the batchers'
    // threads and rayon's pool.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("crossrank-http")
        .enable_all()
        .build()?;
    let state = Arc::new(AppState::new(reranker, embedder, options)?);
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async move {
                // Err: the Server handle is gone, which also means stop.
                let _ = stop.wait_for(|stopped| *stopped).await;
            })
            .await
            .map_err(Error::Io)
    })
}

pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.options.max_body_bytes;
    Router::new()
        .route("/rerank", post(tei::rerank))
        .route("/embed", post(tei::embed))
        .route("/info", get(tei::info))
        .route("/health", get(health))
        .route("/v1/rerank", post(cohere::rerank_v1))
        .route("/v2/rerank", post(cohere::rerank_v2))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// The body's bytes, or the dialect's error: 413 past the body limit.
pub fn body_bytes(
    dialect: Dialect,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let kind = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ErrorKind::TooLarge
        } else {
            ErrorKind::MalformedJson
        };
        ApiError::new(dialect, kind, rejection.body_text())
    })
}

async fn health() -> StatusCode {
    StatusCode::OK
}

async fn metrics(State(state): Shared) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found(request: Request) -> ApiError {
    let path = request.uri().path();
    ApiError::new(
        Dialect::of_path(path),
        ErrorKind::NotFound,
        format!("no route {} {path}", request.method()),
    )
}

/// `Authorization: Bearer <api_key>` on every route but `/health` when a key is set.
async fn require_api_key(State(state): Shared, request: Request, next: Next) -> Response {
    let Some(key) = state.options.api_key.as_deref() else {
        return next.run(request).await;
    };
    if request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(given) if bool::from(given.as_bytes().ct_eq(key.as_bytes())) => {
            next.run(request).await
        }
        _ => ApiError::new(
            Dialect::of_path(request.uri().path()),
            ErrorKind::Unauthorized,
            "missing or wrong API key (send Authorization: Bearer <key>)",
        )
        .into_response(),
    }
}

/// Counts each request and its latency by route; paths that are no route count together.
async fn record(State(state): Shared, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.record_request(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
