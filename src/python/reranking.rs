//! The numeric core of the re-ranking strategies for `crossrank.reranking`: signal
//! normalization and fusion, coordinate ascent, calibration and thresholds.

use std::collections::HashMap;

use numpy::PyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::errors::to_py;
use super::inputs::positive;
use super::threads::detach;
use crate::metrics::Metric;
use crate::rank::calibration::{
    expected_calibration_error, suggest_threshold, Calibration, Method, ThresholdTarget,
};
use crate::rank::coordinate_ascent::{coordinate_ascent, AscentOptions, TrainingQuery};
use crate::rank::hybrid::{basis, combine, Fusion, Signal};
use crate::rank::normalize::Normalization;

fn fusion(name: &str, k: f64) -> PyResult<Fusion> {
    Fusion::from_name(name, k).map_err(to_py)
}

fn signals(
    names: Vec<String>,
    values: Vec<Vec<f64>>,
    weights: Vec<f64>,
    normalizations: Vec<String>,
) -> PyResult<Vec<Signal>> {
    if values.len() != names.len()
        || weights.len() != names.len()
        || normalizations.len() != names.len()
    {
        return Err(PyValueError::new_err(
            "names, values, weights and normalizations differ in length",
        ));
    }
    names
        .into_iter()
        .zip(values)
        .zip(weights)
        .zip(normalizations)
        .map(|(((name, values), weight), norm)| {
            Ok(Signal {
                name,
                values,
                weight,
                normalization: norm.parse::<Normalization>().map_err(to_py)?,
            })
        })
        .collect()
}

/// One query's per-signal scores, normalized: a float64 array.
#[pyfunction]
pub fn normalize_scores<'py>(
    py: Python<'py>,
    scores: Vec<f64>,
    method: &str,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let method: Normalization = method.parse().map_err(to_py)?;
    Ok(PyArray1::from_vec(
        py,
        method.apply(&scores).map_err(to_py)?,
    ))
}

/// `(scores, normalized, contributions)` for one query's signals.
#[pyfunction]
#[pyo3(signature = (names, values, weights, normalizations, fusion_name="weighted", k=60.0))]
pub fn combine_signals<'py>(
    py: Python<'py>,
    names: Vec<String>,
    values: Vec<Vec<f64>>,
    weights: Vec<f64>,
    normalizations: Vec<String>,
    fusion_name: &str,
    k: f64,
) -> PyResult<Bound<'py, PyTuple>> {
    let signals = signals(names, values, weights, normalizations)?;
    let combined = combine(&signals, fusion(fusion_name, k)?).map_err(to_py)?;
    let arrays = |rows: Vec<Vec<f64>>| {
        rows.into_iter()
            .map(|r| PyArray1::from_vec(py, r))
            .collect::<Vec<_>>()
    };
    (
        PyArray1::from_vec(py, combined.scores),
        arrays(combined.normalized),
        arrays(combined.contributions),
    )
        .into_pyobject(py)
}

/// Checks signal weights `{name: weight}` by the core's one rule (finite, >= 0, not all
/// 0), with its message.
#[pyfunction]
pub fn check_weights(weights: Vec<(String, f64)>) -> PyResult<()> {
    crate::rank::weights::check_weights(weights.into_iter().map(|(n, w)| (format!("{n:?}"), w)))
        .map_err(to_py)
}

/// One training query: candidate ids, per-signal values, judgments `{doc id: grade}`.
type QueryCandidates = (Vec<String>, Vec<Vec<f64>>, HashMap<String, i64>);

/// Learn weights: `queries` = [(candidate ids, [[raw values per candidate] per signal],
/// {docid: relevance})]; returns {"weights", "score", "initial_score", "rounds"}.
#[pyfunction]
#[pyo3(signature = (queries, metric, initial, normalizations, fusion_name="weighted", k=60.0,
                    max_rounds=25, first_step=0.01, num_steps=7))]
#[allow(clippy::too_many_arguments)]
pub fn fit_weights<'py>(
    py: Python<'py>,
    queries: Vec<QueryCandidates>,
    metric: &str,
    initial: Vec<f64>,
    normalizations: Vec<String>,
    fusion_name: &str,
    k: f64,
    max_rounds: i64,
    first_step: f64,
    num_steps: i64,
) -> PyResult<Bound<'py, PyDict>> {
    let metric: Metric = metric.parse().map_err(to_py)?;
    let fusion = fusion(fusion_name, k)?;
    let norms = normalizations
        .iter()
        .map(|n| n.parse::<Normalization>())
        .collect::<crate::Result<Vec<_>>>()
        .map_err(to_py)?;
    if norms.len() != initial.len() {
        return Err(PyValueError::new_err("one normalization per weight"));
    }
    if !(first_step.is_finite() && first_step > 0.0) {
        return Err(PyValueError::new_err(
            "first_step must be a positive number",
        ));
    }
    let options = AscentOptions {
        max_rounds: positive(max_rounds, "max_rounds")?,
        first_step,
        num_steps: positive(num_steps, "num_steps")?,
    };
    let training = queries
        .into_iter()
        .enumerate()
        .map(|(i, (ids, raw, judged))| {
            if raw.len() != norms.len() {
                return Err(PyValueError::new_err(format!(
                    "query {i}: {} signals, expected {}",
                    raw.len(),
                    norms.len()
                )));
            }
            let features = raw
                .into_iter()
                .zip(&norms)
                .map(|(values, &normalization)| {
                    let signal = Signal {
                        name: format!("query {i}"),
                        values,
                        weight: 1.0,
                        normalization,
                    };
                    basis(&signal, fusion).map_err(to_py)
                })
                .collect::<PyResult<Vec<_>>>()?;
            Ok(TrainingQuery {
                ids,
                features,
                judged,
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    let result = detach(py, || {
        coordinate_ascent(&training, &metric, &initial, options)
    })
    .map_err(to_py)?;
    let out = PyDict::new(py);
    out.set_item("weights", result.weights)?;
    out.set_item("score", result.score)?;
    out.set_item("initial_score", result.initial_score)?;
    out.set_item("rounds", result.rounds)?;
    Ok(out)
}

fn labels_of(labels: Vec<f64>) -> PyResult<Vec<bool>> {
    labels
        .into_iter()
        .enumerate()
        .map(|(i, l)| match l {
            0.0 => Ok(false),
            1.0 => Ok(true),
            _ => Err(PyValueError::new_err(format!(
                "label {i} is {l}; labels must be 0 or 1"
            ))),
        })
        .collect()
}

/// Maps scores to probabilities of relevance. See ``crossrank/_core.pyi``.
#[pyclass(name = "Calibrator", module = "crossrank", frozen)]
pub struct PyCalibrator {
    inner: Calibration,
}

#[pymethods]
impl PyCalibrator {
    /// Fits a calibrator on (score, label) pairs. Labels are 0 or 1; both must occur. Raises
    /// ``ValueError`` otherwise, or when temperature scaling would need scores that decrease
    /// with relevance.
    #[staticmethod]
    #[pyo3(signature = (scores, labels, method="temperature"))]
    fn fit(scores: Vec<f64>, labels: Vec<f64>, method: &str) -> PyResult<Self> {
        let method: Method = method.parse().map_err(to_py)?;
        let inner = Calibration::fit(&scores, &labels_of(labels)?, method).map_err(to_py)?;
        Ok(Self { inner })
    }

    /// Calibrated probabilities for ``scores`` (float64 array, same order).
    fn transform<'py>(
        &self,
        py: Python<'py>,
        scores: Vec<f64>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        Ok(PyArray1::from_vec(
            py,
            self.inner.transform(&scores).map_err(to_py)?,
        ))
    }

    /// The calibration method: ``"platt"``, ``"isotonic"`` or ``"temperature"``.
    #[getter]
    fn method(&self) -> &'static str {
        match self.inner {
            Calibration::Temperature { .. } => "temperature",
            Calibration::Platt { .. } => "platt",
        }
    }

    /// `{"temperature": T}` or `{"a": a, "b": b}`.
    #[getter]
    fn params(&self) -> HashMap<&'static str, f64> {
        match self.inner {
            Calibration::Temperature { temperature } => {
                HashMap::from([("temperature", temperature)])
            }
            Calibration::Platt { a, b } => HashMap::from([("a", a), ("b", b)]),
        }
    }

    fn __repr__(&self) -> String {
        match self.inner {
            Calibration::Temperature { temperature } => {
                format!("Calibrator(temperature={temperature:.6})")
            }
            Calibration::Platt { a, b } => format!("Calibrator(platt: a={a:.6}, b={b:.6})"),
        }
    }
}

/// `{"threshold", "precision", "recall", "f1"}` for `target` ("f1", "precision>=X", "recall>=X").
#[pyfunction]
#[pyo3(signature = (scores, labels, target="f1"))]
pub fn suggest_threshold_py(
    scores: Vec<f64>,
    labels: Vec<f64>,
    target: &str,
) -> PyResult<HashMap<&'static str, f64>> {
    let target: ThresholdTarget = target.parse().map_err(to_py)?;
    let t = suggest_threshold(&scores, &labels_of(labels)?, target).map_err(to_py)?;
    Ok(HashMap::from([
        ("threshold", t.threshold),
        ("precision", t.precision),
        ("recall", t.recall),
        ("f1", t.f1),
    ]))
}

/// Equal-width-bin ECE of probabilities against 0/1 labels: sum over bins of
/// |mean probability - fraction relevant| x bin share.
#[pyfunction]
#[pyo3(signature = (probabilities, labels, bins=10))]
pub fn expected_calibration_error_py(
    probabilities: Vec<f64>,
    labels: Vec<f64>,
    bins: i64,
) -> PyResult<f64> {
    expected_calibration_error(&probabilities, &labels_of(labels)?, positive(bins, "bins")?)
        .map_err(to_py)
}
