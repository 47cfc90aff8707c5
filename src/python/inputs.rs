//! Checks and converts Python inputs, with errors that name the offending item.

use std::path::PathBuf;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFrozenSet, PyList, PySet, PyString, PyTuple};

use crate::model::source::HubOptions;

pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn as_str(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    checked_str(obj.clone(), what)?.extract::<String>()
}

fn items<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a list, got a single str"
        )));
    }
    if obj.is_none() {
        return Err(PyTypeError::new_err(format!(
            "{what} is None; expected a list"
        )));
    }
    let iter = obj.try_iter().map_err(|_| {
        PyTypeError::new_err(format!("{what} must be a list, got {}", type_name(obj)))
    })?;
    iter.collect()
}

/// A pair may be any ordered sequence of two str, as sentence-transformers takes it: a
/// tuple, a list, a row of a 2-D numpy array of str. Unordered collections and mappings
/// are not pairs (which text is the query would be arbitrary).
fn is_pair_like(obj: &Bound<'_, PyAny>) -> bool {
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        return true;
    }
    let unordered = obj.is_instance_of::<PyString>()
        || obj.is_instance_of::<PyBytes>()
        || obj.is_instance_of::<PyDict>()
        || obj.is_instance_of::<PySet>()
        || obj.is_instance_of::<PyFrozenSet>();
    !unordered
        && obj.hasattr("__len__").unwrap_or(false)
        && obj.hasattr("__getitem__").unwrap_or(false)
}

/// A (query, document) pair of Python str objects, checked but not yet copied.
pub type PyPair<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>);

fn checked_str<'py>(obj: Bound<'py, PyAny>, what: &str) -> PyResult<Bound<'py, PyAny>> {
    if obj.is_none() {
        return Err(PyTypeError::new_err(format!(
            "{what} is None; expected str"
        )));
    }
    if !obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be str, got {}",
            type_name(&obj)
        )));
    }
    Ok(obj)
}

/// `(pairs, singular)`: checks a list of (query, document) pairs, or one pair (as
/// sentence-transformers: a sequence whose first element is a str is one pair). Every
/// item is checked before any is copied, so a bad item fails the call before work starts.
pub fn checked_pairs<'py>(obj: &Bound<'py, PyAny>) -> PyResult<(Vec<PyPair<'py>>, bool)> {
    let list = items(obj, "sentences")?;
    let singular = list
        .first()
        .is_some_and(|first| first.is_instance_of::<PyString>());
    if singular {
        if list.len() != 2 {
            return Err(PyValueError::new_err(format!(
                "a single pair must have 2 elements (query, document), got {}",
                list.len()
            )));
        }
        let pair = (
            checked_str(list[0].clone(), "sentences[0]")?,
            checked_str(list[1].clone(), "sentences[1]")?,
        );
        return Ok((vec![pair], true));
    }
    let pairs = list
        .iter()
        .enumerate()
        .map(|(i, item)| {
            if item.is_none() {
                return Err(PyTypeError::new_err(format!(
                    "sentences[{i}] is None; expected a (query, document) pair"
                )));
            }
            if !is_pair_like(item) {
                return Err(PyTypeError::new_err(format!(
                    "sentences[{i}] must be a (query, document) pair (tuple, list or array of 2 str), got {}",
                    type_name(item)
                )));
            }
            let parts = items(item, &format!("sentences[{i}]"))?;
            let n = parts.len();
            let mut parts = parts.into_iter();
            match (parts.next(), parts.next(), n) {
                (Some(q), Some(d), 2) => Ok((
                    checked_str(q, &format!("sentences[{i}][0]"))?,
                    checked_str(d, &format!("sentences[{i}][1]"))?,
                )),
                _ => Err(PyValueError::new_err(format!(
                    "sentences[{i}] has {n} elements; expected a (query, document) pair"
                ))),
            }
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok((pairs, false))
}

/// Copies checked pairs into Rust strings.
pub fn pair_strings(pairs: &[PyPair<'_>]) -> PyResult<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|(q, d)| Ok((q.extract::<String>()?, d.extract::<String>()?)))
        .collect()
}

/// `(pairs, singular)`, copied: see [`checked_pairs`].
pub fn extract_pairs(obj: &Bound<'_, PyAny>) -> PyResult<(Vec<(String, String)>, bool)> {
    let (pairs, singular) = checked_pairs(obj)?;
    Ok((pair_strings(&pairs)?, singular))
}

/// A list of str, or one str (`singular`).
pub fn extract_texts(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<(Vec<String>, bool)> {
    if obj.is_instance_of::<PyString>() {
        return Ok((vec![obj.extract::<String>()?], true));
    }
    Ok((extract_text_list(obj, what)?, false))
}

/// A list of str; a single str is refused (it would be iterated character by character).
pub fn extract_text_list(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<String>> {
    items(obj, what)?
        .iter()
        .enumerate()
        .map(|(i, item)| as_str(item, &format!("{what}[{i}]")))
        .collect()
}

pub fn query_str(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    as_str(obj, "query")
}

pub fn positive(value: i64, name: &str) -> PyResult<usize> {
    if value <= 0 {
        return Err(PyValueError::new_err(format!(
            "{name} must be a positive integer, got {value}"
        )));
    }
    Ok(value as usize)
}

pub fn optional_positive(value: Option<i64>, name: &str) -> PyResult<Option<usize>> {
    value.map(|v| positive(v, name)).transpose()
}

/// A model id or a path (str or os.PathLike).
pub fn model_path(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    if obj.is_instance_of::<PyString>() {
        return obj.extract::<String>();
    }
    obj.extract::<PathBuf>()
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "model_name_or_path must be a str or os.PathLike, got {}",
                type_name(obj)
            ))
        })
}

/// The hub arguments both model classes take.
pub fn hub_options(
    revision: &Option<String>,
    cache_folder: &Option<PathBuf>,
    local_files_only: bool,
) -> HubOptions {
    HubOptions {
        revision: revision.clone(),
        cache_folder: cache_folder.clone(),
        local_files_only,
    }
}
