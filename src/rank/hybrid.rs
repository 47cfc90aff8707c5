//! Combining several per-candidate signals of one query into one score: each signal is
//! normalized per query, then fused by a weighted sum or by reciprocal rank fusion.
//! [`Combination`] keeps every signal's normalized value and contribution, which is what
//! `explain=True` shows. [`HybridReranker`] gathers the signals (the model signals in
//! parallel, beside any caller-supplied scorers) and combines them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::rank::normalize::Normalization;
use crate::rank::scorer::{score_checked, Scorer};
use crate::rank::signals::{Candidates, ModelSignals};
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

/// Where a signal that is not a model signal gets its values.
#[derive(Clone)]
pub enum Extra {
    /// Computed per call by a scorer (in the bindings: a Python callable).
    Scored(Arc<dyn Scorer>),
    /// Given by the caller per call (first-stage scores, metadata rules' values).
    Given,
}

/// How one signal counts: its name, normalization and weight.
#[derive(Debug, Clone)]
pub struct SignalWeight {
    pub name: String,
    pub normalization: Normalization,
    pub weight: f64,
}

/// A hybrid re-ranker: model signals, extra signals, and how they combine.
#[derive(Clone)]
pub struct HybridReranker {
    models: ModelSignals,
    extras: Vec<(String, Extra)>,
    /// Every signal, in the order results and explanations list them.
    weights: Vec<SignalWeight>,
    fusion: Fusion,
}

impl HybridReranker {
    /// `weights` names every signal of `models` and `extras` exactly once.
    pub fn new(
        models: ModelSignals,
        extras: Vec<(String, Extra)>,
        weights: Vec<SignalWeight>,
        fusion: Fusion,
    ) -> Result<Self> {
        let mut sources: Vec<&str> = models.names();
        sources.extend(extras.iter().map(|(n, _)| n.as_str()));
        let configured: HashSet<&str> = sources.iter().copied().collect();
        if configured.len() != sources.len() {
            return Err(Error::invalid(format!("signal names repeat: {sources:?}")));
        }
        let weighted: HashSet<&str> = weights.iter().map(|w| w.name.as_str()).collect();
        if weighted != configured || weighted.len() != weights.len() {
            return Err(Error::invalid(format!(
                "weights name {:?}; the configured signals are {sources:?}",
                weights.iter().map(|w| &w.name).collect::<Vec<_>>()
            )));
        }
        if sources.is_empty() {
            return Err(Error::invalid(
                "a hybrid re-ranker needs at least one signal",
            ));
        }
        check_weights(weights.iter().map(|w| (format!("{:?}", w.name), w.weight)))?;
        if let Fusion::ReciprocalRank { k } = fusion {
            check_rrf_k(k)?;
        }
        Ok(Self {
            models,
            extras,
            weights,
            fusion,
        })
    }

    pub fn weights(&self) -> &[SignalWeight] {
        &self.weights
    }

    /// Every signal's raw values for the candidates, in `weights()` order. The model
    /// signals run in parallel beside the extra scorers; `given` holds the values of the
    /// [`Extra::Given`] signals. `on_batch` gets the cross-encoder's progress and may stop
    /// the run.
    pub fn signals(
        &self,
        candidates: &Candidates<'_>,
        given: &HashMap<String, Vec<f64>>,
        on_batch: &mut (dyn FnMut(usize) -> Result<()> + Send),
    ) -> Result<Vec<Signal>> {
        let n = candidates.documents.len();
        let (models, extras) = rayon::join(
            || self.models.compute(candidates, on_batch),
            || self.extra_values(candidates, given),
        );
        let mut raw: HashMap<String, Vec<f64>> = extras?;
        raw.extend(models?.into_iter().map(|(name, v)| (name.to_string(), v)));
        self.weights
            .iter()
            .map(|w| {
                let values = raw.remove(&w.name).unwrap_or_default();
                if values.len() != n {
                    return Err(Error::invalid(format!(
                        "signal '{}' has {} values for {n} documents",
                        w.name,
                        values.len()
                    )));
                }
                Ok(Signal {
                    name: w.name.clone(),
                    values,
                    weight: w.weight,
                    normalization: w.normalization,
                })
            })
            .collect()
    }

    fn extra_values(
        &self,
        c: &Candidates<'_>,
        given: &HashMap<String, Vec<f64>>,
    ) -> Result<HashMap<String, Vec<f64>>> {
        if let Some(unknown) = given.keys().find(|k| {
            !self
                .extras
                .iter()
                .any(|(n, e)| n == *k && matches!(e, Extra::Given))
        }) {
            return Err(Error::invalid(format!(
                "values given for '{unknown}', which is not a given signal"
            )));
        }
        let mut out = HashMap::new();
        for (name, extra) in &self.extras {
            let values = match extra {
                Extra::Scored(scorer) => score_checked(
                    scorer.as_ref(),
                    c.query,
                    c.documents,
                    &format!("signal '{name}'"),
                    &mut |_| Ok(()),
                )?,
                Extra::Given => given.get(name).cloned().ok_or_else(|| {
                    Error::invalid(format!("signal '{name}' needs its values for this call"))
                })?,
            };
            out.insert(name.clone(), values);
        }
        Ok(out)
    }

    /// The candidates' signals and their combination (scores, normalized values,
    /// contributions).
    pub fn rerank(
        &self,
        candidates: &Candidates<'_>,
        given: &HashMap<String, Vec<f64>>,
        on_batch: &mut (dyn FnMut(usize) -> Result<()> + Send),
    ) -> Result<(Vec<Signal>, Combination)> {
        let signals = self.signals(candidates, given, on_batch)?;
        let combination = combine(&signals, self.fusion)?;
        Ok((signals, combination))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::batching::OnBatch;

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

    /// Scores each document by its length.
    struct Length;

    impl Scorer for Length {
        fn score(&self, _: &str, documents: &[&str], _: &mut OnBatch<'_>) -> Result<Vec<f64>> {
            Ok(documents.iter().map(|d| d.len() as f64).collect())
        }
        fn label(&self) -> String {
            "Length".into()
        }
    }

    fn weight(name: &str, weight: f64) -> SignalWeight {
        SignalWeight {
            name: name.into(),
            normalization: Normalization::MinMax,
            weight,
        }
    }

    #[test]
    fn a_hybrid_gathers_scored_and_given_signals_in_weight_order() {
        let models = ModelSignals {
            cross_encoder: None,
            bi_encoder: None,
            bm25: None,
        };
        let hybrid = HybridReranker::new(
            models,
            vec![
                ("length".into(), Extra::Scored(Arc::new(Length))),
                ("first_stage".into(), Extra::Given),
            ],
            vec![weight("first_stage", 1.0), weight("length", 3.0)],
            Fusion::WeightedSum,
        )
        .unwrap();
        let documents = ["a", "abc", "ab"];
        let candidates = Candidates {
            query: "q",
            documents: &documents,
            embeddings: None,
        };
        let given = HashMap::from([("first_stage".to_string(), vec![0.0, -1.0, -2.0])]);
        let (signals, c) = hybrid.rerank(&candidates, &given, &mut |_| Ok(())).unwrap();
        assert_eq!(signals[0].name, "first_stage");
        assert_eq!(signals[1].values, [1.0, 3.0, 2.0]);
        // first_stage normalized 1, 0.5, 0; length 0, 1, 0.5 (x3).
        assert_eq!(c.scores, [1.0, 3.5, 1.5]);
        let missing = hybrid.signals(&candidates, &HashMap::new(), &mut |_| Ok(()));
        assert!(missing
            .err()
            .unwrap()
            .to_string()
            .contains("'first_stage' needs its values"));
        let unweighted = HybridReranker::new(
            ModelSignals {
                cross_encoder: None,
                bi_encoder: None,
                bm25: None,
            },
            vec![("length".into(), Extra::Scored(Arc::new(Length)))],
            vec![weight("other", 1.0)],
            Fusion::WeightedSum,
        );
        assert!(unweighted
            .err()
            .unwrap()
            .to_string()
            .contains("weights name"));
    }
}
