//! How a bi-encoder turns token states into one vector per text (sentence-transformers'
//! Pooling module) and the optional normalization after it (its Normalize module). Each
//! engine pools its own representation; both follow these definitions.

use std::str::FromStr;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    Mean,
    Cls,
    Max,
    MeanSqrtLen,
}

impl FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mean" => Ok(Self::Mean),
            "cls" => Ok(Self::Cls),
            "max" => Ok(Self::Max),
            "mean_sqrt_len" | "mean_sqrt_len_tokens" => Ok(Self::MeanSqrtLen),
            _ => Err(Error::invalid(format!(
                "unknown pooling {s:?}; expected \"mean\", \"cls\", \"max\" or \"mean_sqrt_len\""
            ))),
        }
    }
}

impl Pooling {
    pub fn name(self) -> &'static str {
        match self {
            Self::Mean => "mean",
            Self::Cls => "cls",
            Self::Max => "max",
            Self::MeanSqrtLen => "mean_sqrt_len",
        }
    }
}

/// Scales each `dim`-wide row of `values` to unit length, as
/// `torch.nn.functional.normalize`: `x / max(||x||, 1e-12)`.
pub fn normalize_rows(values: &mut [f32], dim: usize) {
    for row in values.chunks_exact_mut(dim.max(1)) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= norm);
    }
}
