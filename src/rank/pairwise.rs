//! Pairwise re-ranking: from preferences P(a more relevant than b) to an order, either
//! by scoring every ordered pair and aggregating (duoBERT) or by sorting with a
//! comparator (pairwise ranking prompting), counting the comparisons.
//! [`PairwiseReranker`] does either with a [`Comparator`]: a duo cross-encoder, or (in the
//! bindings) a Python callable such as an LLM judge.

use std::str::FromStr;
use std::sync::Arc;

use crate::score::batching::OnBatch;
use crate::score::cross_encoder::{CrossEncoder, PredictOptions};
use crate::{Error, Result};

/// Gives P(a is more relevant to the query than b) for document pairs.
pub trait Comparator: Send + Sync {
    /// One probability per `(a, b)` in `pairs`, in order.
    fn preferences(
        &self,
        query: &str,
        pairs: &[(&str, &str)],
        on_batch: &mut OnBatch<'_>,
    ) -> Result<Vec<f64>>;

    /// A short name for error messages.
    fn label(&self) -> String;
}

/// A duo cross-encoder (`CrossEncoder::compare`) as a comparator.
pub struct CrossEncoderComparator {
    pub model: Arc<CrossEncoder>,
    pub options: PredictOptions,
}

impl Comparator for CrossEncoderComparator {
    fn preferences(
        &self,
        query: &str,
        pairs: &[(&str, &str)],
        on_batch: &mut OnBatch<'_>,
    ) -> Result<Vec<f64>> {
        self.model.compare(query, pairs, &self.options, on_batch)
    }

    fn label(&self) -> String {
        "CrossEncoder".into()
    }
}

/// How preferences become an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// duoBERT: both orders of every pair, n (n - 1) comparisons, aggregated per document.
    AllPairs(Aggregation),
    /// Pairwise ranking prompting: a merge sort, O(n log n) decisions; with `both_orders`
    /// each decision averages P(a > b) and 1 - P(b > a) to cancel position bias.
    Sort { both_orders: bool },
}

impl Method {
    /// From the Python names: `method` "allpairs" (with `aggregation`) or "sort".
    pub fn from_names(method: &str, aggregation: &str, both_orders: bool) -> Result<Self> {
        let aggregation: Aggregation = aggregation.parse()?;
        match method {
            "allpairs" => Ok(Self::AllPairs(aggregation)),
            "sort" => Ok(Self::Sort { both_orders }),
            _ => Err(Error::invalid(format!(
                "unknown method {method:?}; expected \"allpairs\" or \"sort\""
            ))),
        }
    }
}

/// Re-ranks by comparing documents two at a time.
#[derive(Clone)]
pub struct PairwiseReranker {
    pub comparator: Arc<dyn Comparator>,
    pub method: Method,
}

impl PairwiseReranker {
    /// One score per document (all pairs: the aggregation; sort: `n - position`) and the
    /// number of comparator evaluations.
    pub fn scores(
        &self,
        query: &str,
        documents: &[&str],
        on_batch: &mut OnBatch<'_>,
    ) -> Result<(Vec<f64>, usize)> {
        let n = documents.len();
        match self.method {
            Method::AllPairs(aggregation) => {
                let pairs: Vec<(usize, usize)> = (0..n)
                    .flat_map(|a| (0..n).filter(move |&b| b != a).map(move |b| (a, b)))
                    .collect();
                let mut matrix = vec![0.0; n * n];
                let ps = self.preferences(query, documents, &pairs, on_batch)?;
                for (&(a, b), p) in pairs.iter().zip(ps) {
                    matrix[a * n + b] = p;
                }
                Ok((aggregate(&matrix, n, aggregation)?, pairs.len()))
            }
            Method::Sort { both_orders } => {
                let mut calls = 0;
                let (order, _) = sort_by_preference::<Error>(n, &mut |a, b| {
                    if both_orders {
                        calls += 2;
                        let p = self.preferences(query, documents, &[(a, b), (b, a)], on_batch)?;
                        Ok((p[0] + 1.0 - p[1]) / 2.0 > 0.5)
                    } else {
                        calls += 1;
                        Ok(self.preferences(query, documents, &[(a, b)], on_batch)?[0] > 0.5)
                    }
                })?;
                let mut scores = vec![0.0; n];
                for (position, &i) in order.iter().enumerate() {
                    scores[i] = (n - position) as f64;
                }
                Ok((scores, calls))
            }
        }
    }

    /// The comparator's checked P(documents[a] > documents[b]) for each `(a, b)`.
    fn preferences(
        &self,
        query: &str,
        documents: &[&str],
        pairs: &[(usize, usize)],
        on_batch: &mut OnBatch<'_>,
    ) -> Result<Vec<f64>> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let texts: Vec<(&str, &str)> = pairs
            .iter()
            .map(|&(a, b)| (documents[a], documents[b]))
            .collect();
        let ps = self.comparator.preferences(query, &texts, on_batch)?;
        let label = self.comparator.label();
        if ps.len() != pairs.len() {
            return Err(Error::invalid(format!(
                "comparator {label} returned {} probabilities for {} pairs",
                ps.len(),
                pairs.len()
            )));
        }
        for (&(a, b), &p) in pairs.iter().zip(&ps) {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::invalid(format!(
                    "comparator {label} returned {p} for documents {a} and {b}; expected a \
                     probability in [0, 1]"
                )));
            }
        }
        Ok(ps)
    }
}

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

    /// P(a > b) from the documents' lengths, or a fixed (bad) answer.
    struct ByLength(Option<f64>);

    impl Comparator for ByLength {
        fn preferences(
            &self,
            _: &str,
            pairs: &[(&str, &str)],
            _: &mut OnBatch<'_>,
        ) -> Result<Vec<f64>> {
            Ok(pairs
                .iter()
                .map(|(a, b)| self.0.unwrap_or(if a.len() > b.len() { 0.9 } else { 0.1 }))
                .collect())
        }
        fn label(&self) -> String {
            "by_length".into()
        }
    }

    #[test]
    fn the_reranker_orders_by_its_comparator_and_checks_it() {
        let documents = ["ab", "abcd", "a", "abc"];
        for method in [
            Method::AllPairs(Aggregation::Sum),
            Method::AllPairs(Aggregation::Copeland),
            Method::Sort { both_orders: true },
            Method::Sort { both_orders: false },
        ] {
            let reranker = PairwiseReranker {
                comparator: Arc::new(ByLength(None)),
                method,
            };
            let (scores, calls) = reranker.scores("q", &documents, &mut |_| Ok(())).unwrap();
            let mut order: Vec<usize> = (0..4).collect();
            order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
            assert_eq!(order, [1, 3, 0, 2], "{method:?}");
            if let Method::AllPairs(_) = method {
                assert_eq!(calls, 12);
            }
        }
        let bad = PairwiseReranker {
            comparator: Arc::new(ByLength(Some(1.5))),
            method: Method::Sort { both_orders: false },
        };
        let err = bad.scores("q", &documents, &mut |_| Ok(())).unwrap_err();
        assert!(
            err.to_string()
                .contains("comparator by_length returned 1.5"),
            "{err}"
        );
        assert!(Method::from_names("best", "sum", true).is_err());
        assert!(Method::from_names("sort", "max", true).is_err());
    }
}
