//! Per-query score normalization, so that signals on different scales (a cross-encoder's
//! logit, a BM25 score, a cosine) can be weighted against each other.

use std::str::FromStr;

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalization {
    /// `(s - min) / (max - min)`; all-equal scores map to 1 (nothing to tell them apart,
    /// and a present signal should not count less than a missing one).
    MinMax,
    /// `(s - mean) / std` (population std); all-equal scores map to 0.
    ZScore,
    /// `1 / (1 + exp(-s))`, per score (no dependence on the other candidates).
    Sigmoid,
    /// `1 - r / n` for the 0-based rank r of n candidates: 1 for the best, 1/n for the last;
    /// ties share the best rank of the group.
    Rank,
    /// Scores as they are.
    Identity,
}

impl FromStr for Normalization {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "minmax" | "min-max" => Ok(Self::MinMax),
            "zscore" | "z-score" => Ok(Self::ZScore),
            "sigmoid" => Ok(Self::Sigmoid),
            "rank" => Ok(Self::Rank),
            "none" | "identity" => Ok(Self::Identity),
            _ => Err(Error::invalid(format!(
                "unknown normalization {s:?}; expected \"minmax\", \"zscore\", \"sigmoid\", \"rank\" or \"none\""
            ))),
        }
    }
}

impl Normalization {
    pub fn name(self) -> &'static str {
        match self {
            Self::MinMax => "minmax",
            Self::ZScore => "zscore",
            Self::Sigmoid => "sigmoid",
            Self::Rank => "rank",
            Self::Identity => "none",
        }
    }

    /// Normalize one query's scores. Non-finite scores are an error naming the position.
    pub fn apply(self, scores: &[f64]) -> Result<Vec<f64>> {
        if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
            return Err(Error::invalid(format!(
                "score {i} is {}; scores must be finite",
                scores[i]
            )));
        }
        if scores.is_empty() {
            return Ok(Vec::new());
        }
        let n = scores.len() as f64;
        Ok(match self {
            Self::Identity => scores.to_vec(),
            Self::Sigmoid => scores.iter().map(|&s| sigmoid(s)).collect(),
            Self::MinMax => {
                let min = scores.iter().copied().fold(f64::INFINITY, f64::min);
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if max > min {
                    scores.iter().map(|s| (s - min) / (max - min)).collect()
                } else {
                    vec![1.0; scores.len()]
                }
            }
            Self::ZScore => {
                let mean = scores.iter().sum::<f64>() / n;
                let var = scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n;
                let std = var.sqrt();
                if std > 0.0 {
                    scores.iter().map(|s| (s - mean) / std).collect()
                } else {
                    vec![0.0; scores.len()]
                }
            }
            Self::Rank => {
                let mut order: Vec<usize> = (0..scores.len()).collect();
                order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
                let mut out = vec![0.0; scores.len()];
                let mut rank = 0;
                for (i, &doc) in order.iter().enumerate() {
                    if i > 0 && scores[doc] != scores[order[i - 1]] {
                        rank = i;
                    }
                    out[doc] = 1.0 - rank as f64 / n;
                }
                out
            }
        })
    }
}

/// The logistic function, without overflow for large |x|.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_method_by_hand() {
        let s = [2.0, 4.0, 4.0, 0.0];
        assert_eq!(
            Normalization::MinMax.apply(&s).unwrap(),
            [0.5, 1.0, 1.0, 0.0]
        );
        let z = Normalization::ZScore.apply(&s).unwrap();
        let std = (((2.0f64 - 2.5).powi(2) + 2.0 * 1.5f64.powi(2) + 2.5f64.powi(2)) / 4.0).sqrt();
        assert!((z[0] - (-0.5 / std)).abs() < 1e-12);
        assert_eq!(
            Normalization::Rank.apply(&s).unwrap(),
            [0.5, 1.0, 1.0, 0.25]
        );
        assert!((Normalization::Sigmoid.apply(&[0.0]).unwrap()[0] - 0.5).abs() < 1e-15);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(
            Normalization::MinMax.apply(&[3.0, 3.0]).unwrap(),
            [1.0, 1.0]
        );
        assert_eq!(
            Normalization::ZScore.apply(&[3.0, 3.0]).unwrap(),
            [0.0, 0.0]
        );
        assert!(Normalization::MinMax.apply(&[1.0, f64::NAN]).is_err());
        assert!("softmax".parse::<Normalization>().is_err());
    }
}
