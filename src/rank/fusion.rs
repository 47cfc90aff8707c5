//! Fusing several ranked lists of the same documents into one: reciprocal rank fusion
//! (Cormack et al. 2009) and a weighted sum of min-max normalized scores.
//!
//! Inputs are lists best first; a document missing from a list contributes nothing to it.
//! Outputs are best first, equal fused scores by ascending key, so results are deterministic.

use std::collections::HashMap;
use std::hash::Hash;

use crate::rank::normalize::Normalization;
use crate::rank::weights::{check_rrf_k, check_weights};
use crate::{Error, Result};

/// One weight per list, checked (`weights::check_weights`). `None` = all 1.
fn list_weights(weights: Option<&[f64]>, lists: usize) -> Result<Vec<f64>> {
    let Some(weights) = weights else {
        return Ok(vec![1.0; lists]);
    };
    if weights.len() != lists {
        return Err(Error::invalid(format!(
            "got {} weights for {lists} runs",
            weights.len()
        )));
    }
    check_weights(
        (0..)
            .map(|i| format!("run {i}"))
            .zip(weights.iter().copied()),
    )?;
    Ok(weights.to_vec())
}

fn check_scores<K: std::fmt::Debug>(lists: &[Vec<(K, f64)>]) -> Result<()> {
    for list in lists {
        if let Some((key, score)) = list.iter().find(|(_, s)| !s.is_finite()) {
            return Err(Error::invalid(format!(
                "document {key:?} has score {score}; scores must be finite"
            )));
        }
    }
    Ok(())
}

fn sorted<K: Ord>(fused: HashMap<K, f64>) -> Vec<(K, f64)> {
    let mut out: Vec<(K, f64)> = fused.into_iter().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// score(d) = sum over lists i of weight_i / (k + rank_i(d)), ranks from 1.
pub fn reciprocal_rank<K: Clone + Eq + Hash + Ord + std::fmt::Debug>(
    lists: &[Vec<(K, f64)>],
    k: f64,
    weights: Option<&[f64]>,
) -> Result<Vec<(K, f64)>> {
    check_rrf_k(k)?;
    let weights = list_weights(weights, lists.len())?;
    check_scores(lists)?;
    let mut fused: HashMap<K, f64> = HashMap::new();
    for (list, w) in lists.iter().zip(&weights) {
        for (rank, (key, _)) in list.iter().enumerate() {
            *fused.entry(key.clone()).or_default() += w / (k + rank as f64 + 1.0);
        }
    }
    Ok(sorted(fused))
}

/// score(d) = sum over lists i of weight_i * (s_i(d) - min_i) / (max_i - min_i). A list
/// whose scores are all equal normalizes to 1 for each of its documents.
pub fn weighted_sum<K: Clone + Eq + Hash + Ord + std::fmt::Debug>(
    lists: &[Vec<(K, f64)>],
    weights: Option<&[f64]>,
) -> Result<Vec<(K, f64)>> {
    let weights = list_weights(weights, lists.len())?;
    check_scores(lists)?;
    let mut fused: HashMap<K, f64> = HashMap::new();
    for (list, w) in lists.iter().zip(&weights) {
        let scores: Vec<f64> = list.iter().map(|(_, s)| *s).collect();
        let normalized = Normalization::MinMax.apply(&scores)?;
        for ((key, _), normalized) in list.iter().zip(normalized) {
            *fused.entry(key.clone()).or_default() += w * normalized;
        }
    }
    Ok(sorted(fused))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[(&'static str, f64)]) -> Vec<(&'static str, f64)> {
        items.to_vec()
    }

    #[test]
    fn rrf_by_hand() {
        let a = list(&[("x", 9.0), ("y", 5.0)]);
        let b = list(&[("y", 0.9), ("z", 0.1)]);
        let fused = reciprocal_rank(&[a, b], 60.0, None).unwrap();
        assert_eq!(fused[0].0, "y");
        assert!((fused[0].1 - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-12);
        // x and z both have 1/61 (rank 1) vs 1/62: x is rank 1 in a, z rank 2 in b.
        assert_eq!(fused[1], ("x", 1.0 / 61.0));
        assert_eq!(fused[2], ("z", 1.0 / 62.0));
    }

    #[test]
    fn weighted_sum_by_hand() {
        let a = list(&[("x", 10.0), ("y", 5.0), ("w", 0.0)]);
        let b = list(&[("y", 0.8), ("z", 0.2)]);
        let fused = weighted_sum(&[a, b], Some(&[1.0, 2.0])).unwrap();
        let get = |k| fused.iter().find(|(key, _)| *key == k).unwrap().1;
        assert!((get("y") - (0.5 + 2.0)).abs() < 1e-12);
        assert_eq!(get("x"), 1.0);
        assert_eq!(get("z"), 0.0);
        assert_eq!(fused[0].0, "y");
    }

    #[test]
    fn bad_weights_and_scores() {
        let a = list(&[("x", 1.0)]);
        for bad in [vec![-1.0], vec![f64::NAN], vec![0.0], vec![1.0, 1.0]] {
            assert!(weighted_sum(std::slice::from_ref(&a), Some(&bad)).is_err());
            assert!(reciprocal_rank(std::slice::from_ref(&a), 60.0, Some(&bad)).is_err());
        }
        assert!(weighted_sum(&[list(&[("x", f64::NAN)])], None).is_err());
        assert!(reciprocal_rank(&[a], -1.0, None).is_err());
    }
}
