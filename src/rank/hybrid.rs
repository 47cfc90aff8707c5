//! Combining several per-candidate signals of one query into one score: each signal is
//! normalized per query, then fused by a weighted sum or by reciprocal rank fusion.
//! [`Combination`] keeps every signal's normalized value and contribution, which is what
//! `explain=True` shows.

use crate::rank::normalize::Normalization;
use crate::rank::weights::{check_rrf_k, check_weights};
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// score = sum_i w_i * normalized_i
    WeightedSum,
    /// score = sum_i w_i / (k + rank_i), ranks from 1 by the raw signal (ties: earlier
    /// candidate first). Normalization does not change ranks, so it is not applied.
    ReciprocalRank { k: f64 },
}

impl Fusion {
    /// By name, as the Python API spells it: `"weighted"` (or `"weighted_sum"`) or
    /// `"rrf"` with its constant `k` (checked when the fusion runs).
    pub fn from_name(name: &str, k: f64) -> Result<Self> {
        match name {
            "weighted" | "weighted_sum" => Ok(Self::WeightedSum),
            "rrf" => Ok(Self::ReciprocalRank { k }),
            _ => Err(Error::invalid(format!(
                "unknown fusion {name:?}; expected \"weighted\" or \"rrf\""
            ))),
        }
    }
}

/// One signal's raw values for the candidates, with its weight and normalization.
#[derive(Debug, Clone)]
pub struct Signal {
    pub name: String,
    pub values: Vec<f64>,
    pub weight: f64,
    pub normalization: Normalization,
}

#[derive(Debug, Clone)]
pub struct Combination {
    pub scores: Vec<f64>,
    /// Per signal, per candidate: the normalized value (weighted sum) or 1 / (k + rank) (RRF).
    pub normalized: Vec<Vec<f64>>,
    /// Per signal, per candidate: weight x normalized.
    pub contributions: Vec<Vec<f64>>,
}

/// 1 / (k + rank) per candidate, ranks from 1 by descending value, ties by position.
pub fn reciprocal_ranks(values: &[f64], k: f64) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    let mut out = vec![0.0; values.len()];
    for (rank, &doc) in order.iter().enumerate() {
        out[doc] = 1.0 / (k + rank as f64 + 1.0);
    }
    out
}

/// The per-candidate basis each weight multiplies: normalized values or reciprocal ranks.
pub fn basis(signal: &Signal, fusion: Fusion) -> Result<Vec<f64>> {
    let normalized = signal
        .normalization
        .apply(&signal.values)
        .map_err(|e| Error::invalid(format!("signal {:?}: {e}", signal.name)))?;
    Ok(match fusion {
        Fusion::WeightedSum => normalized,
        Fusion::ReciprocalRank { k } => reciprocal_ranks(&signal.values, k),
    })
}

pub fn combine(signals: &[Signal], fusion: Fusion) -> Result<Combination> {
    let n = signals.first().map_or(0, |s| s.values.len());
    if let Some(bad) = signals.iter().find(|s| s.values.len() != n) {
        return Err(Error::invalid(format!(
            "signal {:?} has {} values for {n} candidates",
            bad.name,
            bad.values.len()
        )));
    }
    if let Fusion::ReciprocalRank { k } = fusion {
        check_rrf_k(k)?;
    }
    check_weights(signals.iter().map(|s| (format!("{:?}", s.name), s.weight)))?;
    let normalized = signals
        .iter()
        .map(|s| basis(s, fusion))
        .collect::<Result<Vec<_>>>()?;
    let contributions: Vec<Vec<f64>> = signals
        .iter()
        .zip(&normalized)
        .map(|(s, b)| b.iter().map(|v| s.weight * v).collect())
        .collect();
    let scores = (0..n)
        .map(|d| contributions.iter().map(|c| c[d]).sum())
        .collect();
    Ok(Combination {
        scores,
        normalized,
        contributions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(name: &str, values: &[f64], weight: f64) -> Signal {
        Signal {
            name: name.into(),
            values: values.to_vec(),
            weight,
            normalization: Normalization::MinMax,
        }
    }

    #[test]
    fn weighted_sum_and_rrf_by_hand() {
        let signals = [
            signal("ce", &[2.0, 0.0, 1.0], 0.6),
            signal("bm25", &[0.0, 10.0, 5.0], 0.4),
        ];
        let c = combine(&signals, Fusion::WeightedSum).unwrap();
        let want = [0.6, 0.4, 0.6 * 0.5 + 0.4 * 0.5];
        for (got, want) in c.scores.iter().zip(want) {
            assert!((got - want).abs() < 1e-12);
        }
        assert_eq!(c.normalized[1], [0.0, 1.0, 0.5]);
        let r = combine(&signals, Fusion::ReciprocalRank { k: 60.0 }).unwrap();
        assert!((r.scores[0] - (0.6 / 61.0 + 0.4 / 63.0)).abs() < 1e-12);
        assert!((r.scores[2] - (0.6 / 62.0 + 0.4 / 62.0)).abs() < 1e-12);
    }

    #[test]
    fn bad_weights_and_lengths() {
        let ok = signal("a", &[1.0, 2.0], 1.0);
        assert!(combine(&[ok.clone(), signal("b", &[1.0], 1.0)], Fusion::WeightedSum).is_err());
        assert!(combine(&[signal("a", &[1.0], -1.0)], Fusion::WeightedSum).is_err());
        assert!(combine(&[signal("a", &[1.0], f64::NAN)], Fusion::WeightedSum).is_err());
        assert!(combine(&[signal("a", &[1.0], 0.0)], Fusion::WeightedSum).is_err());
        let nan = signal("llm", &[1.0, f64::NAN], 1.0);
        let err = combine(&[ok, nan], Fusion::WeightedSum)
            .unwrap_err()
            .to_string();
        assert!(err.contains("llm") && err.contains("NaN"), "{err}");
    }
}
