//! `crossrank._core.ModelSignals`: the model signals of a hybrid re-rank
//! (`rank::signals`), computed in parallel with the GIL released.

use std::sync::Arc;

use numpy::{PyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyTuple};

use super::bi_encoder::PyBiEncoder;
use super::bm25::PyBm25;
use super::cross_encoder::PyCrossEncoder;
use super::errors::to_py;
use super::inputs::{extract_text_list, positive, query_str, type_name};
use super::progress::Progress;
use super::threads::detach_interruptible;
use crate::rank::signals::{Bm25Statistics, Candidates, ModelSignals};

/// The model signals of a hybrid re-rank: a cross-encoder's scores, BM25 scores (against
/// the candidates' own statistics with ``bm25=True``, or a corpus index's) and a
/// bi-encoder's cosine similarities, computed side by side with the GIL released.
#[pyclass(name = "ModelSignals", module = "crossrank._core", frozen)]
pub struct PyModelSignals {
    inner: ModelSignals,
    /// The constructor's arguments, kept so that an instance pickles as them: pickle
    /// memoizes objects, so a `HybridReranker` that holds the same models ships each once.
    args: Py<PyTuple>,
}

/// One query's candidates copied out of Python (the query, the documents, and their
/// embeddings when the caller has them), lent to the core as `Candidates`.
pub struct CandidateArgs<'py> {
    query: String,
    documents: Vec<String>,
    embeddings: Option<PyReadonlyArray2<'py, f32>>,
}

impl<'py> CandidateArgs<'py> {
    pub fn extract(
        query: &Bound<'py, PyAny>,
        documents: &Bound<'py, PyAny>,
        embeddings: Option<PyReadonlyArray2<'py, f32>>,
    ) -> PyResult<Self> {
        if let Some(e) = &embeddings {
            e.as_slice()?; // contiguous, so `with` cannot fail on it
        }
        Ok(Self {
            query: query_str(query)?,
            documents: extract_text_list(documents, "documents")?,
            embeddings,
        })
    }

    /// `work` on the candidates as the core takes them.
    pub fn with<T>(&self, work: impl FnOnce(&Candidates<'_>) -> T) -> PyResult<T> {
        let texts: Vec<&str> = self.documents.iter().map(String::as_str).collect();
        let embeddings = self.embeddings.as_ref().map(|e| e.as_slice()).transpose()?;
        Ok(work(&Candidates {
            query: &self.query,
            documents: &texts,
            embeddings,
        }))
    }
}

/// The core's model signals from the Python arguments: crossrank models and ``bm25``
/// ``True`` (the candidates' statistics), ``False`` / ``None`` (no BM25) or a ``BM25`` index.
pub fn model_signals(
    cross_encoder: Option<&Bound<'_, PyCrossEncoder>>,
    bi_encoder: Option<&Bound<'_, PyBiEncoder>>,
    bm25: Option<&Bound<'_, PyAny>>,
    batch_size: i64,
) -> PyResult<ModelSignals> {
    let batch = positive(batch_size, "batch_size")?;
    let bm25 = match bm25 {
        None => None,
        Some(b) if b.is_instance_of::<PyBool>() => {
            b.extract::<bool>()?.then_some(Bm25Statistics::Candidates)
        }
        Some(b) => match b.cast::<PyBm25>() {
            Ok(index) => Some(Bm25Statistics::Index(index.get().inner().clone())),
            Err(_) => {
                return Err(PyTypeError::new_err(format!(
                    "bm25 must be True/False or a crossrank.BM25 index, got {}",
                    type_name(b)
                )))
            }
        },
    };
    Ok(ModelSignals {
        cross_encoder: cross_encoder.map(|ce| Arc::new(ce.get().scorer(batch))),
        bi_encoder: bi_encoder.map(|be| Arc::new(be.get().scorer(batch))),
        bm25,
    })
}

#[pymethods]
impl PyModelSignals {
    #[new]
    #[pyo3(signature = (cross_encoder=None, bi_encoder=None, bm25=None, batch_size=32))]
    fn new(
        py: Python<'_>,
        cross_encoder: Option<Bound<'_, PyCrossEncoder>>,
        bi_encoder: Option<Bound<'_, PyBiEncoder>>,
        bm25: Option<&Bound<'_, PyAny>>,
        batch_size: i64,
    ) -> PyResult<Self> {
        Ok(Self {
            inner: model_signals(
                cross_encoder.as_ref(),
                bi_encoder.as_ref(),
                bm25,
                batch_size,
            )?,
            args: (cross_encoder, bi_encoder, bm25, batch_size)
                .into_pyobject(py)?
                .unbind(),
        })
    }

    /// The configured signals' names: ``"cross_encoder"``, ``"bm25"``, ``"bi_encoder"``.
    #[getter]
    fn names(&self) -> Vec<&'static str> {
        self.inner.names()
    }

    /// ``{name: float64 array}``: each configured signal's raw values for ``documents``.
    /// ``embeddings``: the documents' embeddings, float32 ``(len(documents), dim)``, when
    /// the caller has them (a ``DenseIndex``, a vector store); the bi-encoder then embeds
    /// only the query.
    #[pyo3(signature = (query, documents, embeddings=None, show_progress_bar=None))]
    fn compute<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
        documents: &Bound<'py, PyAny>,
        embeddings: Option<PyReadonlyArray2<'py, f32>>,
        show_progress_bar: Option<bool>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let args = CandidateArgs::extract(query, documents, embeddings)?;
        let n = args.documents.len();
        let progress = Progress::new(py, show_progress_bar, n, "Scoring", "pair")?;
        let inner = &self.inner;
        let result = args.with(|candidates| {
            detach_interruptible(py, |interrupt| {
                inner.compute(candidates, &mut |n| {
                    progress.update(n);
                    interrupt.check()
                })
            })
        })?;
        progress.close(py);
        let out = PyDict::new(py);
        for (name, values) in result?.map_err(to_py)? {
            out.set_item(name, PyArray1::from_vec(py, values))?;
        }
        Ok(out)
    }

    fn __repr__(&self) -> String {
        format!("ModelSignals({:?})", self.inner.names())
    }

    /// Pickles as the constructor arguments, so a `HybridReranker` can be shipped to
    /// multiprocessing / Ray workers.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> (Bound<'py, PyAny>, Bound<'py, PyTuple>) {
        (
            slf.get_type().into_any(),
            slf.get().args.bind(slf.py()).clone(),
        )
    }
}
