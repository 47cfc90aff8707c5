//! Pairwise re-ranking: from preferences P(a more relevant than b) to an order, either
//! by scoring every ordered pair and aggregating (duoBERT) or by sorting with a
//! comparator (pairwise ranking prompting), counting the comparisons.

use std::str::FromStr;

use crate::{Error, Result};

/// How all-pairs preferences become one score per document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// duoBERT's SUM: `s_i = sum_j P(i > j)`.
    Sum,
    /// Copeland: wins minus losses, where i beats j when `P(i > j) > P(j > i)`.
    Copeland,
}

impl FromStr for Aggregation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sum" => Ok(Self::Sum),
            "copeland" => Ok(Self::Copeland),
            _ => Err(Error::invalid(format!(
                "unknown aggregation {s:?}; expected \"sum\" or \"copeland\""
            ))),
        }
    }
}

/// One score per document from the `n x n` row-major matrix `preferences[i * n + j]` =
/// P(i more relevant than j); the diagonal is ignored. Off-diagonal values must be
/// probabilities.
pub fn aggregate(preferences: &[f64], n: usize, aggregation: Aggregation) -> Result<Vec<f64>> {
    if preferences.len() != n * n {
        return Err(Error::invalid(format!(
            "{} preferences for {n} documents; expected {n} x {n}",
            preferences.len()
        )));
    }
    let at = |i: usize, j: usize| preferences[i * n + j];
    for i in 0..n {
        for j in (0..n).filter(|&j| j != i) {
            let p = at(i, j);
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::invalid(format!(
                    "preference of document {i} over {j} is {p}; expected a probability in [0, 1]"
                )));
            }
        }
    }
    Ok((0..n)
        .map(|i| {
            (0..n)
                .filter(|&j| j != i)
                .map(|j| match aggregation {
                    Aggregation::Sum => at(i, j),
                    Aggregation::Copeland => match at(i, j).partial_cmp(&at(j, i)) {
                        Some(std::cmp::Ordering::Greater) => 1.0,
                        Some(std::cmp::Ordering::Less) => -1.0,
                        _ => 0.0,
                    },
                })
                .sum()
        })
        .collect())
}

/// The positions `0..n` ordered by a comparator `before(a, b)` ("a is more relevant than
/// b"), by a stable top-down merge sort: at most `n ceil(log2 n) - 2^ceil(log2 n) + 1`
/// comparisons. Returns the order and the number of comparisons made. The comparator's
/// error stops the sort and is returned.
pub fn sort_by_preference<E>(
    n: usize,
    before: &mut dyn FnMut(usize, usize) -> std::result::Result<bool, E>,
) -> std::result::Result<(Vec<usize>, usize), E> {
    let mut comparisons = 0;
    let order = merge_sort((0..n).collect(), before, &mut comparisons)?;
    Ok((order, comparisons))
}

fn merge_sort<E>(
    items: Vec<usize>,
    before: &mut dyn FnMut(usize, usize) -> std::result::Result<bool, E>,
    comparisons: &mut usize,
) -> std::result::Result<Vec<usize>, E> {
    if items.len() <= 1 {
        return Ok(items);
    }
    let mut left = items;
    let right = left.split_off(left.len() / 2);
    let left = merge_sort(left, before, comparisons)?;
    let right = merge_sort(right, before, comparisons)?;
    let mut merged = Vec::with_capacity(left.len() + right.len());
    let (mut l, mut r) = (0, 0);
    while l < left.len() && r < right.len() {
        *comparisons += 1;
        // Stability: the right item goes first only when it is strictly preferred.
        if before(right[r], left[l])? {
            merged.push(right[r]);
            r += 1;
        } else {
            merged.push(left[l]);
            l += 1;
        }
    }
    merged.extend_from_slice(&left[l..]);
    merged.extend_from_slice(&right[r..]);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_and_copeland_by_hand() {
        // 0 beats 1 and 2; 1 beats 2.
        let p = [0.0, 0.9, 0.8, 0.1, 0.0, 0.6, 0.2, 0.4, 0.0];
        let sum = aggregate(&p, 3, Aggregation::Sum).unwrap();
        assert!((sum[0] - 1.7).abs() < 1e-12 && (sum[1] - 0.7).abs() < 1e-12);
        assert_eq!(
            aggregate(&p, 3, Aggregation::Copeland).unwrap(),
            [2.0, 0.0, -2.0]
        );
        assert!(aggregate(&p[..8], 3, Aggregation::Sum).is_err());
        assert!(aggregate(&[0.0, 1.5, 0.0, 0.0], 2, Aggregation::Sum).is_err());
        assert!(aggregate(&[0.0, f64::NAN, 0.0, 0.0], 2, Aggregation::Sum).is_err());
    }

    #[test]
    fn sort_recovers_a_total_order_within_the_merge_sort_bound() {
        let relevance: Vec<usize> = (0..37).map(|i| (i * 17) % 37).collect();
        let (order, comparisons) =
            sort_by_preference::<()>(37, &mut |a, b| Ok(relevance[a] > relevance[b])).unwrap();
        let sorted: Vec<usize> = order.iter().map(|&i| relevance[i]).collect();
        assert_eq!(sorted, (0..37).rev().collect::<Vec<_>>());
        // ceil(log2 37) = 6: at most 37 * 6 - 64 + 1.
        assert!(comparisons <= 37 * 6 - 64 + 1, "{comparisons}");
        let (_, none) = sort_by_preference::<()>(1, &mut |_, _| Ok(true)).unwrap();
        assert_eq!(none, 0);
        let failed = sort_by_preference(3, &mut |_, _| Err("no"));
        assert_eq!(failed, Err("no"));
    }
}
