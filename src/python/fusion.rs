//! `crossrank.fusion`: reciprocal rank fusion and normalized weighted sums of runs.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyString, PyTuple};

use super::errors::to_py;
use super::inputs::type_name;
use crate::rank::fusion;

/// A document key as the caller gave it: str ids or int positions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Int(i64),
    Str(String),
}

fn key(obj: &Bound<'_, PyAny>) -> PyResult<Key> {
    if obj.is_instance_of::<PyString>() {
        Ok(Key::Str(obj.extract()?))
    } else if obj.is_instance_of::<PyInt>() || obj.hasattr("__index__")? {
        Ok(Key::Int(obj.call_method0("__index__")?.extract()?))
    } else {
        Err(PyTypeError::new_err(format!(
            "document ids must be str or int, got {}",
            type_name(obj)
        )))
    }
}

/// One run, best first: a `{id: score}` dict (ordered by score, ties by id) or an
/// `(ids, scores)` pair as `search` returns (taken in the given order).
fn ranked(obj: &Bound<'_, PyAny>, i: usize) -> PyResult<Vec<(Key, f64)>> {
    let mut list = Vec::new();
    if let Ok(dict) = obj.cast::<PyDict>() {
        for (k, v) in dict.iter() {
            list.push((key(&k)?, v.extract::<f64>()?));
        }
        list.sort_by(|a: &(Key, f64), b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        return Ok(list);
    }
    if let Ok(pair) = obj.cast::<PyTuple>() {
        if pair.len() == 2 {
            let (ids, scores) = (pair.get_item(0)?, pair.get_item(1)?);
            let (n, m) = (ids.len()?, scores.len()?);
            if n != m {
                return Err(PyValueError::new_err(format!(
                    "runs[{i}]: {n} ids but {m} scores"
                )));
            }
            for (id, score) in ids.try_iter()?.zip(scores.try_iter()?) {
                list.push((key(&id?)?, score?.extract::<f64>()?));
            }
            return Ok(list);
        }
    }
    Err(PyTypeError::new_err(format!(
        "runs[{i}] must be a {{id: score}} dict or an (ids, scores) pair, got {}",
        type_name(obj)
    )))
}

fn parse_runs(obj: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<(Key, f64)>>> {
    if obj.is_instance_of::<PyDict>() || obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err("runs must be a list of runs"));
    }
    let lists = obj
        .try_iter()?
        .enumerate()
        .map(|(i, run)| ranked(&run?, i))
        .collect::<PyResult<Vec<_>>>()?;
    if lists.is_empty() {
        return Err(PyValueError::new_err(
            "runs is empty: give at least one run",
        ));
    }
    Ok(lists)
}

fn to_dict<'py>(py: Python<'py>, fused: Vec<(Key, f64)>) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    for (k, score) in fused {
        match k {
            Key::Int(i) => out.set_item(i, score)?,
            Key::Str(s) => out.set_item(s, score)?,
        }
    }
    Ok(out)
}

/// Reciprocal rank fusion: `{id: sum_i weight_i / (k + rank_i)}`, best first.
#[pyfunction]
#[pyo3(signature = (runs, k=60.0, weights=None))]
pub fn reciprocal_rank_fusion<'py>(
    py: Python<'py>,
    runs: &Bound<'py, PyAny>,
    k: f64,
    weights: Option<Vec<f64>>,
) -> PyResult<Bound<'py, PyDict>> {
    let lists = parse_runs(runs)?;
    let fused = fusion::reciprocal_rank(&lists, k, weights.as_deref()).map_err(to_py)?;
    to_dict(py, fused)
}

/// `{id: sum_i weight_i * minmax_i(score)}`, best first.
#[pyfunction]
#[pyo3(signature = (runs, weights=None))]
pub fn weighted_sum_fusion<'py>(
    py: Python<'py>,
    runs: &Bound<'py, PyAny>,
    weights: Option<Vec<f64>>,
) -> PyResult<Bound<'py, PyDict>> {
    let lists = parse_runs(runs)?;
    let fused = fusion::weighted_sum(&lists, weights.as_deref()).map_err(to_py)?;
    to_dict(py, fused)
}
