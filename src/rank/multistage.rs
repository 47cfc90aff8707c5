//! Multi-stage cascades: cheap scorers on many candidates, expensive ones on the few that
//! survive each cut.

use std::sync::Arc;
use std::time::Instant;

use crate::rank::scorer::{score_checked, Scorer};
use crate::score::batching::OnBatch;
use crate::{Error, Result};

/// One stage: a scorer and how many of the previous stage's best it re-scores.
#[derive(Clone)]
pub struct Stage {
    pub scorer: Arc<dyn Scorer>,
    pub top_n: usize,
}

/// A cascade of stages. Stage i re-scores the first `top_n` documents of the order the
/// previous stage left (the input order for the first stage); the documents below its
/// cut keep that earlier order beneath the re-scored ones.
#[derive(Clone)]
pub struct MultiStage {
    stages: Vec<Stage>,
}

/// What a cascade did to one query's candidates.
#[derive(Debug, Clone, PartialEq)]
pub struct Cascade {
    /// Every document position, best first.
    pub order: Vec<usize>,
    /// Per document: `(score, stage)` of the last stage that scored it; `None` for none.
    pub scored: Vec<Option<(f64, usize)>>,
    /// Seconds per stage, labelled `"stage i (label, top n)"`.
    pub timings: Vec<(String, f64)>,
}

impl MultiStage {
    pub fn new(stages: Vec<Stage>) -> Result<Self> {
        if stages.is_empty() {
            return Err(Error::invalid(
                "stages must be a non-empty list of (model, top_n) pairs",
            ));
        }
        if let Some(i) = stages.iter().position(|s| s.top_n == 0) {
            return Err(Error::invalid(format!(
                "stages[{i}]: top_n must be a positive integer, got 0"
            )));
        }
        Ok(Self { stages })
    }

    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// Runs the cascade over `documents`.
    pub fn cascade(
        &self,
        query: &str,
        documents: &[&str],
        on_batch: &mut OnBatch<'_>,
    ) -> Result<Cascade> {
        let mut order: Vec<usize> = (0..documents.len()).collect();
        let mut scored = vec![None; documents.len()];
        let mut timings = Vec::with_capacity(self.stages.len());
        for (s, stage) in self.stages.iter().enumerate() {
            let cut = stage.top_n.min(order.len());
            let head: Vec<usize> = order[..cut].to_vec();
            let texts: Vec<&str> = head.iter().map(|&i| documents[i]).collect();
            let start = Instant::now();
            let scores = score_checked(
                stage.scorer.as_ref(),
                query,
                &texts,
                &format!("stage {s}"),
                on_batch,
            )?;
            timings.push((
                format!("stage {s} ({}, top {})", stage.scorer.label(), stage.top_n),
                start.elapsed().as_secs_f64(),
            ));
            for (&i, &v) in head.iter().zip(&scores) {
                scored[i] = Some((v, s));
            }
            let mut ranked: Vec<usize> = (0..cut).collect();
            // Best first; ties keep the previous order.
            ranked.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
            for (slot, j) in order.iter_mut().zip(ranked) {
                *slot = head[j];
            }
        }
        Ok(Cascade {
            order,
            scored,
            timings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores each document by a fixed table, counting the documents it was asked about.
    struct Table(Vec<(&'static str, f64)>, std::sync::Mutex<usize>);

    impl Scorer for Table {
        fn score(&self, _: &str, documents: &[&str], _: &mut OnBatch<'_>) -> Result<Vec<f64>> {
            *self.1.lock().unwrap() += documents.len();
            Ok(documents
                .iter()
                .map(|d| {
                    self.0
                        .iter()
                        .find(|(k, _)| k == d)
                        .map_or(f64::NAN, |e| e.1)
                })
                .collect())
        }
        fn label(&self) -> String {
            "Table".into()
        }
    }

    fn table(entries: Vec<(&'static str, f64)>) -> Arc<Table> {
        Arc::new(Table(entries, Default::default()))
    }

    #[test]
    fn each_stage_reorders_its_head_and_keeps_the_tail() {
        let docs = ["a", "b", "c", "d"];
        let cheap = table(vec![("a", 1.0), ("b", 4.0), ("c", 3.0), ("d", 2.0)]);
        let dear = table(vec![("b", 0.1), ("c", 0.9)]);
        let cascade = MultiStage::new(vec![
            Stage {
                scorer: cheap.clone(),
                top_n: 10,
            },
            Stage {
                scorer: dear.clone(),
                top_n: 2,
            },
        ])
        .unwrap()
        .cascade("q", &docs, &mut |_| Ok(()))
        .unwrap();
        // Cheap order: b c d a; the dear stage swaps b and c.
        assert_eq!(cascade.order, [2, 1, 3, 0]);
        assert_eq!(cascade.scored[2], Some((0.9, 1)));
        assert_eq!(cascade.scored[3], Some((2.0, 0)));
        assert_eq!(*dear.1.lock().unwrap(), 2);
        assert_eq!(cascade.timings[1].0, "stage 1 (Table, top 2)");
    }

    #[test]
    fn bad_scores_and_stages_are_named() {
        let nan = table(vec![("a", 1.0)]);
        let err = MultiStage::new(vec![Stage {
            scorer: nan,
            top_n: 5,
        }])
        .unwrap()
        .cascade("q", &["a", "b"], &mut |_| Ok(()))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("stage 0 returned a non-finite score"),
            "{err}"
        );
        assert!(MultiStage::new(vec![]).is_err());
        let zero = MultiStage::new(vec![Stage {
            scorer: table(vec![]),
            top_n: 0,
        }]);
        assert!(zero.err().unwrap().to_string().contains("stages[0]: top_n"));
    }
}
