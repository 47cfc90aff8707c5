//! `crossrank.BM25`: the Python face of `crate::retrieve::bm25::Bm25`.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{PyArray1, ToPyArray};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use super::errors::to_py;
use super::inputs::{extract_text_list, positive, query_str, type_name};
use super::progress::Progress;
use super::threads::{detach, detach_interruptible};
use crate::retrieve::analyzer::AnalyzerConfig;
use crate::retrieve::bm25::{Bm25, Bm25Params};
use crate::retrieve::hit::Hit;

/// `(ids, scores)`: ids as a list of str when the index has ids, else an int64 array of
/// corpus positions; scores as a float32 array.
pub fn hits_to_py<'py>(
    py: Python<'py>,
    hits: &[Hit],
    ids: Option<&[String]>,
) -> PyResult<Bound<'py, PyTuple>> {
    let scores: Vec<f32> = hits.iter().map(|h| h.score).collect();
    let scores = PyArray1::from_vec(py, scores);
    let docs: Bound<'py, PyAny> = match ids {
        Some(ids) => PyList::new(py, hits.iter().map(|h| ids[h.doc as usize].as_str()))?.into_any(),
        None => {
            let positions: Vec<i64> = hits.iter().map(|h| h.doc as i64).collect();
            positions.to_pyarray(py).into_any()
        }
    };
    PyTuple::new(py, [docs, scores.into_any()])
}

/// `None`, a language name such as "english" (NLTK's list), or a list of words.
fn stopword_list(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    match obj {
        None => Ok(Vec::new()),
        Some(o) if o.is_none() => Ok(Vec::new()),
        Some(o) if o.is_instance_of::<PyString>() => {
            AnalyzerConfig::stopword_list(&o.extract::<String>()?).map_err(to_py)
        }
        Some(o) => extract_text_list(o, "stopwords").map_err(|_| {
            PyTypeError::new_err(format!(
                "stopwords must be None, a language name such as \"english\", or a list of str; got {}",
                type_name(o)
            ))
        }),
    }
}

/// Okapi BM25 (Lucene idf) over a corpus of strings. See ``crossrank/_core.pyi``.
#[pyclass(name = "BM25", module = "crossrank", frozen)]
pub struct PyBm25 {
    inner: Arc<Bm25>,
}

impl PyBm25 {
    pub fn inner(&self) -> &Arc<Bm25> {
        &self.inner
    }
}

#[pymethods]
impl PyBm25 {
    #[new]
    #[pyo3(signature = (corpus, ids=None, k1=0.9, b=0.4, stopwords=None, stemmer=None))]
    fn new(
        py: Python<'_>,
        corpus: &Bound<'_, PyAny>,
        ids: Option<&Bound<'_, PyAny>>,
        k1: f32,
        b: f32,
        stopwords: Option<&Bound<'_, PyAny>>,
        stemmer: Option<String>,
    ) -> PyResult<Self> {
        let corpus = extract_text_list(corpus, "corpus")?;
        let ids = ids
            .filter(|o| !o.is_none())
            .map(|o| extract_text_list(o, "ids"))
            .transpose()?;
        let analyzer = AnalyzerConfig {
            stopwords: stopword_list(stopwords)?,
            stemmer,
        };
        let inner = detach_interruptible(py, |interrupt| {
            let stop = || interrupt.is_raised();
            let bm25 = Bm25::new_until(&corpus, Bm25Params { k1, b }, analyzer, &stop)?;
            match ids {
                Some(ids) => bm25.with_ids(ids),
                None => Ok(bm25),
            }
        })?
        .map_err(to_py)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The terms BM25 sees for `text` (after lowercasing, splitting, stopwords, stemming).
    fn tokenize(&self, text: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        Ok(self.inner.analyzer().terms(&query_str(text)?))
    }

    /// The ``top_k`` best documents for ``query``, best first (equal scores: corpus order), as
    /// ``(ids or positions, float32 scores)``. Only documents sharing a term with the query.
    #[pyo3(signature = (query, top_k=10))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
        top_k: i64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let query = query_str(query)?;
        let top_k = positive(top_k, "top_k")?;
        let hits = detach(py, || self.inner.search(&query, top_k)).map_err(to_py)?;
        hits_to_py(py, &hits, self.inner.ids())
    }

    /// ``search`` for each query, in parallel with the GIL released.
    #[pyo3(signature = (queries, top_k=10, show_progress_bar=None))]
    fn search_batch<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        top_k: i64,
        show_progress_bar: Option<bool>,
    ) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let queries = extract_text_list(queries, "queries")?;
        let top_k = positive(top_k, "top_k")?;
        let progress = Progress::new(py, show_progress_bar, queries.len(), "BM25 search", "query")?;
        // Chunks keep the bar moving; each chunk runs in parallel.
        let mut results = Vec::with_capacity(queries.len());
        for chunk in queries.chunks(256) {
            results.extend(detach(py, || self.inner.search_batch(chunk, top_k)).map_err(to_py)?);
            progress.update(chunk.len());
            // Ctrl-C between chunks.
            py.check_signals()?;
        }
        progress.close(py);
        results
            .iter()
            .map(|hits| hits_to_py(py, hits, self.inner.ids()))
            .collect()
    }

    /// BM25 scores of any `documents` for `query` with the corpus' statistics.
    fn score<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
        documents: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let query = query_str(query)?;
        let documents = extract_text_list(documents, "documents")?;
        let scores = detach(py, || self.inner.score(&query, &documents));
        Ok(PyArray1::from_vec(py, scores))
    }

    /// Writes the index (vocabulary, postings, parameters, ids) to ``path`` as one file.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        detach(py, || self.inner.save(&path)).map_err(to_py)
    }

    /// Reads an index written by ``save``. Raises ``FileNotFoundError`` for a missing file,
    /// ``ValueError`` for one that is not an index.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = detach(py, || Bm25::load(&path)).map_err(to_py)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    #[staticmethod]
    fn _from_bytes(bytes: &[u8]) -> PyResult<Self> {
        let inner = Bm25::from_bytes(bytes, std::path::Path::new("<pickle>")).map_err(to_py)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let bytes = slf.get().inner.to_bytes().map_err(to_py)?;
        let constructor = slf.get_type().getattr("_from_bytes")?;
        Ok((constructor, PyTuple::new(py, [PyBytes::new(py, &bytes)])?))
    }

    /// Term-frequency saturation: how quickly repeated terms stop adding to a score.
    #[getter]
    fn k1(&self) -> f32 {
        self.inner.params().k1
    }

    /// Length normalization: 0 ignores document length, 1 normalizes fully.
    #[getter]
    fn b(&self) -> f32 {
        self.inner.params().b
    }

    /// The corpus ids given at construction, or None when documents are numbered by position.
    #[getter]
    fn ids(&self) -> Option<Vec<String>> {
        self.inner.ids().map(<[String]>::to_vec)
    }

    /// Distinct terms in the index after analysis.
    #[getter]
    fn vocabulary_size(&self) -> usize {
        self.inner.vocabulary_size()
    }

    fn __len__(&self) -> usize {
        self.inner.num_documents()
    }

    fn __repr__(&self) -> String {
        let config = self.inner.analyzer().config();
        format!(
            "BM25({} documents, {} terms, k1={}, b={}, stopwords={}, stemmer={:?})",
            self.inner.num_documents(),
            self.inner.vocabulary_size(),
            self.inner.params().k1,
            self.inner.params().b,
            config.stopwords.len(),
            config.stemmer
        )
    }
}
