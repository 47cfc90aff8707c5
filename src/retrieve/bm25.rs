//! Okapi BM25 with Lucene's idf, over an in-memory inverted index.
//!
//! score(q, d) = sum over query terms t (repeats count, as in Lucene and bm25s) of
//!   idf(t) * tf / (tf + k1 * (1 - b + b * |d| / avgdl)),  idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))
//! This is Lucene's BM25Similarity (and bm25s' `method="lucene"`); the constant (k1 + 1)
//! factor of the textbook formula is left out, as Lucene does, which does not change the order.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::retrieve::analyzer::{Analyzer, AnalyzerConfig};
use crate::retrieve::hit::{check_ids, top_hits, Hit};
use crate::retrieve::index_file;
use crate::{Error, Result};

/// First bytes of a saved index; the digit is the format version.
const MAGIC: &[u8; 8] = b"CRBM25v1";
const WHAT: &str = "BM25 index";

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bm25Params {
    pub k1: f32,
    pub b: f32,
}

impl Default for Bm25Params {
    fn default() -> Self {
        // Pyserini's defaults for BEIR-style collections.
        Self { k1: 0.9, b: 0.4 }
    }
}

impl Bm25Params {
    fn check(&self) -> Result<()> {
        if !(self.k1.is_finite() && self.k1 >= 0.0) {
            return Err(Error::invalid(format!(
                "k1 must be a finite number >= 0, got {}",
                self.k1
            )));
        }
        if !(0.0..=1.0).contains(&self.b) {
            return Err(Error::invalid(format!(
                "b must be in [0, 1], got {}",
                self.b
            )));
        }
        Ok(())
    }
}

/// The saved part of an index (the analyzer is rebuilt from its config).
#[derive(Serialize, Deserialize)]
struct Index {
    params: Bm25Params,
    analyzer: AnalyzerConfig,
    terms: HashMap<String, u32>,
    /// Postings of term t: `docs[offsets[t]..offsets[t + 1]]` with `tfs` alongside (CSR).
    offsets: Vec<u64>,
    docs: Vec<u32>,
    tfs: Vec<u32>,
    doc_lengths: Vec<u32>,
    /// Document ids, one per document, or empty when documents are known by position.
    ids: Vec<String>,
}

#[derive(Debug)]
pub struct Bm25 {
    index: Index,
    analyzer: Analyzer,
    avgdl: f32,
    /// k1 * (1 - b + b * |d| / avgdl) per document, so a posting costs one division.
    length_norms: Vec<f32>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("documents", &self.doc_lengths.len())
            .field("terms", &self.terms.len())
            .finish()
    }
}

impl Bm25 {
    /// Index `corpus` (documents are tokenized in parallel).
    pub fn new<S: AsRef<str> + Sync>(
        corpus: &[S],
        params: Bm25Params,
        analyzer: AnalyzerConfig,
    ) -> Result<Self> {
        Self::new_until(corpus, params, analyzer, &|| false)
    }

    /// [`new`](Self::new) that gives up with [`Error::Interrupted`] once `stop()` says so
    /// (asked for every document: a large corpus takes a while to tokenize).
    pub fn new_until<S: AsRef<str> + Sync>(
        corpus: &[S],
        params: Bm25Params,
        analyzer: AnalyzerConfig,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Self> {
        params.check()?;
        if corpus.is_empty() {
            return Err(Error::invalid(
                "the corpus is empty: BM25 needs at least one document",
            ));
        }
        if corpus.len() > u32::MAX as usize {
            return Err(Error::invalid("BM25 indexes at most 2^32 - 1 documents"));
        }
        let analyzer = Analyzer::new(analyzer)?;
        // Each document as (term, tf) pairs; counting per document keeps the parallel part big.
        let counted: Vec<Vec<(String, u32)>> = corpus
            .par_iter()
            .map(|doc| {
                if stop() {
                    return Err(Error::Interrupted);
                }
                let mut counts: HashMap<String, u32> = HashMap::new();
                for term in analyzer.terms(doc.as_ref()) {
                    *counts.entry(term).or_default() += 1;
                }
                Ok(counts.into_iter().collect())
            })
            .collect::<Result<_>>()?;

        let mut terms: HashMap<String, u32> = HashMap::new();
        let mut postings: Vec<Vec<(u32, u32)>> = Vec::new();
        let mut doc_lengths = Vec::with_capacity(corpus.len());
        for (doc, counts) in counted.into_iter().enumerate() {
            doc_lengths.push(counts.iter().map(|(_, tf)| tf).sum());
            for (term, tf) in counts {
                let next = terms.len() as u32;
                let id = *terms.entry(term).or_insert(next);
                if id as usize == postings.len() {
                    postings.push(Vec::new());
                }
                postings[id as usize].push((doc as u32, tf));
            }
        }
        let mut offsets = Vec::with_capacity(postings.len() + 1);
        offsets.push(0u64);
        let total: usize = postings.iter().map(Vec::len).sum();
        let (mut docs, mut tfs) = (Vec::with_capacity(total), Vec::with_capacity(total));
        for list in postings {
            for (doc, tf) in list {
                docs.push(doc);
                tfs.push(tf);
            }
            offsets.push(docs.len() as u64);
        }
        let index = Index {
            params,
            analyzer: analyzer.config().clone(),
            terms,
            offsets,
            docs,
            tfs,
            doc_lengths,
            ids: Vec::new(),
        };
        Ok(Self::from_index(index, analyzer))
    }

    fn from_index(index: Index, analyzer: Analyzer) -> Self {
        let n = index.doc_lengths.len();
        let total: u64 = index.doc_lengths.iter().map(|&l| l as u64).sum();
        // A corpus of empty documents has no postings; any positive avgdl keeps norms finite.
        let avgdl = if total == 0 {
            1.0
        } else {
            (total as f64 / n as f64) as f32
        };
        let Bm25Params { k1, b } = index.params;
        let length_norms = index
            .doc_lengths
            .iter()
            .map(|&len| k1 * (1.0 - b + b * len as f32 / avgdl))
            .collect();
        Self {
            index,
            analyzer,
            avgdl,
            length_norms,
        }
    }

    /// Name the documents (one id per document, unique); saved with the index.
    pub fn with_ids(mut self, ids: Vec<String>) -> Result<Self> {
        check_ids(&ids, self.num_documents())?;
        self.index.ids = ids;
        Ok(self)
    }

    /// The document ids given to `with_ids`, or `None`.
    pub fn ids(&self) -> Option<&[String]> {
        (!self.index.ids.is_empty()).then_some(self.index.ids.as_slice())
    }

    pub fn params(&self) -> Bm25Params {
        self.index.params
    }

    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    pub fn num_documents(&self) -> usize {
        self.index.doc_lengths.len()
    }

    pub fn vocabulary_size(&self) -> usize {
        self.index.terms.len()
    }

    pub fn average_document_length(&self) -> f32 {
        self.avgdl
    }

    /// Lucene's idf for a term with document frequency `df`.
    fn idf(&self, df: usize) -> f32 {
        let n = self.num_documents() as f64;
        let df = df as f64;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln() as f32
    }

    fn postings(&self, term: u32) -> (&[u32], &[u32]) {
        let t = term as usize;
        let (start, end) = (
            self.index.offsets[t] as usize,
            self.index.offsets[t + 1] as usize,
        );
        (&self.index.docs[start..end], &self.index.tfs[start..end])
    }

    /// The `top_k` best documents for `query`, best first (ties: lower corpus position
    /// first). Only documents that share a term with the query are returned, so an empty
    /// query or one with no known term gives an empty result.
    pub fn search(&self, query: &str, top_k: usize) -> Result<Vec<Hit>> {
        check_top_k(top_k)?;
        let mut scores = vec![0f32; self.num_documents()];
        let mut seen = vec![false; self.num_documents()];
        let mut touched: Vec<u32> = Vec::new();
        for term in self.analyzer.terms(query) {
            let Some(&id) = self.index.terms.get(&term) else {
                continue;
            };
            let (docs, tfs) = self.postings(id);
            let idf = self.idf(docs.len());
            for (&doc, &tf) in docs.iter().zip(tfs) {
                if !std::mem::replace(&mut seen[doc as usize], true) {
                    touched.push(doc);
                }
                let tf = tf as f32;
                scores[doc as usize] += idf * tf / (tf + self.length_norms[doc as usize]);
            }
        }
        let hits = touched
            .into_iter()
            .map(|doc| Hit {
                doc,
                score: scores[doc as usize],
            })
            .collect();
        Ok(top_hits(hits, top_k))
    }

    /// `search` for each query, in parallel.
    pub fn search_batch<S: AsRef<str> + Sync>(
        &self,
        queries: &[S],
        top_k: usize,
    ) -> Result<Vec<Vec<Hit>>> {
        check_top_k(top_k)?;
        queries
            .par_iter()
            .map(|q| self.search(q.as_ref(), top_k))
            .collect()
    }

    /// BM25 scores of `documents` (any texts, not necessarily in the corpus) for `query`,
    /// using the corpus' statistics: idf from the corpus document frequencies (a term the
    /// corpus never saw gets df = 0, the largest idf) and the corpus' average length.
    pub fn score<S: AsRef<str> + Sync>(&self, query: &str, documents: &[S]) -> Vec<f32> {
        let query_terms: Vec<(String, f32)> = self
            .analyzer
            .terms(query)
            .into_iter()
            .map(|term| {
                let df = self
                    .index
                    .terms
                    .get(&term)
                    .map_or(0, |&id| self.postings(id).0.len());
                let idf = self.idf(df);
                (term, idf)
            })
            .collect();
        let Bm25Params { k1, b } = self.index.params;
        documents
            .par_iter()
            .map(|doc| {
                let terms = self.analyzer.terms(doc.as_ref());
                let norm = k1 * (1.0 - b + b * terms.len() as f32 / self.avgdl);
                let mut counts: HashMap<&str, u32> = HashMap::new();
                for term in &terms {
                    *counts.entry(term.as_str()).or_default() += 1;
                }
                query_terms
                    .iter()
                    .map(|(term, idf)| match counts.get(term.as_str()) {
                        Some(&tf) => idf * tf as f32 / (tf as f32 + norm),
                        None => 0.0,
                    })
                    .sum()
            })
            .collect()
    }

    /// The index as bytes (the `save` file format).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        index_file::encode(MAGIC, &self.index, WHAT)
    }

    /// An index from `to_bytes` output; `origin` names the source in errors.
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Self> {
        let index: Index = index_file::decode(MAGIC, bytes, origin, WHAT)?;
        let consistent = index.offsets.len() == index.terms.len() + 1
            && index.docs.len() == index.tfs.len()
            && index.offsets.last().copied() == Some(index.docs.len() as u64)
            && index.offsets.windows(2).all(|w| w[0] <= w[1])
            && index
                .docs
                .iter()
                .all(|&d| (d as usize) < index.doc_lengths.len())
            && index
                .terms
                .values()
                .all(|&t| (t as usize) < index.terms.len())
            && !index.doc_lengths.is_empty()
            && (index.ids.is_empty() || index.ids.len() == index.doc_lengths.len());
        if !consistent {
            return Err(Error::bad_file(
                origin,
                "corrupt BM25 index (inconsistent postings)",
            ));
        }
        index.params.check()?;
        let analyzer = Analyzer::new(index.analyzer.clone())?;
        Ok(Self::from_index(index, analyzer))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        index_file::write(path, &self.to_bytes()?)
    }

    pub fn load(path: &Path) -> Result<Self> {
        Self::from_bytes(&index_file::read(path, WHAT)?, path)
    }
}

fn check_top_k(top_k: usize) -> Result<()> {
    if top_k == 0 {
        return Err(Error::invalid("top_k must be a positive integer, got 0"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_stops_when_asked() {
        let params = Bm25Params { k1: 0.9, b: 0.4 };
        let stopped = Bm25::new_until(&corpus(), params, AnalyzerConfig::default(), &|| true);
        assert!(matches!(stopped, Err(Error::Interrupted)));
        let built = Bm25::new_until(&corpus(), params, AnalyzerConfig::default(), &|| false);
        assert!(built.is_ok());
    }

    fn corpus() -> Vec<&'static str> {
        vec![
            "the cat sat on the mat",
            "the dog sat",
            "cats and dogs and cats",
            "",
            "a bird",
        ]
    }

    /// The formula written out for one document, independent of the index.
    fn by_hand(query: &[&str], doc: &[&str], dfs: &[usize], n: f32, avgdl: f32) -> f32 {
        let (k1, b) = (0.9f32, 0.4f32);
        query
            .iter()
            .zip(dfs)
            .map(|(t, &df)| {
                let tf = doc.iter().filter(|w| *w == t).count() as f32;
                let idf = (1.0 + (n - df as f32 + 0.5) / (df as f32 + 0.5)).ln();
                idf * tf / (tf + k1 * (1.0 - b + b * doc.len() as f32 / avgdl))
            })
            .sum()
    }

    #[test]
    fn scores_follow_the_formula() {
        let bm25 = Bm25::new(&corpus(), Bm25Params::default(), AnalyzerConfig::default()).unwrap();
        let avgdl = ((6 + 3 + 5) + 2) as f32 / 5.0;
        assert_eq!(bm25.average_document_length(), avgdl);
        let hits = bm25.search("sat cat", 10).unwrap();
        assert_eq!(hits.iter().map(|h| h.doc).collect::<Vec<_>>(), [0, 1]);
        let want = by_hand(
            &["sat", "cat"],
            &["the", "cat", "sat", "on", "the", "mat"],
            &[2, 1],
            5.0,
            avgdl,
        );
        assert!((hits[0].score - want).abs() < 1e-6);
        // Repeated query terms count twice, as in Lucene and bm25s.
        let twice = bm25.search("sat sat", 1).unwrap()[0].score;
        assert!((twice - 2.0 * bm25.search("sat", 1).unwrap()[0].score).abs() < 1e-6);
        // score() on the corpus' own texts equals search().
        let scored = bm25.score("sat cat", &corpus());
        assert!((scored[0] - hits[0].score).abs() < 1e-6);
        assert!((scored[1] - hits[1].score).abs() < 1e-6);
        assert_eq!(scored[2..], [0.0, 0.0, 0.0]);
    }

    #[test]
    fn empty_and_unknown_queries_find_nothing() {
        let bm25 = Bm25::new(&corpus(), Bm25Params::default(), AnalyzerConfig::default()).unwrap();
        assert!(bm25.search("", 5).unwrap().is_empty());
        assert!(bm25.search("zebra !!", 5).unwrap().is_empty());
        assert!(bm25.search("cat", 0).is_err());
        assert!(Bm25::new::<&str>(&[], Bm25Params::default(), AnalyzerConfig::default()).is_err());
        let bad = Bm25Params {
            k1: f32::NAN,
            b: 0.4,
        };
        assert!(Bm25::new(&corpus(), bad, AnalyzerConfig::default()).is_err());
    }

    #[test]
    fn ties_keep_corpus_order_and_top_k_cuts() {
        let docs = ["x y", "x y", "x y", "y"];
        let bm25 = Bm25::new(&docs, Bm25Params::default(), AnalyzerConfig::default()).unwrap();
        let hits = bm25.search("x", 2).unwrap();
        assert_eq!(hits.iter().map(|h| h.doc).collect::<Vec<_>>(), [0, 1]);
        let batch = bm25.search_batch(&["x", "y", "nothing"], 3).unwrap();
        assert_eq!(
            batch[0],
            hits.iter()
                .copied()
                .chain(bm25.search("x", 3).unwrap().into_iter().skip(2))
                .collect::<Vec<_>>()
        );
        assert_eq!(batch[1].len(), 3);
        assert!(batch[2].is_empty());
    }

    #[test]
    fn save_and_load_round_trip() {
        let config = AnalyzerConfig {
            stopwords: AnalyzerConfig::stopword_list("english").unwrap(),
            stemmer: Some("english".into()),
        };
        let ids = (0..5).map(|i| format!("doc{i}")).collect();
        let bm25 = Bm25::new(&corpus(), Bm25Params { k1: 1.2, b: 0.75 }, config)
            .unwrap()
            .with_ids(ids)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.bm25");
        bm25.save(&path).unwrap();
        let loaded = Bm25::load(&path).unwrap();
        assert_eq!(loaded.params(), bm25.params());
        assert_eq!(loaded.ids().unwrap()[4], "doc4");
        assert_eq!(
            loaded.search("cats", 5).unwrap(),
            bm25.search("cats", 5).unwrap()
        );
        assert_eq!(
            bm25.search("cat", 5).unwrap().len(),
            2,
            "stemming maps cats to cat"
        );

        std::fs::write(&path, b"not an index").unwrap();
        assert!(Bm25::load(&path)
            .unwrap_err()
            .to_string()
            .contains("bad header"));
        let mut truncated = MAGIC.to_vec();
        truncated.extend_from_slice(&[1, 2, 3]);
        std::fs::write(&path, truncated).unwrap();
        assert!(Bm25::load(&path).is_err());
        assert!(matches!(
            Bm25::load(&dir.path().join("missing")),
            Err(Error::NotFound(_))
        ));
    }
}
