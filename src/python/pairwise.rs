//! Pairwise aggregation, preference sorting and the pairwise re-ranker
//! (`rank::pairwise`) for Python.

use numpy::{PyArray1, PyReadonlyArray2};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyTuple};

use super::errors::to_py;
use super::inputs::{extract_text_list, positive, query_str};
use super::threads::detach_interruptible;
use crate::rank::pairwise::{aggregate, sort_by_preference, Aggregation, Method, PairwiseReranker};

/// One score per document from an (n, n) matrix of P(row more relevant than column).
#[pyfunction]
#[pyo3(signature = (preferences, aggregation="sum"))]
pub fn aggregate_preferences<'py>(
    py: Python<'py>,
    preferences: PyReadonlyArray2<'py, f64>,
    aggregation: &str,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let aggregation: Aggregation = aggregation.parse().map_err(to_py)?;
    let matrix = preferences.as_array();
    let (rows, columns) = matrix.dim();
    if rows != columns {
        return Err(PyValueError::new_err(format!(
            "preferences must be a square (n, n) matrix, got ({rows}, {columns})"
        )));
    }
    let values: Vec<f64> = matrix.iter().copied().collect();
    let scores = aggregate(&values, rows, aggregation).map_err(to_py)?;
    Ok(PyArray1::from_vec(py, scores))
}

/// `(order, comparisons)`: positions `0..n` sorted by `before(a, b) -> bool` ("a is more
/// relevant than b") with a stable merge sort. Exceptions from `before` propagate.
#[pyfunction]
pub fn sort_by_preference_py(n: i64, before: &Bound<'_, PyAny>) -> PyResult<(Vec<usize>, usize)> {
    if n < 0 {
        return Err(PyValueError::new_err(format!("n must be >= 0, got {n}")));
    }
    if !before.is_callable() {
        return Err(PyTypeError::new_err(
            "before must be a callable before(a, b) -> bool",
        ));
    }
    sort_by_preference(n as usize, &mut |a, b| {
        let answer = before.call1((a, b))?;
        if let Ok(flag) = answer.cast::<PyBool>() {
            return Ok(flag.is_true());
        }
        if let Ok(flag) = answer.extract::<bool>() {
            return Ok(flag);
        }
        Err(PyTypeError::new_err(format!(
            "before({a}, {b}) must return a bool, got {}",
            answer.get_type().name()?
        )))
    })
}

/// The core's pairwise re-ranker (`rank::pairwise::PairwiseReranker`) for
/// `crossrank.PairwiseReranker`: ``PairwiseReranker(comparator, method, aggregation,
/// both_orders, batch_size, label)``; ``comparator`` is a duo ``CrossEncoder`` or a
/// callable ``f(query, a, b) -> P(a > b)``, named ``label`` in messages.
#[pyclass(name = "PairwiseReranker", module = "crossrank._core", frozen)]
pub struct PyPairwiseReranker {
    inner: PairwiseReranker,
    /// The constructor's arguments, for pickling.
    args: Py<PyTuple>,
}

#[pymethods]
impl PyPairwiseReranker {
    #[new]
    #[pyo3(signature = (comparator, method="allpairs", aggregation="sum", both_orders=true,
                        batch_size=32, label="comparator"))]
    fn new(
        py: Python<'_>,
        comparator: &Bound<'_, PyAny>,
        method: &str,
        aggregation: &str,
        both_orders: bool,
        batch_size: i64,
        label: &str,
    ) -> PyResult<Self> {
        let method_kind = Method::from_names(method, aggregation, both_orders).map_err(to_py)?;
        let batch = positive(batch_size, "batch_size")?;
        let args = (
            comparator,
            method,
            aggregation,
            both_orders,
            batch_size,
            label,
        );
        Ok(Self {
            inner: PairwiseReranker {
                comparator: super::scorers::comparator(comparator, batch, label.to_string())?,
                method: method_kind,
            },
            args: args.into_pyobject(py)?.unbind(),
        })
    }

    /// ``(scores, comparisons)``: one score per document and the comparator evaluations.
    fn scores<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
        documents: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyArray1<f64>>, usize)> {
        let query = query_str(query)?;
        let documents = extract_text_list(documents, "documents")?;
        let texts: Vec<&str> = documents.iter().map(String::as_str).collect();
        let inner = &self.inner;
        let (scores, comparisons) = detach_interruptible(py, |interrupt| {
            inner.scores(&query, &texts, &mut |_| interrupt.check())
        })?
        .map_err(to_py)?;
        Ok((PyArray1::from_vec(py, scores), comparisons))
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> (Bound<'py, PyAny>, Bound<'py, PyTuple>) {
        (
            slf.get_type().into_any(),
            slf.get().args.bind(slf.py()).clone(),
        )
    }
}
