//! One error type for the whole crate. The Python bindings map each variant to the
//! Python exception a user would expect (see `src/python/errors.rs`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments or inputs from the caller (Python `ValueError`).
    #[error("{0}")]
    InvalidArgument(String),

    /// A file or model that does not exist (Python `FileNotFoundError`).
    #[error("{0}")]
    NotFound(String),

    /// A config / tokenizer / weight file that exists but cannot be used (Python `ValueError`).
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },

    /// A model whose architecture we do not implement (Python `ValueError`).
    #[error("unsupported architecture {found:?}; supported: {supported}")]
    UnsupportedArchitecture { found: String, supported: String },

    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// Tensor errors during a forward pass: a bug or resource problem, not bad input
    /// (Python `RuntimeError`).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    #[error(transparent)]
    Io(#[from] std::io::Error),

    /// The caller asked the work to stop (Ctrl-C in Python: `KeyboardInterrupt`).
    #[error("interrupted")]
    Interrupted,

    /// An error from caller-supplied code (a Python scorer or comparator), carried through
    /// the core unchanged so that the bindings raise the original exception.
    #[error(transparent)]
    External(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }

    pub fn bad_file(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        Error::BadFile {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
