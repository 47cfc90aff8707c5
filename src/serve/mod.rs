//! `crossrank serve`: one HTTP server for a reranker and an embedding model that speaks the
//! rerank and embedding APIs clients already use, so any of them points at crossrank:
//!
//! | route | dialect | module |
//! |---|---|---|
//! | `POST /rerank`, `POST /embed`, `GET /info`, `GET /health` | Text Embeddings Inference | [`tei`] |
//! | `POST /v1/rerank` (Cohere v1 and Jina/infinity share it), `POST /v2/rerank` | Cohere, Jina | [`cohere`] |
//! | `POST /v1/embeddings` | OpenAI | [`openai`] |
//! | `GET /metrics` | Prometheus text | [`metrics`] |
//!
//! Requests never wait on each other's models or the GIL: each model has one
//! [`batcher::Batcher`], a thread that merges the requests waiting for it into one call of
//! the model (which sorts the pairs by length into token-budget batches) and answers each
//! request with its own rows. The server is a transport: its scores are those of
//! `CrossEncoder::predict` / `BiEncoder::encode` on the same inputs.

mod app;
mod batcher;
mod cohere;
mod errors;
mod metrics;
mod openai;
mod service;
mod tei;

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::score::bi_encoder::BiEncoder;
use crate::score::cross_encoder::{CrossEncoder, PredictOptions};

/// A reranker as the server runs it: the model and the options of a plain `predict`
/// (long-document mode, stride, token budget); `name` is what responses call it.
pub struct Reranker {
    pub name: String,
    pub model: Arc<CrossEncoder>,
    pub options: PredictOptions,
}

/// An embedding model as the server runs it.
pub struct Embedder {
    pub name: String,
    pub model: Arc<BiEncoder>,
    pub batch_size: usize,
    pub max_batch_tokens: Option<usize>,
}

/// The server's limits and address; `Default` is what `crossrank serve` uses.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub host: String,
    /// 0: a free port, reported by [`Server::local_addr`].
    pub port: u16,
    /// Documents (rerank) or texts (embed) one request may send; more is a 413.
    pub max_client_batch_size: usize,
    /// Requests admitted at once (queued or running); one more is a 429, so the queue and
    /// its memory stay bounded.
    pub max_concurrent_requests: usize,
    /// Request bodies above this many bytes are a 413.
    pub max_body_bytes: usize,
    /// A request not answered within this long gets a 503 and its work is dropped.
    pub request_timeout: Duration,
    /// `Authorization: Bearer <key>` required on every route but `/health`.
    pub api_key: Option<String>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            max_client_batch_size: 1024,
            max_concurrent_requests: 512,
            max_body_bytes: 8 * 1024 * 1024,
            request_timeout: Duration::from_secs(300),
            api_key: None,
        }
    }
}

impl ServeOptions {
    fn check(&self) -> Result<()> {
        for (name, value) in [
            ("max_client_batch_size", self.max_client_batch_size),
            ("max_concurrent_requests", self.max_concurrent_requests),
            ("max_body_bytes", self.max_body_bytes),
        ] {
            if value == 0 {
                return Err(Error::invalid(format!("{name} must be >= 1")));
            }
        }
        if self.request_timeout.is_zero() {
            return Err(Error::invalid("request_timeout must be > 0"));
        }
        if self.api_key.as_deref() == Some("") {
            return Err(Error::invalid("api_key must not be empty"));
        }
        Ok(())
    }
}

/// A running server: started by [`Server::start`], stopped gracefully by
/// [`Server::shutdown`] (requests in flight are answered first).
pub struct Server {
    address: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Mutex<Option<JoinHandle<Result<()>>>>,
    finished: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

impl Server {
    /// Binds the address (so a taken port fails here, not later) and serves on a thread
    /// of its own until [`shutdown`](Self::shutdown).
    pub fn start(
        reranker: Option<Reranker>,
        embedder: Option<Embedder>,
        options: ServeOptions,
    ) -> Result<Self> {
        options.check()?;
        if reranker.is_none() && embedder.is_none() {
            return Err(Error::invalid(
                "serve needs a reranker (model) or an embedding model (embed_model)",
            ));
        }
        if let Some(r) = &reranker {
            r.model.check_rankable()?;
            r.model
                .check_long_document(r.options.long_document, r.options.stride)?;
        }
        let listener = TcpListener::bind((options.host.as_str(), options.port)).map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot listen on {}:{}: {e}", options.host, options.port),
            ))
        })?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let finished = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let done = finished.clone();
        let thread = std::thread::Builder::new()
            .name("crossrank-serve".into())
            .spawn(move || {
                let result = app::run(listener, reranker, embedder, options, stopped);
                let (flag, signal) = &*done;
                *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
                signal.notify_all();
                result
            })?;
        Ok(Self {
            address,
            stop,
            thread: Mutex::new(Some(thread)),
            finished,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting connections; requests in flight are still answered.
    pub fn shutdown(&self) {
        // Err only when the server already ended (no receiver): nothing to stop.
        let _ = self.stop.send(true);
    }

    /// Waits until the server has stopped, at most `timeout` (`None`: for ever); true
    /// when it has. Returns the server's error if it ended with one.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        let (flag, signal) = &*self.finished;
        let mut finished = flag.lock().unwrap_or_else(|e| e.into_inner());
        match timeout {
            None => {
                while !*finished {
                    finished = signal.wait(finished).unwrap_or_else(|e| e.into_inner());
                }
            }
            Some(timeout) => {
                finished = signal
                    .wait_timeout_while(finished, timeout, |done| !*done)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        if !*finished {
            return Ok(false);
        }
        drop(finished);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        match thread.map(JoinHandle::join) {
            Some(Ok(result)) => result.map(|()| true),
            Some(Err(_)) => Err(Error::Io(std::io::Error::other(
                "the server thread panicked",
            ))),
            None => Ok(true),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
        let _ = self.wait(None);
    }
}
