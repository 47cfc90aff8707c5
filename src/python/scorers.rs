//! Python objects as the core's scorers and comparators: crossrank's own models become the
//! core's model scorers (so they run with the GIL released); anything else callable is
//! called back under the GIL, its exceptions carried through the core unchanged.

use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt};

use super::bi_encoder::PyBiEncoder;
use super::cross_encoder::PyCrossEncoder;
use super::errors::from_py;
use super::inputs::type_name;
use crate::rank::pairwise::{Comparator, CrossEncoderComparator};
use crate::rank::scorer::Scorer;
use crate::score::batching::OnBatch;
use crate::Result;

/// A Python callable `f(query, documents) -> scores`.
pub struct PyScorer {
    callable: Py<PyAny>,
    label: String,
}

impl Scorer for PyScorer {
    fn score(&self, query: &str, documents: &[&str], _: &mut OnBatch<'_>) -> Result<Vec<f64>> {
        Python::attach(|py| {
            let scores = self.callable.call1(py, (query, documents.to_vec()))?;
            let scores = scores.bind(py);
            // Numbers one by one: a 2-D array's rows or a str are refused, not flattened.
            let values: PyResult<Vec<f64>> = scores
                .try_iter()
                .and_then(|items| items.map(|item| number(&item?)).collect());
            values.map_err(|_| {
                PyTypeError::new_err(format!(
                    "{} must return one number per document, got {}",
                    self.label,
                    type_name(scores)
                ))
            })
        })
        .map_err(from_py)
    }

    fn label(&self) -> String {
        self.label.clone()
    }
}

/// A Python float or int (numpy scalars included), not a bool.
fn number(item: &Bound<'_, PyAny>) -> PyResult<f64> {
    if item.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err("a bool is not a score"));
    }
    if item.is_instance_of::<PyFloat>()
        || item.is_instance_of::<PyInt>()
        || item.hasattr("__float__")?
    {
        return item.extract::<f64>();
    }
    Err(PyTypeError::new_err("not a number"))
}

/// `model` as a scorer: a `CrossEncoder` or `BiEncoder` of crossrank's own classes (not a
/// Python subclass, which may override `predict` / `encode`) runs in the core; any other
/// callable `f(query, documents)` is called back, `label` naming it in messages.
pub fn scorer(
    model: &Bound<'_, PyAny>,
    batch_size: usize,
    label: String,
) -> PyResult<Arc<dyn Scorer>> {
    if model.get_type().is(model.py().get_type::<PyCrossEncoder>()) {
        let ce = model.cast::<PyCrossEncoder>()?;
        return Ok(Arc::new(ce.get().scorer(batch_size)));
    }
    if model.get_type().is(model.py().get_type::<PyBiEncoder>()) {
        let be = model.cast::<PyBiEncoder>()?;
        return Ok(Arc::new(be.get().scorer(batch_size)));
    }
    if !model.is_callable() {
        return Err(PyTypeError::new_err(format!(
            "{label} must be a CrossEncoder, BiEncoder, Reranker or callable f(query, documents) -> scores, got {}",
            type_name(model)
        )));
    }
    Ok(Arc::new(PyScorer {
        callable: model.clone().unbind(),
        label,
    }))
}

/// A Python callable `f(query, a, b) -> P(a more relevant than b)`, asked one pair at a time.
pub struct PyComparator {
    callable: Py<PyAny>,
    label: String,
}

impl Comparator for PyComparator {
    fn preferences(
        &self,
        query: &str,
        pairs: &[(&str, &str)],
        _: &mut OnBatch<'_>,
    ) -> Result<Vec<f64>> {
        Python::attach(|py| {
            pairs
                .iter()
                .map(|&(a, b)| {
                    let p = self.callable.call1(py, (query, a, b))?;
                    number(p.bind(py)).map_err(|_| {
                        PyTypeError::new_err(format!(
                            "comparator {} must return a float, got {}",
                            self.label,
                            type_name(p.bind(py))
                        ))
                    })
                })
                .collect::<PyResult<Vec<f64>>>()
        })
        .map_err(from_py)
    }

    fn label(&self) -> String {
        self.label.clone()
    }
}

/// `comparator` as the core's: a crossrank `CrossEncoder` (a duo model, `compare`) runs in
/// the core; any other callable `f(query, a, b)` is called back.
pub fn comparator(
    comparator: &Bound<'_, PyAny>,
    batch_size: usize,
    label: String,
) -> PyResult<Arc<dyn Comparator>> {
    if comparator
        .get_type()
        .is(comparator.py().get_type::<PyCrossEncoder>())
    {
        let ce = comparator.cast::<PyCrossEncoder>()?.get();
        return Ok(Arc::new(CrossEncoderComparator {
            model: ce.inner().clone(),
            options: ce.default_options(batch_size),
        }));
    }
    if !comparator.is_callable() {
        return Err(PyTypeError::new_err(format!(
            "comparator must be a CrossEncoder or a callable f(query, a, b) -> float, got {}",
            type_name(comparator)
        )));
    }
    Ok(Arc::new(PyComparator {
        callable: comparator.clone().unbind(),
        label,
    }))
}
