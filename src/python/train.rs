//! `crossrank._core.Trainer`: the Python face of `crate::train::Trainer`. The epoch loop,
//! shuffling, progress bar and evaluation live in `python/crossrank/train.py`.

use std::path::PathBuf;

use numpy::PyArray1;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::errors::{load_error, to_py};
use super::inputs::{
    extract_pairs, extract_text_list, hub_options, model_path, optional_positive, positive,
};
use super::threads::detach;
use crate::train::{Batch, Group, Loss, StepStats, Trainer, TrainerConfig};

/// The training core behind :class:`crossrank.train.CrossEncoderTrainer` (use that): one
/// optimizer step per call, with the schedule sized for ``num_examples`` per epoch.
#[pyclass(name = "Trainer", module = "crossrank", unsendable)]
pub struct PyTrainer {
    inner: Trainer,
}

fn stats<'py>(py: Python<'py>, s: StepStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("loss", s.loss as f64)?;
    d.set_item("grad_norm", s.grad_norm)?;
    d.set_item("learning_rate", s.learning_rate)?;
    Ok(d)
}

fn fraction(value: f64, name: &str) -> PyResult<f64> {
    if value.is_finite() && (0.0..1.0).contains(&value) {
        Ok(value)
    } else {
        Err(PyValueError::new_err(format!(
            "{name} must be in [0, 1), got {value}"
        )))
    }
}

fn positive_number(value: f64, name: &str) -> PyResult<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(PyValueError::new_err(format!(
            "{name} must be a positive number, got {value}"
        )))
    }
}

/// Each group's documents as `&str`s, for [`borrow_groups`].
fn document_refs(owned: &[(String, Vec<String>)]) -> Vec<Vec<&str>> {
    owned
        .iter()
        .map(|(_, d)| d.iter().map(String::as_str).collect())
        .collect()
}

/// Borrowed [`Group`]s over owned (query, documents) pairs.
fn borrow_groups<'a>(
    owned: &'a [(String, Vec<String>)],
    refs: &'a [Vec<&'a str>],
) -> Vec<Group<'a>> {
    owned
        .iter()
        .zip(refs)
        .map(|((q, _), docs)| Group {
            query: q,
            documents: docs,
        })
        .collect()
}

#[pymethods]
impl PyTrainer {
    #[new]
    #[pyo3(signature = (base, num_examples, num_labels=None, max_length=None, learning_rate=2e-5, batch_size=16,
                        epochs=1, warmup_ratio=0.1, weight_decay=0.01, max_grad_norm=1.0, seed=0,
                        loss="bce", dropout=None, revision=None, cache_folder=None, local_files_only=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        base: &Bound<'_, PyAny>,
        num_examples: i64,
        num_labels: Option<i64>,
        max_length: Option<i64>,
        learning_rate: f64,
        batch_size: i64,
        epochs: i64,
        warmup_ratio: f64,
        weight_decay: f64,
        max_grad_norm: Option<f64>,
        seed: u64,
        loss: &str,
        dropout: Option<f64>,
        revision: Option<String>,
        cache_folder: Option<PathBuf>,
        local_files_only: bool,
    ) -> PyResult<Self> {
        let name = model_path(base)?;
        let mut config = TrainerConfig::new(name.clone());
        config.num_labels = optional_positive(num_labels, "num_labels")?;
        config.max_length = optional_positive(max_length, "max_length")?;
        config.learning_rate = positive_number(learning_rate, "learning_rate")?;
        config.batch_size = positive(batch_size, "batch_size")?;
        config.epochs = positive(epochs, "epochs")?;
        config.warmup_ratio = fraction(warmup_ratio, "warmup_ratio")?;
        if !(weight_decay.is_finite() && weight_decay >= 0.0) {
            return Err(PyValueError::new_err(format!(
                "weight_decay must be >= 0, got {weight_decay}"
            )));
        }
        config.weight_decay = weight_decay;
        config.max_grad_norm = max_grad_norm;
        config.seed = seed;
        config.loss = loss.parse::<Loss>().map_err(to_py)?;
        // Checked by the core (`Dropout::new`): ValueError "dropout must be in [0, 1)".
        config.dropout = dropout;
        config.hub = hub_options(&revision, &cache_folder, local_files_only);
        let examples = positive(num_examples, "num_examples")?;
        let inner =
            detach(py, || Trainer::new(config, examples)).map_err(|e| load_error(&name, e))?;
        Ok(Self { inner })
    }

    /// One step on labelled pairs (binary cross-entropy): ``{"loss", "grad_norm", "learning_rate"}``.
    fn train_step_pairs<'py>(
        &mut self,
        py: Python<'py>,
        pairs: &Bound<'py, PyAny>,
        labels: Vec<f32>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (pairs, singular) = extract_pairs(pairs)?;
        if singular {
            return Err(PyTypeError::new_err(
                "pairs must be a list of (query, document) pairs",
            ));
        }
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let inner = &mut self.inner;
        let result = detach(py, || {
            inner.train_step(&Batch::Pairs {
                pairs: &borrowed,
                labels: &labels,
            })
        });
        stats(py, result.map_err(to_py)?)
    }

    /// One step on ``[(query, [positive, negative, ...]), ...]`` (listwise softmax).
    fn train_step_groups<'py>(
        &mut self,
        py: Python<'py>,
        groups: Vec<(String, Bound<'py, PyAny>)>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let owned: Vec<(String, Vec<String>)> = groups
            .into_iter()
            .map(|(q, docs)| Ok((q, extract_text_list(&docs, "documents")?)))
            .collect::<PyResult<_>>()?;
        let refs = document_refs(&owned);
        let batch = borrow_groups(&owned, &refs);
        let inner = &mut self.inner;
        let result = detach(py, || inner.train_step(&Batch::Groups(&batch)));
        stats(py, result.map_err(to_py)?)
    }

    /// One step on ``[(query, [document, ...], [teacher score, ...]), ...]`` (distillation:
    /// ``loss="kl"`` or ``"margin_mse"``).
    fn train_step_distill<'py>(
        &mut self,
        py: Python<'py>,
        groups: Vec<(String, Bound<'py, PyAny>, Vec<f32>)>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let mut owned: Vec<(String, Vec<String>)> = Vec::with_capacity(groups.len());
        let mut teacher = Vec::new();
        for (i, (q, docs, scores)) in groups.into_iter().enumerate() {
            let docs = extract_text_list(&docs, "documents")?;
            if docs.len() != scores.len() {
                return Err(PyValueError::new_err(format!(
                    "group {i} has {} documents and {} teacher scores; one score per document",
                    docs.len(),
                    scores.len()
                )));
            }
            teacher.extend(scores);
            owned.push((q, docs));
        }
        let refs = document_refs(&owned);
        let batch = borrow_groups(&owned, &refs);
        let inner = &mut self.inner;
        let result = detach(py, || {
            inner.train_step(&Batch::Distill {
                groups: &batch,
                teacher: &teacher,
            })
        });
        stats(py, result.map_err(to_py)?)
    }

    /// Logits of the model as it is now: (n,) for one label, else (n, num_labels) flattened.
    fn logits<'py>(
        &self,
        py: Python<'py>,
        pairs: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let (pairs, _) = extract_pairs(pairs)?;
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let inner = &self.inner;
        let values = detach(py, || inner.logits(&borrowed)).map_err(to_py)?;
        Ok(PyArray1::from_vec(py, values))
    }

    /// Writes a Hugging Face checkpoint directory (refuses an existing one unless ``overwrite``).
    #[pyo3(signature = (path, overwrite=false))]
    fn save(&self, py: Python<'_>, path: PathBuf, overwrite: bool) -> PyResult<()> {
        let inner = &self.inner;
        detach(py, || inner.save(&path, overwrite)).map_err(to_py)
    }

    /// Optimizer steps taken so far.
    #[getter]
    fn steps_done(&self) -> usize {
        self.inner.steps_done()
    }

    /// Tokens per training pair after truncation.
    #[getter]
    fn max_length(&self) -> usize {
        self.inner.max_length()
    }

    /// The dropout probability applied to hidden states during training.
    #[getter]
    fn dropout(&self) -> f64 {
        self.inner.dropout()
    }

    /// Outputs of the classification head being trained.
    #[getter]
    fn num_labels(&self) -> usize {
        self.inner.num_labels()
    }
}
