//! `crossrank._core.Server`: the Python handle on `crate::serve::Server`. It serves on its
//! own threads; Python only starts it, waits (in short slices, so Ctrl-C and SIGTERM
//! handlers run) and stops it. `crossrank.serve()` (python/crossrank/server.py) is the
//! blocking front end.

use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::bi_encoder::PyBiEncoder;
use super::cross_encoder::PyCrossEncoder;
use super::errors::to_py;
use super::inputs::positive;
use super::threads::detach;
use crate::serve::{Embedder, Reranker, ServeOptions, Server};

/// A running HTTP server for a reranker and/or an embedding model (see
/// ``crossrank.serve``). See ``crossrank/_core.pyi`` for the docs.
#[pyclass(name = "Server", module = "crossrank", frozen)]
pub struct PyServer {
    inner: Server,
    host: String,
}

#[pymethods]
impl PyServer {
    #[new]
    #[pyo3(signature = (model=None, embed_model=None, *, host="127.0.0.1", port=8080,
                        batch_size=32, max_client_batch_size=1024, max_concurrent_requests=512,
                        max_body_bytes=8_388_608, request_timeout=300.0, api_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: Option<PyRef<'_, PyCrossEncoder>>,
        embed_model: Option<PyRef<'_, PyBiEncoder>>,
        host: &str,
        port: i64,
        batch_size: i64,
        max_client_batch_size: i64,
        max_concurrent_requests: i64,
        max_body_bytes: i64,
        request_timeout: f64,
        api_key: Option<String>,
    ) -> PyResult<Self> {
        let port = u16::try_from(port)
            .map_err(|_| PyValueError::new_err(format!("port must be 0..65535, got {port}")))?;
        if !(request_timeout.is_finite() && request_timeout > 0.0) {
            return Err(PyValueError::new_err(format!(
                "request_timeout must be a positive number of seconds, got {request_timeout}"
            )));
        }
        let batch_size = positive(batch_size, "batch_size")?;
        let options = ServeOptions {
            host: host.to_string(),
            port,
            max_client_batch_size: positive(max_client_batch_size, "max_client_batch_size")?,
            max_concurrent_requests: positive(max_concurrent_requests, "max_concurrent_requests")?,
            max_body_bytes: positive(max_body_bytes, "max_body_bytes")?,
            request_timeout: Duration::from_secs_f64(request_timeout),
            api_key,
        };
        let reranker = model.map(|m| Reranker {
            name: m.name().to_string(),
            model: m.inner().clone(),
            options: m.default_options(batch_size),
        });
        let embedder = embed_model.map(|e| Embedder {
            name: e.name().to_string(),
            model: e.inner().clone(),
            batch_size,
            max_batch_tokens: e.max_batch_tokens(),
        });
        let inner = detach(py, || Server::start(reranker, embedder, options)).map_err(to_py)?;
        Ok(Self {
            inner,
            host: host.to_string(),
        })
    }

    /// The port it listens on (the free one it was given with port=0).
    #[getter]
    fn port(&self) -> u16 {
        self.inner.local_addr().port()
    }

    /// The address it was asked to listen on.
    #[getter]
    fn host(&self) -> &str {
        &self.host
    }

    /// ``http://host:port``.
    #[getter]
    fn url(&self) -> String {
        format!("http://{}", self.inner.local_addr())
    }

    /// Waits for the server to stop, at most ``timeout`` seconds (None: until it does).
    /// True when it has stopped.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = match timeout {
            Some(t) if t.is_finite() && t >= 0.0 => Some(Duration::from_secs_f64(t)),
            Some(t) => {
                return Err(PyValueError::new_err(format!(
                    "timeout must be >= 0 seconds, got {t}"
                )))
            }
            None => None,
        };
        py.detach(|| self.inner.wait(timeout)).map_err(to_py)
    }

    /// Stops accepting connections; requests in flight are still answered. Returns at
    /// once; ``wait()`` for the end.
    fn shutdown(&self) {
        self.inner.shutdown();
    }

    fn __repr__(&self) -> String {
        format!("Server(url={:?})", self.url())
    }
}
