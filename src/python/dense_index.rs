//! `crossrank.DenseIndex`: exact top-k over a float32 numpy matrix, read in place.

use std::path::PathBuf;

use numpy::{PyArray2, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::bm25::hits_to_py;
use super::errors::to_py;
use super::inputs::{extract_text_list, positive, type_name};
use super::threads::detach;
use crate::retrieve::dense_index::{row_scales, DenseIndex, DenseMetric, DenseView};
use crate::retrieve::hit::check_ids;

/// `obj` as a C-contiguous float32 numpy array (no copy when it already is one) and
/// whether it was 1-D.
fn float32_rows<'py>(
    obj: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<(Bound<'py, PyArray2<f32>>, bool)> {
    let py = obj.py();
    let np = py.import("numpy")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("dtype", "float32")?;
    let array = np
        .getattr("ascontiguousarray")?
        .call((obj,), Some(&kwargs))
        .map_err(|e| {
            PyTypeError::new_err(format!(
                "{what} must be a float32 array-like of shape (n, dim), got {} ({e})",
                type_name(obj)
            ))
        })?;
    let ndim: usize = array.getattr("ndim")?.extract()?;
    let (array, single) = match ndim {
        1 => (array.call_method1("reshape", ((1, -1),))?, true),
        2 => (array, false),
        _ => {
            return Err(PyValueError::new_err(format!(
                "{what} must be 1-D (one vector) or 2-D (n, dim), got {ndim}-D"
            )))
        }
    };
    Ok((array.cast_into::<PyArray2<f32>>()?, single))
}

/// Ids given for `rows` rows: `None` means none; a list must have one id per row (so an
/// empty list is refused for a non-empty matrix rather than read as "no ids").
fn optional_ids(obj: Option<&Bound<'_, PyAny>>, rows: usize) -> PyResult<Vec<String>> {
    match obj {
        Some(o) if !o.is_none() => {
            let ids = extract_text_list(o, "ids")?;
            check_ids(&ids, rows).map_err(to_py)?;
            Ok(ids)
        }
        _ => Ok(Vec::new()),
    }
}

/// Exact nearest-neighbour search over embeddings. See ``crossrank/_core.pyi``.
#[pyclass(name = "DenseIndex", module = "crossrank")]
pub struct PyDenseIndex {
    /// The caller's array when it was C-contiguous float32 (read in place), else a copy.
    vectors: Py<PyArray2<f32>>,
    scales: Vec<f32>,
    metric: DenseMetric,
    ids: Vec<String>,
}

impl PyDenseIndex {
    fn dim(&self, py: Python<'_>) -> usize {
        self.vectors.bind(py).shape()[1]
    }

    fn id_list(&self) -> Option<&[String]> {
        (!self.ids.is_empty()).then_some(self.ids.as_slice())
    }
}

#[pymethods]
impl PyDenseIndex {
    #[new]
    #[pyo3(signature = (embeddings, ids=None, metric="cosine"))]
    fn new(
        embeddings: &Bound<'_, PyAny>,
        ids: Option<&Bound<'_, PyAny>>,
        metric: &str,
    ) -> PyResult<Self> {
        let metric: DenseMetric = metric.parse().map_err(to_py)?;
        let (vectors, _) = float32_rows(embeddings, "embeddings")?;
        let (n, dim) = (vectors.shape()[0], vectors.shape()[1]);
        let ids = optional_ids(ids, n)?;
        if dim == 0 {
            return Err(PyValueError::new_err(
                "embeddings must have at least one dimension",
            ));
        }
        let scales = {
            let rows = vectors.readonly();
            let slice = rows.as_slice()?;
            if let Some(i) = slice.iter().position(|v| !v.is_finite()) {
                return Err(PyValueError::new_err(format!(
                    "embeddings row {} holds a non-finite value ({})",
                    i / dim,
                    slice[i]
                )));
            }
            row_scales(slice, dim, metric)
        };
        Ok(Self {
            vectors: vectors.unbind(),
            scales,
            metric,
            ids,
        })
    }

    /// Top-k rows per query: `(ids, scores)` for one query vector, a list of them for a matrix.
    #[pyo3(signature = (query_embeddings, top_k=10))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        query_embeddings: &Bound<'py, PyAny>,
        top_k: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let top_k = positive(top_k, "top_k")?;
        let (queries, single) = float32_rows(query_embeddings, "query_embeddings")?;
        let dim = self.dim(py);
        if queries.shape()[1] != dim {
            return Err(PyValueError::new_err(format!(
                "query_embeddings have dimension {}, the index has {dim}",
                queries.shape()[1]
            )));
        }
        let rows = self.vectors.bind(py).readonly();
        let queries = queries.readonly();
        let (rows, queries) = (rows.as_slice()?, queries.as_slice()?);
        let view = DenseView {
            vectors: rows,
            dim,
            metric: self.metric,
            scales: &self.scales,
        };
        if view.is_empty() {
            return Err(PyValueError::new_err("the index is empty"));
        }
        let results = detach(py, || view.search(queries, top_k)).map_err(to_py)?;
        let tuples = results
            .iter()
            .map(|hits| hits_to_py(py, hits, self.id_list()))
            .collect::<PyResult<Vec<_>>>()?;
        if single {
            Ok(tuples.into_iter().next().expect("one query").into_any())
        } else {
            Ok(pyo3::types::PyList::new(py, tuples)?.into_any())
        }
    }

    /// Append rows (a copy: the index then owns one concatenated array).
    #[pyo3(signature = (embeddings, ids=None))]
    fn add(
        &mut self,
        py: Python<'_>,
        embeddings: &Bound<'_, PyAny>,
        ids: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (new, _) = float32_rows(embeddings, "embeddings")?;
        let ids = optional_ids(ids, new.shape()[0])?;
        let dim = self.dim(py);
        if new.shape()[1] != dim {
            return Err(PyValueError::new_err(format!(
                "embeddings have dimension {}, the index has {dim}",
                new.shape()[1]
            )));
        }
        // The core's add checks ids, finiteness and the id/no-id rules; it works on copies.
        let mut index = DenseIndex::new(
            self.vectors.bind(py).readonly().as_slice()?.to_vec(),
            dim,
            self.metric,
            self.ids.clone(),
        )
        .map_err(to_py)?;
        index
            .add(new.readonly().as_slice()?.to_vec(), ids)
            .map_err(to_py)?;
        let n = index.len();
        let (vectors, _, _, ids) = index.into_parts();
        self.scales = row_scales(&vectors, dim, self.metric);
        self.vectors = numpy::PyArray1::from_vec(py, vectors)
            .reshape([n, dim])?
            .unbind();
        self.ids = ids;
        Ok(())
    }

    /// Writes the embeddings, metric and ids to ``path`` as one file.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let rows = self.vectors.bind(py).readonly();
        let slice = rows.as_slice()?;
        let dim = self.dim(py);
        detach(py, || {
            DenseIndex::save_parts(&path, slice, dim, self.metric, &self.ids)
        })
        .map_err(to_py)
    }

    /// Reads an index written by ``save``. Raises ``FileNotFoundError`` for a missing file,
    /// ``ValueError`` for one that is not an index.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let index = detach(py, || DenseIndex::load(&path)).map_err(to_py)?;
        let n = index.len();
        let (vectors, dim, metric, ids) = index.into_parts();
        let scales = row_scales(&vectors, dim, metric);
        let array = numpy::PyArray1::from_vec(py, vectors).reshape([n, dim])?;
        Ok(Self {
            vectors: array.unbind(),
            scales,
            metric,
            ids,
        })
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let this = slf.borrow();
        let ids = this.id_list().map(<[String]>::to_vec);
        let args = (this.vectors.clone_ref(py), ids, this.metric.name()).into_pyobject(py)?;
        Ok((slf.get_type().into_any(), args))
    }

    /// The (n, dim) float32 matrix the index searches.
    #[getter]
    fn embeddings(&self, py: Python<'_>) -> Py<PyArray2<f32>> {
        self.vectors.clone_ref(py)
    }

    /// The ids given at construction, or None when rows are numbered by position.
    #[getter]
    fn ids(&self) -> Option<Vec<String>> {
        self.id_list().map(<[String]>::to_vec)
    }

    /// The similarity searched by: ``"cosine"`` or ``"dot"``.
    #[getter]
    fn metric(&self) -> &'static str {
        self.metric.name()
    }

    /// The dimension of the stored embeddings.
    #[getter(dim)]
    fn get_dim(&self, py: Python<'_>) -> usize {
        self.dim(py)
    }

    fn __len__(&self) -> usize {
        self.scales.len()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "DenseIndex({} vectors, dim={}, metric={:?})",
            self.scales.len(),
            self.dim(py),
            self.metric.name()
        )
    }
}
