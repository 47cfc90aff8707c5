//! Maps the core's errors onto the Python exceptions users expect.

use pyo3::exceptions::{
    PyFileNotFoundError, PyKeyboardInterrupt, PyOSError, PyRuntimeError, PyValueError,
};
use pyo3::PyErr;

use crate::error::Error;

/// A Python exception raised inside caller-supplied code, to carry through the core.
pub fn from_py(err: PyErr) -> Error {
    Error::External(Box::new(err))
}

pub fn to_py(err: Error) -> PyErr {
    let message = err.to_string();
    match err {
        Error::InvalidArgument(_)
        | Error::BadFile { .. }
        | Error::UnsupportedArchitecture { .. }
        | Error::Tokenizer(_) => PyValueError::new_err(message),
        Error::NotFound(_) => PyFileNotFoundError::new_err(message),
        Error::Io(_) => PyOSError::new_err(message),
        Error::Candle(_) => PyRuntimeError::new_err(message),
        Error::Interrupted => PyKeyboardInterrupt::new_err(message),
        Error::External(inner) => match inner.downcast::<PyErr>() {
            Ok(original) => *original,
            Err(other) => PyRuntimeError::new_err(other.to_string()),
        },
    }
}

/// Errors while loading a model are problems with its files, not bugs: report the
/// tensor library's complaint (a missing or misshapen weight) as a `ValueError`.
pub fn load_error(source: &str, err: Error) -> PyErr {
    match err {
        Error::Candle(e) => PyValueError::new_err(format!("cannot load model {source:?}: {e}")),
        other => to_py(other),
    }
}
