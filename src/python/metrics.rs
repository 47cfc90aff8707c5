//! `crossrank.metrics.evaluate`: the Python face of `crate::metrics`.

use std::collections::HashMap;
use std::path::PathBuf;

use pyo3::conversion::FromPyObjectOwned;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::errors::to_py;
use super::inputs::type_name;
use super::threads::detach;
use crate::metrics::{self, Metric, Qrels, Run};

/// `{qid: {docid: value}}`: judgments or a run.
type Table<T> = HashMap<String, HashMap<String, T>>;

/// A dict `{qid: {docid: value}}`, or the path of a TREC file read by `read_file`.
fn table<'py, T: FromPyObjectOwned<'py>>(
    obj: &Bound<'py, PyAny>,
    what: &str,
    read_file: fn(&std::path::Path) -> crate::Result<Table<T>>,
) -> PyResult<Table<T>> {
    if obj.is_instance_of::<PyDict>() {
        return obj.extract().map_err(|e| {
            PyTypeError::new_err(format!(
                "{what} must map query ids (str) to {{document id (str): value}} dicts: {e}"
            ))
        });
    }
    if obj.is_instance_of::<PyString>() || obj.extract::<PathBuf>().is_ok() {
        let path: PathBuf = obj.extract()?;
        return read_file(&path).map_err(to_py);
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be a dict or the path of a TREC {what} file, got {}",
        type_name(obj)
    )))
}

/// Metrics of `run` against `qrels`: `{metric: mean}`, or `{metric: {qid: value}}` with
/// `per_query=True`. See `crossrank/metrics.py` for the docs.
#[pyfunction]
#[pyo3(signature = (qrels, run, metrics, per_query=false))]
pub fn evaluate<'py>(
    py: Python<'py>,
    qrels: &Bound<'py, PyAny>,
    run: &Bound<'py, PyAny>,
    metrics: &Bound<'py, PyAny>,
    per_query: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let names: Vec<String> = if metrics.is_instance_of::<PyString>() {
        vec![metrics.extract()?]
    } else {
        metrics.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "metrics must be a str or a list of str such as [\"ndcg@10\", \"mrr@10\"], got {}",
                type_name(metrics)
            ))
        })?
    };
    let parsed = names
        .iter()
        .map(|n| n.parse::<Metric>())
        .collect::<crate::Result<Vec<_>>>()
        .map_err(to_py)?;
    let qrels: Qrels = table(qrels, "qrels", metrics::read_trec_qrels)?;
    let run: Run = table(run, "run", metrics::read_trec_run)?;
    let values = detach(py, || metrics::evaluate(&qrels, &run, &parsed)).map_err(to_py)?;
    let out = PyDict::new(py);
    for (name, per_qid) in names.iter().zip(values) {
        if per_query {
            out.set_item(name, per_qid)?;
        } else {
            out.set_item(name, metrics::mean(&per_qid))?;
        }
    }
    Ok(out)
}
