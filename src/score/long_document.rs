//! Documents longer than `max_length`: split into overlapping windows, score each
//! `[CLS] query [SEP] window [SEP]`, and aggregate the windows' logits per document.

use std::str::FromStr;

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LongDocument {
    /// One input per pair, truncated longest-first (what sentence-transformers does).
    #[default]
    Truncate,
    /// Only the first window: the query is kept whole and the document cut.
    First,
    /// The best window's logit.
    Max,
    /// The mean of the windows' logits.
    Mean,
}

impl FromStr for LongDocument {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "truncate" => Ok(Self::Truncate),
            "first" => Ok(Self::First),
            "max" => Ok(Self::Max),
            "mean" => Ok(Self::Mean),
            _ => Err(Error::invalid(format!(
                "unknown long_document {s:?}; expected \"truncate\", \"first\", \"max\" or \"mean\""
            ))),
        }
    }
}

impl LongDocument {
    /// Windows overlap by `stride` tokens: less than half a window, or each window would
    /// repeat more than it adds. Truncation makes no windows, so any stride goes.
    pub fn check_stride(self, stride: usize, max_length: usize) -> Result<()> {
        if self != Self::Truncate && stride * 2 >= max_length {
            return Err(Error::invalid(format!(
                "stride {stride} must be less than half of max_length ({max_length})"
            )));
        }
        Ok(())
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Truncate => "truncate",
            Self::First => "first",
            Self::Max => "max",
            Self::Mean => "mean",
        }
    }

    /// Per pair, the aggregate of its windows' logits: `window_logits` holds
    /// `windows[i] * num_labels` values for pair i, in order.
    pub fn aggregate(
        self,
        window_logits: &[f32],
        windows: &[usize],
        num_labels: usize,
    ) -> Vec<f32> {
        let mut out = Vec::with_capacity(windows.len() * num_labels);
        let mut at = 0;
        for &count in windows {
            let rows = &window_logits[at * num_labels..(at + count) * num_labels];
            for label in 0..num_labels {
                let column = rows.iter().skip(label).step_by(num_labels).copied();
                out.push(match self {
                    Self::Max => column.fold(f32::NEG_INFINITY, f32::max),
                    Self::Mean => column.sum::<f32>() / count as f32,
                    Self::Truncate | Self::First => rows[label],
                });
            }
            at += count;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_by_hand() {
        // Two pairs: 3 windows and 1 window, 2 labels each.
        let logits = [1.0, 5.0, 3.0, 0.0, 2.0, 1.0, 7.0, 8.0];
        assert_eq!(
            LongDocument::Max.aggregate(&logits, &[3, 1], 2),
            [3.0, 5.0, 7.0, 8.0]
        );
        assert_eq!(
            LongDocument::Mean.aggregate(&logits, &[3, 1], 2),
            [2.0, 2.0, 7.0, 8.0]
        );
        assert_eq!(
            LongDocument::First.aggregate(&logits, &[3, 1], 2),
            [1.0, 5.0, 7.0, 8.0]
        );
        assert!("longest".parse::<LongDocument>().is_err());
    }
}
