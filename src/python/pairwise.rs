//! Pairwise aggregation and preference sorting (`crate::pairwise`) for Python.

use numpy::{PyArray1, PyReadonlyArray2};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBool;

use super::errors::to_py;
use crate::rank::pairwise::{aggregate, sort_by_preference, Aggregation};

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
