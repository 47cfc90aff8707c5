//! `crossrank._core.MultiStage`: the core's cascade (`rank::multistage`) for
//! `crossrank.MultiStage`, run with the GIL released (taken back only to call a Python stage).

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::errors::to_py;
use super::inputs::{extract_text_list, positive, query_str, type_name};
use super::scorers::scorer;
use super::threads::detach_interruptible;
use crate::rank::multistage::{MultiStage, Stage};

/// A cascade of scorers: ``MultiStage([(model, top_n, label), ...], batch_size)``. Each
/// model is a ``CrossEncoder``, a ``BiEncoder`` or a callable ``f(query, documents) ->
/// scores``; ``label`` names it in timings and messages.
#[pyclass(name = "MultiStage", module = "crossrank._core", frozen)]
pub struct PyMultiStage {
    inner: MultiStage,
    /// The constructor's arguments, for pickling.
    args: Py<PyTuple>,
}

#[pymethods]
impl PyMultiStage {
    #[new]
    #[pyo3(signature = (stages, batch_size=32))]
    fn new(py: Python<'_>, stages: Vec<Bound<'_, PyAny>>, batch_size: i64) -> PyResult<Self> {
        let batch = positive(batch_size, "batch_size")?;
        let mut core = Vec::with_capacity(stages.len());
        for (i, stage) in stages.iter().enumerate() {
            let (model, top_n, label): (Bound<'_, PyAny>, i64, String) =
                stage.extract().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "stages[{i}] must be a (model, top_n, label) triple, got {}",
                        type_name(stage)
                    ))
                })?;
            if top_n <= 0 {
                return Err(PyValueError::new_err(format!(
                    "stages[{i}]: top_n must be a positive integer, got {top_n}"
                )));
            }
            core.push(Stage {
                scorer: scorer(&model, batch, label)?,
                top_n: top_n as usize,
            });
        }
        Ok(Self {
            inner: MultiStage::new(core).map_err(to_py)?,
            args: (stages, batch_size).into_pyobject(py)?.unbind(),
        })
    }

    /// ``(order, scored, timings)``: every document position best first; per document
    /// ``(score, stage)`` of the last stage that scored it, or ``None``; seconds per stage.
    #[allow(clippy::type_complexity)]
    fn cascade<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
        documents: &Bound<'py, PyAny>,
    ) -> PyResult<(Vec<usize>, Vec<Option<(f64, usize)>>, Bound<'py, PyDict>)> {
        let query = query_str(query)?;
        let documents = extract_text_list(documents, "documents")?;
        let texts: Vec<&str> = documents.iter().map(String::as_str).collect();
        let inner = &self.inner;
        let cascade = detach_interruptible(py, |interrupt| {
            inner.cascade(&query, &texts, &mut |_| interrupt.check())
        })?
        .map_err(to_py)?;
        let timings = PyDict::new(py);
        for (label, seconds) in cascade.timings {
            timings.set_item(label, seconds)?;
        }
        Ok((cascade.order, cascade.scored, timings))
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> (Bound<'py, PyAny>, Bound<'py, PyTuple>) {
        (
            slf.get_type().into_any(),
            slf.get().args.bind(slf.py()).clone(),
        )
    }
}
