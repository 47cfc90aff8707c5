//! The arithmetic the encoder's linear layers run in.

use std::str::FromStr;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Exact: scores equal PyTorch's within float rounding. The default.
    #[default]
    Float32,
    /// Dynamic int8 quantization of the encoder's linear layers (weights per output
    /// channel at load, activations per token at run time; see `score::cpu::int8`). Faster,
    /// scores close to but not equal to f32.
    Int8,
}

impl FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "float32" | "fp32" | "f32" => Ok(Self::Float32),
            "int8" | "qint8" => Ok(Self::Int8),
            _ => Err(Error::invalid(format!(
                "unsupported precision {s:?}; expected \"float32\" (exact, the default) or \
                 \"int8\" (dynamic quantization of the linear layers)"
            ))),
        }
    }
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Self::Float32 => "float32",
            Self::Int8 => "int8",
        }
    }
}
