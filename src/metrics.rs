//! Ranking metrics, computed as trec_eval computes them: nDCG@k, MRR@k, MAP@k, recall@k,
//! precision@k and hit rate@k, per query and averaged.
//!
//! trec_eval's conventions, kept here because they change the numbers:
//! - a run is ordered by score, descending, ties broken by document id, descending;
//! - a document is relevant when its judgment is >= 1; unjudged documents are not;
//! - MAP and recall divide by every relevant document of the query, retrieved or not;
//! - precision@k divides by k even when fewer than k documents were retrieved;
//! - nDCG's gain is the judgment itself (linear; exponential `2^rel - 1` on request),
//!   its discount `log2(rank + 1)`, and its ideal ranking is built from all judgments.
//!
//! Unlike trec_eval, which averages over the queries of the run, the mean is over the
//! queries of the qrels: a query the run misses counts as 0 (ranx does the same).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};

/// `{query id: {document id: relevance}}`.
pub type Qrels = HashMap<String, HashMap<String, i64>>;
/// `{query id: {document id: score}}`.
pub type Run = HashMap<String, HashMap<String, f64>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Ndcg,
    /// nDCG with exponential gain, `2^rel - 1`.
    NdcgExp,
    Mrr,
    Map,
    Recall,
    Precision,
    HitRate,
}

/// A measure with an optional cut-off, parsed from names like `"ndcg@10"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    pub measure: Measure,
    /// `None`: the whole ranking.
    pub k: Option<usize>,
}

const MEASURES: &[(&str, Measure)] = &[
    ("ndcg", Measure::Ndcg),
    ("ndcg_exp", Measure::NdcgExp),
    ("mrr", Measure::Mrr),
    ("map", Measure::Map),
    ("recall", Measure::Recall),
    ("precision", Measure::Precision),
    ("p", Measure::Precision),
    ("hit_rate", Measure::HitRate),
    ("hits", Measure::HitRate),
];

impl FromStr for Metric {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        let (name, k) = match lower.split_once('@') {
            Some((name, k)) => {
                let k = k.parse::<usize>().ok().filter(|&k| k > 0).ok_or_else(|| {
                    Error::invalid(format!(
                        "metric {s:?}: the cut-off after '@' must be a positive integer"
                    ))
                })?;
                (name, Some(k))
            }
            None => (lower.as_str(), None),
        };
        let measure = MEASURES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| *m)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown metric {s:?}; expected one of ndcg, ndcg_exp, mrr, map, recall, \
                     precision, hit_rate, with an optional cut-off such as \"ndcg@10\""
                ))
            })?;
        if k.is_none() && matches!(measure, Measure::Precision | Measure::HitRate) {
            return Err(Error::invalid(format!(
                "metric {s:?} needs a cut-off, e.g. \"{name}@10\""
            )));
        }
        Ok(Self { measure, k })
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.measure {
            Measure::Ndcg => "ndcg",
            Measure::NdcgExp => "ndcg_exp",
            Measure::Mrr => "mrr",
            Measure::Map => "map",
            Measure::Recall => "recall",
            Measure::Precision => "precision",
            Measure::HitRate => "hit_rate",
        };
        match self.k {
            Some(k) => write!(f, "{name}@{k}"),
            None => f.write_str(name),
        }
    }
}

impl Metric {
    /// The metric for one query: `ranked` is the run's documents in rank order.
    pub fn score(&self, judged: &HashMap<String, i64>, ranked: &[&str]) -> f64 {
        let top = &ranked[..self.k.map_or(ranked.len(), |k| k.min(ranked.len()))];
        let rel = |doc: &str| judged.get(doc).copied().unwrap_or(0);
        let relevant = judged.values().filter(|&&r| r >= 1).count();
        let hits = top.iter().filter(|d| rel(d) >= 1).count();
        match self.measure {
            Measure::Ndcg | Measure::NdcgExp => {
                let gain = |r: i64| match self.measure {
                    _ if r <= 0 => 0.0,
                    Measure::NdcgExp => 2f64.powi(r as i32) - 1.0,
                    _ => r as f64,
                };
                let discount = |i: usize| (i as f64 + 2.0).log2();
                let dcg: f64 = top
                    .iter()
                    .enumerate()
                    .map(|(i, d)| gain(rel(d)) / discount(i))
                    .sum();
                let mut ideal: Vec<i64> = judged.values().copied().filter(|&r| r > 0).collect();
                ideal.sort_unstable_by(|a, b| b.cmp(a));
                let cut = self.k.unwrap_or(ideal.len()).min(ideal.len());
                let idcg: f64 = ideal[..cut]
                    .iter()
                    .enumerate()
                    .map(|(i, &r)| gain(r) / discount(i))
                    .sum();
                if idcg > 0.0 {
                    dcg / idcg
                } else {
                    0.0
                }
            }
            Measure::Mrr => top
                .iter()
                .position(|d| rel(d) >= 1)
                .map_or(0.0, |i| 1.0 / (i + 1) as f64),
            Measure::Map => {
                if relevant == 0 {
                    return 0.0;
                }
                let mut found = 0;
                let mut sum = 0.0;
                for (i, d) in top.iter().enumerate() {
                    if rel(d) >= 1 {
                        found += 1;
                        sum += found as f64 / (i + 1) as f64;
                    }
                }
                sum / relevant as f64
            }
            Measure::Recall => {
                if relevant == 0 {
                    0.0
                } else {
                    hits as f64 / relevant as f64
                }
            }
            Measure::Precision => hits as f64 / self.k.unwrap_or(top.len()).max(1) as f64,
            Measure::HitRate => (hits > 0) as u8 as f64,
        }
    }
}

/// Documents of one query's run in trec_eval's order: score descending, then document
/// id descending.
pub fn rank_order(scores: &HashMap<String, f64>) -> Vec<&str> {
    let mut docs: Vec<(&str, f64)> = scores.iter().map(|(d, &s)| (d.as_str(), s)).collect();
    docs.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| b.0.cmp(a.0)));
    docs.into_iter().map(|(d, _)| d).collect()
}

/// Per query value of each metric, for every query of `qrels`, in `metrics` order:
/// `result[m][qid]`. Sorted by qid so that means do not depend on hash order.
pub fn evaluate(
    qrels: &Qrels,
    run: &Run,
    metrics: &[Metric],
) -> Result<Vec<BTreeMap<String, f64>>> {
    if metrics.is_empty() {
        return Err(Error::invalid("no metrics given"));
    }
    if qrels.is_empty() {
        return Err(Error::invalid("qrels hold no queries"));
    }
    for (qid, docs) in run {
        if let Some((doc, score)) = docs.iter().find(|(_, s)| !s.is_finite()) {
            return Err(Error::invalid(format!(
                "run: query {qid:?}, document {doc:?} has score {score}; scores must be finite"
            )));
        }
    }
    let empty = HashMap::new();
    let mut result = vec![BTreeMap::new(); metrics.len()];
    for (qid, judged) in qrels {
        let ranked = rank_order(run.get(qid).unwrap_or(&empty));
        for (metric, values) in metrics.iter().zip(result.iter_mut()) {
            values.insert(qid.clone(), metric.score(judged, &ranked));
        }
    }
    Ok(result)
}

/// The mean of per-query values, summed in qid order.
pub fn mean(values: &BTreeMap<String, f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.values().sum::<f64>() / values.len() as f64
}

/// A TREC run file: `qid Q0 docid rank score tag` per line (whitespace separated).
pub fn read_trec_run(path: &Path) -> Result<Run> {
    let mut run = Run::new();
    read_lines(path, 6, |fields, line| {
        let score: f64 = fields[4]
            .parse()
            .map_err(|_| format!("line {line}: score {:?} is not a number", fields[4]))?;
        let docs = run.entry(fields[0].to_string()).or_default();
        if docs.insert(fields[2].to_string(), score).is_some() {
            return Err(format!(
                "line {line}: document {:?} appears twice for query {:?}",
                fields[2], fields[0]
            ));
        }
        Ok(())
    })?;
    Ok(run)
}

/// A TREC qrels file: `qid iteration docid relevance` per line.
pub fn read_trec_qrels(path: &Path) -> Result<Qrels> {
    let mut qrels = Qrels::new();
    read_lines(path, 4, |fields, line| {
        let rel: i64 = fields[3]
            .parse()
            .map_err(|_| format!("line {line}: relevance {:?} is not an integer", fields[3]))?;
        qrels
            .entry(fields[0].to_string())
            .or_default()
            .insert(fields[2].to_string(), rel);
        Ok(())
    })?;
    Ok(qrels)
}

fn read_lines(
    path: &Path,
    columns: usize,
    mut each: impl FnMut(&[&str], usize) -> std::result::Result<(), String>,
) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::NotFound(format!("{}: no such file", path.display()))
        }
        _ => Error::bad_file(path, e),
    })?;
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        if fields.len() != columns {
            return Err(Error::bad_file(
                path,
                format!(
                    "line {}: expected {columns} columns, found {}",
                    i + 1,
                    fields.len()
                ),
            ));
        }
        each(&fields, i + 1).map_err(|m| Error::bad_file(path, m))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(pairs: &[(&str, i64)]) -> HashMap<String, i64> {
        pairs.iter().map(|(d, r)| (d.to_string(), *r)).collect()
    }

    #[test]
    fn hand_computed_values() {
        let q = judged(&[("a", 2), ("b", 0), ("c", 1), ("z", 1)]);
        let ranked = ["b", "a", "x", "c"];
        let m = |s: &str| s.parse::<Metric>().unwrap().score(&q, &ranked);
        assert_eq!(m("mrr@10"), 0.5);
        assert_eq!(m("mrr@1"), 0.0);
        assert_eq!(m("precision@4"), 0.5);
        assert_eq!(m("p@10"), 0.2);
        assert!((m("recall@10") - 2.0 / 3.0).abs() < 1e-12);
        assert!((m("map@10") - (1.0 / 2.0 + 2.0 / 4.0) / 3.0).abs() < 1e-12);
        assert_eq!(m("hit_rate@1"), 0.0);
        assert_eq!(m("hits@2"), 1.0);
        let dcg = 2.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 2.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!((m("ndcg@10") - dcg / idcg).abs() < 1e-12);
        let dcg_exp = 3.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg_exp = 3.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!((m("ndcg_exp@10") - dcg_exp / idcg_exp).abs() < 1e-12);
    }

    #[test]
    fn ties_break_on_document_id_descending() {
        let scores: HashMap<String, f64> = [("a", 1.0), ("c", 1.0), ("b", 2.0)]
            .iter()
            .map(|(d, s)| (d.to_string(), *s))
            .collect();
        assert_eq!(rank_order(&scores), vec!["b", "c", "a"]);
    }

    #[test]
    fn bad_names_and_scores() {
        for bad in ["ndcg@0", "ndcg@x", "foo@10", "precision", "hit_rate"] {
            assert!(bad.parse::<Metric>().is_err(), "{bad}");
        }
        let qrels: Qrels = [("q".to_string(), judged(&[("a", 1)]))].into();
        let run: Run = [("q".to_string(), [("a".to_string(), f64::NAN)].into())].into();
        let metrics = ["ndcg@10".parse().unwrap()];
        assert!(
            matches!(evaluate(&qrels, &run, &metrics), Err(Error::InvalidArgument(m)) if m.contains("finite"))
        );
        // A query missing from the run counts as 0.
        let values = evaluate(&qrels, &Run::new(), &metrics).unwrap();
        assert_eq!(values[0]["q"], 0.0);
    }
}
