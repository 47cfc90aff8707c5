//! A retrieved document and the top-k selection every retriever shares.

/// One document of a result: its position in the corpus and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub doc: u32,
    pub score: f32,
}

/// The best `k` hits, best first; equal scores by ascending document position, so results
/// do not depend on thread scheduling.
pub fn top_hits(mut hits: Vec<Hit>, k: usize) -> Vec<Hit> {
    let order = |a: &Hit, b: &Hit| b.score.total_cmp(&a.score).then(a.doc.cmp(&b.doc));
    if k == 0 {
        return Vec::new();
    }
    if hits.len() > k {
        hits.select_nth_unstable_by(k - 1, order);
        hits.truncate(k);
    }
    hits.sort_unstable_by(order);
    hits
}

/// Checks optional document ids: one per document, no duplicates.
pub fn check_ids(ids: &[String], documents: usize) -> crate::Result<()> {
    if ids.len() != documents {
        return Err(crate::Error::invalid(format!(
            "got {} ids for {documents} documents",
            ids.len()
        )));
    }
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    if let Some(dup) = ids.iter().find(|id| !seen.insert(id.as_str())) {
        return Err(crate::Error::invalid(format!(
            "duplicate document id {dup:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_first_ties_by_position() {
        let hits = [(3, 1.0), (0, 2.0), (2, 1.0), (1, 1.0), (4, 0.5)]
            .map(|(doc, score)| Hit { doc, score })
            .to_vec();
        let top = top_hits(hits.clone(), 3);
        assert_eq!(top.iter().map(|h| h.doc).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(top_hits(hits, 10).len(), 5);
        assert!(check_ids(&["a".into(), "a".into()], 2).is_err());
        assert!(check_ids(&["a".into()], 2).is_err());
    }
}
