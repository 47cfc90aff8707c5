//! `crossrank.BiEncoder`: the Python face of `crate::score::bi_encoder::BiEncoder`.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::asyncio::run_in_executor;
use super::errors::{load_error, to_py};
use super::inputs::{extract_texts, hub_options, model_path, optional_positive, positive};
use super::progress::Progress;
use super::threads::{detach, detach_interruptible};
use crate::model::precision::Precision;
use crate::rank::scorer::BiEncoderScorer;
use crate::retrieve::similarity::cosine_matrix;
use crate::score::bi_encoder::{BiEncoder, BiEncoderOptions};
use crate::score::pooling::Pooling;

#[derive(Clone)]
struct InitArgs {
    model_name_or_path: String,
    max_length: Option<usize>,
    device: String,
    pooling: Option<Pooling>,
    normalize_embeddings: bool,
    revision: Option<String>,
    cache_folder: Option<PathBuf>,
    local_files_only: bool,
    max_batch_tokens: Option<usize>,
    precision: Precision,
}

/// Rows of a 1-D (one vector) or 2-D (n, dim) numpy array as f32, row-major.
fn matrix(array: &PyReadonlyArrayDyn<'_, f32>, name: &str) -> PyResult<(Vec<f32>, usize)> {
    let shape = array.shape().to_vec();
    let dim = match shape.as_slice() {
        [d] | [_, d] => *d,
        _ => {
            return Err(PyValueError::new_err(format!(
                "{name} must be 1-D or 2-D, got shape {shape:?}"
            )))
        }
    };
    Ok((array.as_array().iter().copied().collect(), dim))
}

/// A bi-encoder that embeds texts; same API as ``SentenceTransformer.encode``.
/// See ``crossrank/_core.pyi`` for the docs.
#[pyclass(name = "BiEncoder", module = "crossrank", frozen, subclass)]
pub struct PyBiEncoder {
    inner: Arc<BiEncoder>,
    args: InitArgs,
}

impl PyBiEncoder {
    /// The core model, shared (e.g. with a `ModelSignals`).
    pub fn inner(&self) -> &Arc<BiEncoder> {
        &self.inner
    }

    /// The hub id or directory it was loaded from.
    pub fn name(&self) -> &str {
        &self.args.model_name_or_path
    }

    /// The padded-token budget of a batch it was configured with.
    pub fn max_batch_tokens(&self) -> Option<usize> {
        self.args.max_batch_tokens
    }

    /// This model as a scorer (cosine of query and document embeddings), batched as a
    /// plain `encode(texts, batch_size=batch_size)` is.
    pub fn scorer(&self, batch_size: usize) -> BiEncoderScorer {
        BiEncoderScorer {
            model: self.inner.clone(),
            batch_size,
            max_batch_tokens: self.args.max_batch_tokens,
        }
    }
}

#[pymethods]
impl PyBiEncoder {
    #[new]
    #[pyo3(signature = (model_name_or_path, max_length=None, device=None, pooling=None,
                        normalize_embeddings=false, revision=None, cache_folder=None,
                        local_files_only=false, max_batch_tokens=None,
                        precision=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model_name_or_path: &Bound<'_, PyAny>,
        max_length: Option<i64>,
        device: Option<String>,
        pooling: Option<String>,
        normalize_embeddings: bool,
        revision: Option<String>,
        cache_folder: Option<PathBuf>,
        local_files_only: bool,
        max_batch_tokens: Option<i64>,
        precision: Option<String>,
    ) -> PyResult<Self> {
        let args = InitArgs {
            model_name_or_path: model_path(model_name_or_path)?,
            max_length: optional_positive(max_length, "max_length")?,
            device: device.unwrap_or_else(|| "cpu".to_string()),
            pooling: pooling
                .map(|p| p.parse::<Pooling>())
                .transpose()
                .map_err(to_py)?,
            normalize_embeddings,
            revision,
            cache_folder,
            local_files_only,
            max_batch_tokens: optional_positive(max_batch_tokens, "max_batch_tokens")?,
            precision: precision
                .as_deref()
                .map_or(Ok(Precision::Float32), str::parse)
                .map_err(to_py)?,
        };
        let options = BiEncoderOptions {
            max_length: args.max_length,
            device: Some(args.device.clone()),
            precision: args.precision,
            pooling: args.pooling,
            normalize_embeddings: args.normalize_embeddings,
            hub: hub_options(&args.revision, &args.cache_folder, args.local_files_only),
        };
        let name = args.model_name_or_path.clone();
        let inner =
            detach(py, || BiEncoder::load(&name, &options)).map_err(|e| load_error(&name, e))?;
        Ok(Self {
            inner: Arc::new(inner),
            args,
        })
    }

    /// ``await be.aencode(...)``: :meth:`encode` on the running loop's default executor.
    #[pyo3(signature = (*args, **kwargs))]
    fn aencode<'py>(
        slf: &Bound<'py, Self>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        run_in_executor(slf.as_any(), "encode", args, kwargs)
    }

    /// Embeds texts: (n, dim) float32; one str -> (dim,).
    #[pyo3(signature = (sentences, batch_size=32, show_progress_bar=None, normalize_embeddings=None,
                        convert_to_numpy=true))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        sentences: &Bound<'py, PyAny>,
        batch_size: i64,
        show_progress_bar: Option<bool>,
        normalize_embeddings: Option<bool>,
        convert_to_numpy: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let batch_size = positive(batch_size, "batch_size")?;
        let (texts, singular) = extract_texts(sentences, "sentences")?;
        let borrowed: Vec<&str> = texts.iter().map(String::as_str).collect();
        let progress = Progress::new(py, show_progress_bar, borrowed.len(), "Encoding", "text")?;
        let inner = &self.inner;
        let max_tokens = self.args.max_batch_tokens;
        let result = detach_interruptible(py, |interrupt| {
            inner.encode(
                &borrowed,
                batch_size,
                max_tokens,
                normalize_embeddings,
                &mut |n| {
                    progress.update(n);
                    interrupt.check()
                },
            )
        });
        progress.close(py);
        let emb = result?.map_err(to_py)?;
        let (n, dim) = (borrowed.len(), emb.dim);
        if !convert_to_numpy {
            let rows: Vec<Vec<f32>> = emb.values.chunks(dim).map(<[f32]>::to_vec).collect();
            return Ok(if singular {
                PyList::new(py, &rows[0])?.into_any()
            } else {
                PyList::new(py, rows)?.into_any()
            });
        }
        let array = PyArray1::from_vec(py, emb.values);
        Ok(if singular {
            array.into_any()
        } else {
            array.reshape([n, dim])?.into_any()
        })
    }

    /// Cosine similarity matrix between two sets of embeddings (1-D inputs are one row).
    fn similarity<'py>(
        &self,
        py: Python<'py>,
        a: PyReadonlyArrayDyn<'py, f32>,
        b: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ((a, da), (b, db)) = (matrix(&a, "a")?, matrix(&b, "b")?);
        if da != db {
            return Err(PyValueError::new_err(format!(
                "embedding dimensions differ: {da} vs {db}"
            )));
        }
        let (n, m) = (a.len() / da.max(1), b.len() / db.max(1));
        let sims = detach(py, || cosine_matrix(&a, &b, da)).map_err(to_py)?;
        Ok(PyArray1::from_vec(py, sims).reshape([n, m])?.into_any())
    }

    /// Token ids of each text as the model sees them (after truncation).
    fn tokenize(&self, py: Python<'_>, sentences: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<u32>>> {
        let (texts, _) = extract_texts(sentences, "sentences")?;
        let borrowed: Vec<&str> = texts.iter().map(String::as_str).collect();
        let inner = &self.inner;
        detach(py, || inner.tokenize(&borrowed)).map_err(to_py)
    }

    /// The embedding size, as sentence-transformers' method of the same name.
    fn get_sentence_embedding_dimension(&self) -> usize {
        self.inner.dim()
    }

    /// "float32" (exact, the default) or "int8".
    #[getter]
    fn precision(&self) -> &'static str {
        self.inner.precision().name()
    }

    /// Tokens per text after truncation.
    #[getter]
    fn max_length(&self) -> usize {
        self.inner.max_length()
    }

    /// The pooling in use: ``"mean"``, ``"cls"``, ``"max"`` or ``"mean_sqrt_len"``.
    #[getter]
    fn pooling(&self) -> &'static str {
        self.inner.pooling().name()
    }

    /// Whether ``encode`` normalizes by default (the model has a Normalize module, or
    /// ``normalize_embeddings=True`` was passed at load).
    #[getter]
    fn normalize_embeddings(&self) -> bool {
        self.inner.normalizes()
    }

    fn __repr__(&self) -> String {
        format!(
            "BiEncoder({:?}, max_length={}, dim={}, pooling={:?}, normalize_embeddings={})",
            self.args.model_name_or_path,
            self.inner.max_length(),
            self.inner.dim(),
            self.inner.pooling().name(),
            if self.inner.normalizes() {
                "True"
            } else {
                "False"
            }
        )
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let a = &slf.get().args;
        let args = (
            a.model_name_or_path.clone(),
            a.max_length,
            a.device.clone(),
            a.pooling.map(|p| p.name()),
            a.normalize_embeddings,
            a.revision.clone(),
            a.cache_folder.clone(),
            a.local_files_only,
            a.max_batch_tokens,
            a.precision.name(),
        )
            .into_pyobject(py)?;
        Ok((slf.get_type().into_any(), args))
    }
}
