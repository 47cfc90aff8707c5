//! Learning fusion weights from relevance labels by coordinate ascent on a ranking metric
//! (Metzler & Croft 2007, as RankLib's Coordinate Ascent): change one weight at a time by
//! steps of growing size in both directions, keep a change when the mean metric over the
//! training queries improves, and stop when a full round over the weights improves nothing.
//! Weights stay >= 0 and are rescaled to sum to 1 (the ranking only depends on ratios).

use std::collections::HashMap;

use rayon::prelude::*;

use crate::metrics::Metric;
use crate::rank::weights::check_weights;
use crate::{Error, Result};

/// One training query: its candidates, each signal's basis values for them (normalized
/// scores or reciprocal ranks: `features[signal][candidate]`) and the judgments.
#[derive(Debug, Clone)]
pub struct TrainingQuery {
    pub ids: Vec<String>,
    pub features: Vec<Vec<f64>>,
    pub judged: HashMap<String, i64>,
}

#[derive(Debug, Clone, Copy)]
pub struct AscentOptions {
    /// Rounds over all weights at most.
    pub max_rounds: usize,
    /// Smallest step; steps double `num_steps` times.
    pub first_step: f64,
    pub num_steps: usize,
}

impl Default for AscentOptions {
    fn default() -> Self {
        Self {
            max_rounds: 25,
            first_step: 0.01,
            num_steps: 7,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AscentResult {
    pub weights: Vec<f64>,
    /// Mean metric over the training queries with `weights`, and with the initial weights.
    pub score: f64,
    pub initial_score: f64,
    pub rounds: usize,
}

/// Mean `metric` over `queries` when candidates are ranked by `sum_j w_j features[j]`
/// (ties: earlier candidate first).
pub fn mean_metric(queries: &[TrainingQuery], weights: &[f64], metric: &Metric) -> f64 {
    let total: f64 = queries
        .par_iter()
        .map(|q| {
            let n = q.ids.len();
            let scores: Vec<f64> = (0..n)
                .map(|d| q.features.iter().zip(weights).map(|(f, w)| w * f[d]).sum())
                .collect();
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
            let ranked: Vec<&str> = order.iter().map(|&d| q.ids[d].as_str()).collect();
            metric.score(&q.judged, &ranked)
        })
        .sum();
    total / queries.len().max(1) as f64
}

fn normalized(mut weights: Vec<f64>) -> Option<Vec<f64>> {
    let sum: f64 = weights.iter().sum();
    if sum <= 0.0 {
        return None;
    }
    weights.iter_mut().for_each(|w| *w /= sum);
    Some(weights)
}

pub fn coordinate_ascent(
    queries: &[TrainingQuery],
    metric: &Metric,
    initial: &[f64],
    options: AscentOptions,
) -> Result<AscentResult> {
    if queries.is_empty() {
        return Err(Error::invalid("no training queries"));
    }
    let dims = initial.len();
    for (i, q) in queries.iter().enumerate() {
        if q.features.len() != dims || q.features.iter().any(|f| f.len() != q.ids.len()) {
            return Err(Error::invalid(format!(
                "training query {i}: expected {dims} signals with one value per candidate"
            )));
        }
        if q.features.iter().flatten().any(|v| !v.is_finite()) {
            return Err(Error::invalid(format!(
                "training query {i}: a signal value is not finite"
            )));
        }
    }
    check_weights(
        initial
            .iter()
            .enumerate()
            .map(|(i, &w)| (format!("initial weight {i}"), w)),
    )?;
    let mut weights = normalized(initial.to_vec()).expect("checked: some weight > 0");
    let initial_score = mean_metric(queries, &weights, metric);
    let mut best = initial_score;
    let mut rounds = 0;
    while rounds < options.max_rounds {
        rounds += 1;
        let mut improved = false;
        for j in 0..dims {
            let mut best_here: Option<(f64, Vec<f64>)> = None;
            for s in 0..options.num_steps {
                let step = options.first_step * 2f64.powi(s as i32);
                for delta in [step, -step] {
                    let mut candidate = weights.clone();
                    candidate[j] = (candidate[j] + delta).max(0.0);
                    let Some(candidate) = normalized(candidate) else {
                        continue;
                    };
                    let score = mean_metric(queries, &candidate, metric);
                    let to_beat = best_here.as_ref().map_or(best, |(s, _)| *s);
                    if score > to_beat + 1e-12 {
                        best_here = Some((score, candidate));
                    }
                }
            }
            if let Some((score, candidate)) = best_here {
                best = score;
                weights = candidate;
                improved = true;
            }
        }
        if !improved {
            break;
        }
    }
    Ok(AscentResult {
        weights,
        score: best,
        initial_score,
        rounds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signal 0 is noise, signal 1 is the label itself: ascent must move weight to 1.
    #[test]
    fn finds_the_informative_signal() {
        let mut seed = 11u64;
        let mut rand = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            (seed >> 33) as f64 / (1u64 << 31) as f64
        };
        let queries: Vec<TrainingQuery> = (0..30)
            .map(|_| {
                let ids: Vec<String> = (0..20).map(|d| format!("d{d}")).collect();
                let labels: Vec<i64> = (0..20).map(|_| (rand() < 0.2) as i64).collect();
                let noise: Vec<f64> = (0..20).map(|_| rand()).collect();
                let good: Vec<f64> = labels.iter().map(|&l| l as f64 + 0.3 * rand()).collect();
                let judged = ids.iter().cloned().zip(labels).collect();
                TrainingQuery {
                    ids,
                    features: vec![noise, good],
                    judged,
                }
            })
            .collect();
        let metric: Metric = "ndcg@10".parse().unwrap();
        let result =
            coordinate_ascent(&queries, &metric, &[0.9, 0.1], AscentOptions::default()).unwrap();
        assert!(result.score > result.initial_score);
        // The label-like signal alone ranks perfectly; ascent must reach that score.
        let perfect = mean_metric(&queries, &[0.0, 1.0], &metric);
        assert_eq!(result.score, perfect);
        assert!(
            result.weights[1] > result.weights[0],
            "{:?}",
            result.weights
        );
        assert!((result.weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((mean_metric(&queries, &result.weights, &metric) - result.score).abs() < 1e-12);
        assert!(
            coordinate_ascent(&queries, &metric, &[0.0, 0.0], AscentOptions::default()).is_err()
        );
        assert!(coordinate_ascent(&queries, &metric, &[1.0], AscentOptions::default()).is_err());
        assert!(coordinate_ascent(&[], &metric, &[1.0], AscentOptions::default()).is_err());
    }
}
