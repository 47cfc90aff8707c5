//! `crossrank.CrossEncoder`: the Python face of `crate::score::cross_encoder::CrossEncoder`.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyList, PyString, PyTuple};

use super::asyncio::run_in_executor;
use super::errors::{load_error, to_py};
use super::inputs::{
    checked_pairs, extract_pairs, extract_text_list, hub_options, model_path, optional_positive,
    pair_strings, positive, query_str, PyPair,
};
use super::progress::Progress;
use super::threads::{detach, detach_interruptible};
use crate::model::precision::Precision;
use crate::model::tokenize::Truncation;
use crate::rank::scorer::CrossEncoderScorer;
use crate::score::batching::CHUNK;
use crate::score::cross_encoder::{
    rank_by_score, Activation, CrossEncoder, CrossEncoderOptions, PairDetails, PredictOptions,
    Scores,
};
use crate::score::long_document::LongDocument;

/// An activation given as a name ("sigmoid") or as a torch module (`torch.nn.Sigmoid()`),
/// which sentence-transformers users pass.
fn extract_activation(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Activation>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    let name = if obj.is_instance_of::<PyString>() {
        obj.extract::<String>()?
    } else if obj.is_callable() {
        obj.get_type().name()?.to_string()
    } else {
        return Err(PyTypeError::new_err(
            "activation_fn must be a str such as \"sigmoid\", or a torch activation module",
        ));
    };
    name.parse::<Activation>().map(Some).map_err(to_py)
}

/// Scores as numpy (n,) / (n, k), or plain Python lists.
fn scores_to_py<'py>(
    py: Python<'py>,
    scores: Scores,
    singular: bool,
    convert_to_numpy: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let k = scores.num_labels;
    let n = scores.values.len() / k.max(1);
    if singular && k == 1 {
        return Ok(scores.values[0].into_pyobject(py)?.into_any());
    }
    if !convert_to_numpy {
        if k == 1 {
            return Ok(PyList::new(py, scores.values)?.into_any());
        }
        let rows: Vec<Vec<f32>> = scores.values.chunks(k).map(<[f32]>::to_vec).collect();
        let rows = if singular {
            PyList::new(py, &rows[0])?
        } else {
            PyList::new(py, rows)?
        };
        return Ok(rows.into_any());
    }
    let array = PyArray1::from_vec(py, scores.values);
    Ok(match (k, singular) {
        (1, _) => array.into_any(),
        (_, true) => array.into_any(),
        _ => array.reshape([n, k])?.into_any(),
    })
}

/// `cache_size`: None, or an int >= 0 (0: no cache, as `functools.lru_cache(maxsize=0)`).
fn extract_cache_size(value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<usize>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "cache_size must be an int or None, got {}",
            value.get_type().name()?
        )));
    }
    let size: i64 = value.extract()?;
    usize::try_from(size)
        .map(Some)
        .map_err(|_| PyValueError::new_err(format!("cache_size must be >= 0, got {size}")))
}

/// One pair's details as a dict: ``num_tokens``, ``truncated`` and, in long_document
/// modes, ``window`` (the best window's index), ``num_windows`` and ``window_span`` (its
/// token span in the document).
fn set_details(entry: &Bound<'_, PyDict>, details: &PairDetails) -> PyResult<()> {
    entry.set_item("num_tokens", details.num_tokens)?;
    entry.set_item("truncated", details.truncated)?;
    if let Some(w) = &details.window {
        entry.set_item("window", w.index)?;
        entry.set_item("num_windows", w.count)?;
        entry.set_item("window_span", (w.start, w.end))?;
    }
    Ok(())
}

fn details_to_py<'py>(py: Python<'py>, details: &[PairDetails]) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for d in details {
        let entry = PyDict::new(py);
        set_details(&entry, d)?;
        out.append(entry)?;
    }
    Ok(out)
}

#[derive(Clone)]
struct InitArgs {
    model_name_or_path: String,
    max_length: Option<usize>,
    device: String,
    activation_fn: Option<Activation>,
    revision: Option<String>,
    cache_folder: Option<PathBuf>,
    local_files_only: bool,
    max_batch_tokens: Option<usize>,
    precision: Precision,
    long_document: LongDocument,
    stride: usize,
    instruction: Option<String>,
    truncation: Truncation,
    cache_size: Option<usize>,
}

/// A cross-encoder that scores (query, document) pairs; same API as
/// ``sentence_transformers.CrossEncoder``. See ``crossrank/_core.pyi`` for the docs.
#[pyclass(name = "CrossEncoder", module = "crossrank", frozen, subclass)]
pub struct PyCrossEncoder {
    inner: Arc<CrossEncoder>,
    args: InitArgs,
}

impl PyCrossEncoder {
    /// The core model, shared (e.g. with a `ModelSignals`).
    pub fn inner(&self) -> &Arc<CrossEncoder> {
        &self.inner
    }

    /// The hub id or directory it was loaded from.
    pub fn name(&self) -> &str {
        &self.args.model_name_or_path
    }

    /// Scores checked pairs [`CHUNK`] at a time: each chunk is copied out of Python and
    /// scored with the GIL released, so the copies never exceed one chunk. With `details`,
    /// also what happened to each pair's input.
    fn predict_chunked(
        &self,
        py: Python<'_>,
        pairs: &[PyPair<'_>],
        options: &PredictOptions,
        progress: &Progress,
        details: bool,
    ) -> PyResult<(Scores, Vec<PairDetails>)> {
        let mut all = Scores {
            values: Vec::new(),
            num_labels: self.inner.num_labels(),
        };
        let mut all_details = Vec::new();
        for chunk in pairs.chunks(CHUNK) {
            let owned = pair_strings(chunk)?;
            let borrowed: Vec<(&str, &str)> = owned
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            let inner = &self.inner;
            let (scores, chunk_details) = detach_interruptible(py, |interrupt| {
                let mut on_batch = |n| {
                    progress.update(n);
                    interrupt.check()
                };
                if details {
                    inner.predict_with_details(&borrowed, options, &mut on_batch)
                } else {
                    inner
                        .predict(&borrowed, options, &mut on_batch)
                        .map(|s| (s, Vec::new()))
                }
            })?
            .map_err(to_py)?;
            all.values.extend(scores.values);
            all_details.extend(chunk_details);
        }
        Ok((all, all_details))
    }

    /// Scores as `predict` returns them (an empty input: an empty array of the right shape).
    fn scores_out<'py>(
        &self,
        py: Python<'py>,
        scores: Scores,
        singular: bool,
        convert_to_numpy: bool,
        empty: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let k = scores.num_labels;
        if empty && convert_to_numpy {
            let array = PyArray1::<f32>::zeros(py, [0], false);
            return Ok(if k == 1 {
                array.into_any()
            } else {
                array.reshape([0, k])?.into_any()
            });
        }
        scores_to_py(py, scores, singular, convert_to_numpy)
    }

    /// This model as a scorer of (query, document) pairs, as a plain `predict` scores.
    pub fn scorer(&self, batch_size: usize) -> CrossEncoderScorer {
        CrossEncoderScorer {
            model: self.inner.clone(),
            options: self.default_options(batch_size),
        }
    }

    /// The options a plain `predict(pairs, batch_size=batch_size)` uses: the model's
    /// configured long-document mode, stride and token budget.
    pub fn default_options(&self, batch_size: usize) -> PredictOptions {
        PredictOptions {
            batch_size,
            max_batch_tokens: self.args.max_batch_tokens,
            activation: None,
            apply_softmax: false,
            long_document: self.args.long_document,
            stride: self.args.stride,
        }
    }

    fn options(
        &self,
        batch_size: i64,
        activation_fn: Option<&Bound<'_, PyAny>>,
        apply_softmax: bool,
    ) -> PyResult<PredictOptions> {
        Ok(PredictOptions {
            activation: extract_activation(activation_fn)?,
            apply_softmax,
            ..self.default_options(positive(batch_size, "batch_size")?)
        })
    }
}

#[pymethods]
impl PyCrossEncoder {
    #[new]
    #[pyo3(signature = (model_name_or_path, max_length=None, device=None, activation_fn=None,
                        revision=None, cache_folder=None, local_files_only=false, max_batch_tokens=None,
                        precision=None, long_document="truncate", stride=64, instruction=None,
                        truncation="longest_first", cache_size=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model_name_or_path: &Bound<'_, PyAny>,
        max_length: Option<i64>,
        device: Option<String>,
        activation_fn: Option<&Bound<'_, PyAny>>,
        revision: Option<String>,
        cache_folder: Option<PathBuf>,
        local_files_only: bool,
        max_batch_tokens: Option<i64>,
        precision: Option<String>,
        long_document: &str,
        stride: i64,
        instruction: Option<String>,
        truncation: &str,
        cache_size: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        if stride < 0 {
            return Err(PyValueError::new_err(format!(
                "stride must be >= 0, got {stride}"
            )));
        }
        let args = InitArgs {
            model_name_or_path: model_path(model_name_or_path)?,
            max_length: optional_positive(max_length, "max_length")?,
            device: device.unwrap_or_else(|| "cpu".to_string()),
            activation_fn: extract_activation(activation_fn)?,
            revision,
            cache_folder,
            local_files_only,
            max_batch_tokens: optional_positive(max_batch_tokens, "max_batch_tokens")?,
            precision: precision
                .as_deref()
                .map_or(Ok(Precision::Float32), str::parse)
                .map_err(to_py)?,
            long_document: long_document.parse().map_err(to_py)?,
            stride: stride as usize,
            instruction,
            truncation: truncation.parse().map_err(to_py)?,
            cache_size: extract_cache_size(cache_size)?,
        };
        let options = CrossEncoderOptions {
            max_length: args.max_length,
            activation: args.activation_fn,
            device: Some(args.device.clone()),
            precision: args.precision,
            hub: hub_options(&args.revision, &args.cache_folder, args.local_files_only),
            instruction: args.instruction.clone(),
            truncation: args.truncation,
            cache_size: args.cache_size,
        };
        let name = args.model_name_or_path.clone();
        let inner =
            detach(py, || CrossEncoder::load(&name, &options)).map_err(|e| load_error(&name, e))?;
        // Checked again by every predict; here so a bad mode or stride fails at load.
        inner
            .check_long_document(args.long_document, args.stride)
            .map_err(to_py)?;
        Ok(Self {
            inner: Arc::new(inner),
            args,
        })
    }

    /// Scores pairs. One pair in -> one float out (for single-label models).
    #[pyo3(signature = (sentences, batch_size=32, show_progress_bar=None, activation_fn=None,
                        apply_softmax=false, convert_to_numpy=true, return_details=false))]
    #[allow(clippy::too_many_arguments)]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        sentences: &Bound<'py, PyAny>,
        batch_size: i64,
        show_progress_bar: Option<bool>,
        activation_fn: Option<&Bound<'py, PyAny>>,
        apply_softmax: bool,
        convert_to_numpy: bool,
        return_details: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = self.options(batch_size, activation_fn, apply_softmax)?;
        let (pairs, singular) = checked_pairs(sentences)?;
        let progress = Progress::new(py, show_progress_bar, pairs.len(), "Scoring", "pair")?;
        let result = self.predict_chunked(py, &pairs, &options, &progress, return_details);
        progress.close(py);
        let (scores, details) = result?;
        if return_details {
            let details = details_to_py(py, &details)?;
            let scores =
                self.scores_out(py, scores, singular, convert_to_numpy, pairs.is_empty())?;
            let details = if singular {
                details.get_item(0)?
            } else {
                details.into_any()
            };
            return Ok(PyTuple::new(py, [scores, details])?.into_any());
        }
        self.scores_out(py, scores, singular, convert_to_numpy, pairs.is_empty())
    }

    /// Ranks documents for a query: ``[{"corpus_id", "score", "text"?}]``, best first.
    #[pyo3(signature = (query, documents, top_k=None, return_documents=false, batch_size=32,
                        show_progress_bar=None, activation_fn=None, return_details=false))]
    #[allow(clippy::too_many_arguments)]
    fn rank<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
        documents: &Bound<'py, PyAny>,
        top_k: Option<i64>,
        return_documents: bool,
        batch_size: i64,
        show_progress_bar: Option<bool>,
        activation_fn: Option<&Bound<'py, PyAny>>,
        return_details: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let options = self.options(batch_size, activation_fn, false)?;
        let query = query_str(query)?;
        let documents = extract_text_list(documents, "documents")?;
        let top_k = match top_k {
            Some(k) if k < 0 => {
                return Err(PyValueError::new_err(format!(
                    "top_k must be >= 0, got {k}"
                )))
            }
            k => k.map(|k| k as usize),
        };
        self.inner.check_rankable().map_err(to_py)?;
        let texts: Vec<&str> = documents.iter().map(String::as_str).collect();
        let pairs: Vec<(&str, &str)> = texts.iter().map(|d| (query.as_str(), *d)).collect();
        let progress = Progress::new(py, show_progress_bar, texts.len(), "Ranking", "doc")?;
        let inner = &self.inner;
        let result = detach_interruptible(py, |interrupt| {
            let mut on_batch = |n| {
                progress.update(n);
                interrupt.check()
            };
            if return_details {
                inner.predict_with_details(&pairs, &options, &mut on_batch)
            } else {
                inner
                    .predict(&pairs, &options, &mut on_batch)
                    .map(|s| (s, Vec::new()))
            }
        });
        progress.close(py);
        let (scores, details) = result?.map_err(to_py)?;
        let ranked = rank_by_score(scores.values, top_k);
        let docs = documents;
        let out = PyList::empty(py);
        for (id, score) in ranked {
            let entry = PyDict::new(py);
            entry.set_item("corpus_id", id)?;
            entry.set_item("score", score as f64)?;
            if return_documents {
                entry.set_item("text", &docs[id])?;
            }
            if let Some(d) = details.get(id) {
                set_details(&entry, d)?;
            }
            out.append(entry)?;
        }
        Ok(out)
    }

    /// A duo model's P(a more relevant than b) per ``(a, b)`` in ``pairs``: float64 array.
    #[pyo3(signature = (query, pairs, batch_size=32, show_progress_bar=None))]
    fn compare<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
        pairs: &Bound<'py, PyAny>,
        batch_size: i64,
        show_progress_bar: Option<bool>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let options = self.options(batch_size, None, false)?;
        let query = query_str(query)?;
        let (pairs, singular) = extract_pairs(pairs)?;
        if singular {
            return Err(PyTypeError::new_err(
                "pairs must be a list of (a, b) document pairs, got a single pair",
            ));
        }
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let progress = Progress::new(py, show_progress_bar, pairs.len(), "Comparing", "pair")?;
        let inner = &self.inner;
        let result = detach_interruptible(py, |interrupt| {
            inner.compare(&query, &borrowed, &options, &mut |n| {
                progress.update(n);
                interrupt.check()
            })
        });
        progress.close(py);
        Ok(PyArray1::from_vec(py, result?.map_err(to_py)?))
    }

    /// ``await ce.apredict(...)``: :meth:`predict` on the running loop's default executor.
    #[pyo3(signature = (*args, **kwargs))]
    fn apredict<'py>(
        slf: &Bound<'py, Self>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        run_in_executor(slf.as_any(), "predict", args, kwargs)
    }

    /// ``await ce.arank(...)``: :meth:`rank` on the running loop's default executor.
    #[pyo3(signature = (*args, **kwargs))]
    fn arank<'py>(
        slf: &Bound<'py, Self>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        run_in_executor(slf.as_any(), "rank", args, kwargs)
    }

    /// Token ids of each pair, as the model sees them (after truncation).
    fn tokenize(&self, py: Python<'_>, sentences: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<u32>>> {
        let (pairs, _) = extract_pairs(sentences)?;
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let inner = &self.inner;
        detach(py, || inner.tokenize(&borrowed)).map_err(to_py)
    }

    /// "float32" (exact, the default) or "int8".
    #[getter]
    fn precision(&self) -> &'static str {
        self.inner.precision().name()
    }

    /// How pairs longer than ``max_length`` are scored: ``"truncate"``, ``"first"``, ``"max"``
    /// or ``"mean"``.
    #[getter]
    fn long_document(&self) -> &'static str {
        self.args.long_document.name()
    }

    /// The score cache's counters: ``{"hits", "misses", "maxsize", "currsize"}`` (as
    /// ``functools.lru_cache``), or None without a cache.
    fn cache_info<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(info) = self.inner.cache_info() else {
            return Ok(None);
        };
        let out = PyDict::new(py);
        out.set_item("hits", info.hits)?;
        out.set_item("misses", info.misses)?;
        out.set_item("maxsize", info.max_size)?;
        out.set_item("currsize", info.size)?;
        Ok(Some(out))
    }

    /// Empties the score cache and resets its counters.
    fn cache_clear(&self) {
        self.inner.cache_clear();
    }

    /// How pairs longer than ``max_length`` are cut: ``"longest_first"``, ``"only_second"``
    /// or ``"error"``.
    #[getter]
    fn truncation(&self) -> &'static str {
        self.args.truncation.name()
    }

    /// Tokens shared by neighbouring windows of a long document.
    #[getter]
    fn stride(&self) -> usize {
        self.args.stride
    }

    /// Tokens per pair after truncation.
    #[getter]
    fn max_length(&self) -> usize {
        self.inner.max_length()
    }

    /// Outputs per pair (1 for a relevance model).
    #[getter]
    fn num_labels(&self) -> usize {
        self.inner.num_labels()
    }

    /// The default activation's name: "sigmoid", "identity", "softmax" or "tanh".
    #[getter]
    fn activation_fn(&self) -> &'static str {
        self.inner.activation().name()
    }

    /// The directory or hub id the model was loaded from.
    #[getter]
    fn model_name_or_path(&self) -> &str {
        &self.args.model_name_or_path
    }

    fn __repr__(&self) -> String {
        format!(
            "CrossEncoder({:?}, max_length={}, num_labels={}, activation_fn={:?})",
            self.args.model_name_or_path,
            self.inner.max_length(),
            self.inner.num_labels(),
            self.inner.activation().name()
        )
    }

    /// Pickles as the constructor arguments; unpickling reloads the model (so an instance
    /// can be shipped to Ray / Spark / multiprocessing workers).
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let a = &slf.get().args;
        // In the constructor's order (more than the 12 items pyo3 converts as a tuple).
        let args = PyTuple::new(
            py,
            [
                a.model_name_or_path.clone().into_pyobject(py)?.into_any(),
                a.max_length.into_pyobject(py)?.into_any(),
                a.device.clone().into_pyobject(py)?.into_any(),
                a.activation_fn
                    .map(|x| x.name())
                    .into_pyobject(py)?
                    .into_any(),
                a.revision.clone().into_pyobject(py)?.into_any(),
                a.cache_folder.clone().into_pyobject(py)?.into_any(),
                a.local_files_only.into_pyobject(py)?.to_owned().into_any(),
                a.max_batch_tokens.into_pyobject(py)?.into_any(),
                a.precision.name().into_pyobject(py)?.into_any(),
                a.long_document.name().into_pyobject(py)?.into_any(),
                a.stride.into_pyobject(py)?.into_any(),
                a.instruction.clone().into_pyobject(py)?.into_any(),
                a.truncation.name().into_pyobject(py)?.into_any(),
                a.cache_size.into_pyobject(py)?.into_any(),
            ],
        )?;
        Ok((slf.get_type().into_any(), args))
    }
}
