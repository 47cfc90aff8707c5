//! `crossrank._core.HybridReranker`: the core's hybrid re-ranker (`rank::hybrid`) for
//! `crossrank.HybridReranker`. A re-rank gathers the signals and combines them in one call
//! with the GIL released; it is taken back only to call a Python signal.

use std::collections::HashMap;

use numpy::{PyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::bi_encoder::PyBiEncoder;
use super::cross_encoder::PyCrossEncoder;
use super::errors::to_py;
use super::inputs::positive;
use super::scorers::scorer;
use super::signals::{model_signals, CandidateArgs};
use super::threads::detach_interruptible;
use crate::rank::hybrid::{Extra, Fusion, HybridReranker, Signal, SignalWeight};
use crate::rank::normalize::Normalization;
use crate::rank::signals::Candidates;

/// A hybrid re-ranker: ``HybridReranker(weights, cross_encoder=None, bi_encoder=None,
/// bm25=None, scorers=[], given=[], fusion="weighted", k=60.0, batch_size=32)``.
/// ``weights``: ``(name, normalization, weight)`` for every signal, in the order results
/// list them; ``scorers``: ``(name, f(query, documents) -> scores)`` signals; ``given``:
/// names of the signals whose values each call passes (first-stage scores, metadata).
#[pyclass(name = "HybridReranker", module = "crossrank._core", frozen)]
pub struct PyHybridReranker {
    inner: HybridReranker,
    /// The constructor's arguments, for pickling.
    args: Py<PyTuple>,
}

type Explained<'py> = (
    Bound<'py, PyDict>,
    Bound<'py, PyArray1<f64>>,
    Vec<Bound<'py, PyArray1<f64>>>,
    Vec<Bound<'py, PyArray1<f64>>>,
);

impl PyHybridReranker {
    /// `work` on one query's candidates, GIL released; Ctrl-C stops it between batches.
    fn run<T: Send>(
        &self,
        py: Python<'_>,
        query: &Bound<'_, PyAny>,
        documents: &Bound<'_, PyAny>,
        embeddings: Option<PyReadonlyArray2<'_, f32>>,
        given: Option<HashMap<String, Vec<f64>>>,
        work: impl Fn(
                &HybridReranker,
                &Candidates<'_>,
                &HashMap<String, Vec<f64>>,
                &mut OnSignalBatch<'_>,
            ) -> crate::Result<T>
            + Send
            + Sync,
    ) -> PyResult<T> {
        let args = CandidateArgs::extract(query, documents, embeddings)?;
        let given = given.unwrap_or_default();
        let inner = &self.inner;
        args.with(|candidates| {
            detach_interruptible(py, |interrupt| {
                work(inner, candidates, &given, &mut |_| interrupt.check())
            })
        })??
        .map_err(to_py)
    }
}

type OnSignalBatch<'a> = dyn FnMut(usize) -> crate::Result<()> + Send + 'a;

fn raw_dict<'py>(py: Python<'py>, signals: Vec<Signal>) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    for s in signals {
        out.set_item(s.name, PyArray1::from_vec(py, s.values))?;
    }
    Ok(out)
}

#[pymethods]
impl PyHybridReranker {
    #[new]
    #[pyo3(signature = (weights, cross_encoder=None, bi_encoder=None, bm25=None, scorers=Vec::new(),
                        given=Vec::new(), fusion="weighted", k=60.0, batch_size=32))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        weights: Vec<(String, String, f64)>,
        cross_encoder: Option<Bound<'_, PyCrossEncoder>>,
        bi_encoder: Option<Bound<'_, PyBiEncoder>>,
        bm25: Option<Bound<'_, PyAny>>,
        scorers: Vec<(String, Bound<'_, PyAny>)>,
        given: Vec<String>,
        fusion: &str,
        k: f64,
        batch_size: i64,
    ) -> PyResult<Self> {
        let batch = positive(batch_size, "batch_size")?;
        let models = model_signals(
            cross_encoder.as_ref(),
            bi_encoder.as_ref(),
            bm25.as_ref(),
            batch_size,
        )?;
        let mut extras = Vec::with_capacity(scorers.len() + given.len());
        for (name, f) in &scorers {
            let label = format!("signal '{name}'");
            extras.push((name.clone(), Extra::Scored(scorer(f, batch, label)?)));
        }
        extras.extend(given.iter().map(|name| (name.clone(), Extra::Given)));
        let signal_weights = weights
            .iter()
            .map(|(name, normalization, weight)| {
                Ok(SignalWeight {
                    name: name.clone(),
                    normalization: normalization.parse::<Normalization>()?,
                    weight: *weight,
                })
            })
            .collect::<crate::Result<Vec<_>>>()
            .map_err(to_py)?;
        let fusion_kind = Fusion::from_name(fusion, k).map_err(to_py)?;
        let inner =
            HybridReranker::new(models, extras, signal_weights, fusion_kind).map_err(to_py)?;
        let args = (
            weights,
            cross_encoder,
            bi_encoder,
            bm25,
            PyList::new(py, scorers)?,
            given,
            fusion,
            k,
            batch_size,
        );
        Ok(Self {
            inner,
            args: args.into_pyobject(py)?.unbind(),
        })
    }

    /// The signals' names, in the order results list them.
    #[getter]
    fn names(&self) -> Vec<String> {
        self.inner
            .weights()
            .iter()
            .map(|w| w.name.clone())
            .collect()
    }

    /// ``{name: float64 array}``: each signal's raw values for ``documents``. ``embeddings``:
    /// the documents' embeddings ``(len(documents), dim)`` float32, so the bi-encoder
    /// embeds only the query; ``given``: ``{name: values}`` of the given signals.
    #[pyo3(signature = (query, documents, embeddings=None, given=None))]
    fn signals<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
        documents: &Bound<'py, PyAny>,
        embeddings: Option<PyReadonlyArray2<'py, f32>>,
        given: Option<HashMap<String, Vec<f64>>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let signals = self.run(
            py,
            query,
            documents,
            embeddings,
            given,
            |h, c, g, on_batch| h.signals(c, g, on_batch),
        )?;
        raw_dict(py, signals)
    }

    /// ``(raw, scores, normalized, contributions)``: the signals as in :meth:`signals`, the
    /// fused scores, and per signal (in :attr:`names` order) the normalized values and
    /// weight x normalized.
    #[pyo3(signature = (query, documents, embeddings=None, given=None))]
    fn rerank<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
        documents: &Bound<'py, PyAny>,
        embeddings: Option<PyReadonlyArray2<'py, f32>>,
        given: Option<HashMap<String, Vec<f64>>>,
    ) -> PyResult<Explained<'py>> {
        let (signals, c) = self.run(
            py,
            query,
            documents,
            embeddings,
            given,
            |h, c, g, on_batch| h.rerank(c, g, on_batch),
        )?;
        let arrays = |rows: Vec<Vec<f64>>| {
            rows.into_iter()
                .map(|r| PyArray1::from_vec(py, r))
                .collect::<Vec<_>>()
        };
        Ok((
            raw_dict(py, signals)?,
            PyArray1::from_vec(py, c.scores),
            arrays(c.normalized),
            arrays(c.contributions),
        ))
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> (Bound<'py, PyAny>, Bound<'py, PyTuple>) {
        (
            slf.get_type().into_any(),
            slf.get().args.bind(slf.py()).clone(),
        )
    }
}
