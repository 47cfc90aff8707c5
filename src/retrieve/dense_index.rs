//! Exact top-k search over a matrix of embeddings (brute force: one GEMM per block of
//! documents, blocks in parallel, then a per-query selection).
//!
//! [`DenseView`] searches borrowed rows (the Python binding reads a numpy array in place);
//! [`DenseIndex`] owns its rows, grows with `add`, and saves / loads.

use std::path::Path;
use std::str::FromStr;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::retrieve::hit::{check_ids, top_hits, Hit};
use crate::retrieve::index_file;
use crate::score::cpu::gemm::{matmul, Mat, MatMut, B};
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"CRDENSv1";
const WHAT: &str = "dense index";
/// Documents per GEMM block: big enough for an efficient GEMM, small enough that the
/// (queries x block) score tile stays in cache and blocks spread over threads.
const DOC_BLOCK: usize = 2048;
/// Queries per pass, bounding the score tiles' memory.
const QUERY_BLOCK: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DenseMetric {
    /// Cosine similarity: rows and queries are compared after normalization (a zero
    /// vector scores 0 against everything).
    Cosine,
    /// Inner product of the raw vectors.
    Dot,
}

impl FromStr for DenseMetric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cosine" | "cos" => Ok(Self::Cosine),
            "dot" | "ip" | "inner_product" => Ok(Self::Dot),
            _ => Err(Error::invalid(format!(
                "unknown metric {s:?}; expected \"cosine\" or \"dot\""
            ))),
        }
    }
}

impl DenseMetric {
    pub fn name(self) -> &'static str {
        match self {
            Self::Cosine => "cosine",
            Self::Dot => "dot",
        }
    }
}

fn check_finite(values: &[f32], what: &str, dim: usize) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::invalid(format!(
            "{what} row {} holds a non-finite value ({})",
            i / dim.max(1),
            values[i]
        ))),
    }
}

/// 1 / ||row|| per row for cosine (0 for a zero row), all ones for dot. The norm is taken
/// in f64 so that rows of very large or very small values do not overflow or underflow.
pub fn row_scales(vectors: &[f32], dim: usize, metric: DenseMetric) -> Vec<f32> {
    vectors
        .par_chunks(dim.max(1))
        .map(|row| match metric {
            DenseMetric::Dot => 1.0,
            DenseMetric::Cosine => {
                let norm = row
                    .iter()
                    .map(|&v| (v as f64) * (v as f64))
                    .sum::<f64>()
                    .sqrt();
                if norm > 0.0 {
                    ((1.0 / norm) as f32).min(f32::MAX)
                } else {
                    0.0
                }
            }
        })
        .collect()
}

/// Borrowed embeddings, searchable without copying them.
#[derive(Clone, Copy)]
pub struct DenseView<'a> {
    /// (n, dim), row-major.
    pub vectors: &'a [f32],
    pub dim: usize,
    pub metric: DenseMetric,
    /// `row_scales(vectors, dim, metric)`, computed once by the owner.
    pub scales: &'a [f32],
}

impl DenseView<'_> {
    pub fn len(&self) -> usize {
        self.scales.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    /// The `top_k` rows most similar to each query of `queries` ((q, dim), row-major),
    /// best first, ties by row position.
    pub fn search(&self, queries: &[f32], top_k: usize) -> Result<Vec<Vec<Hit>>> {
        if top_k == 0 {
            return Err(Error::invalid("top_k must be a positive integer, got 0"));
        }
        if !queries.len().is_multiple_of(self.dim) {
            return Err(Error::invalid(format!(
                "queries of {} values are not rows of dimension {}",
                queries.len(),
                self.dim
            )));
        }
        check_finite(queries, "query", self.dim)?;
        // Cosine: unit-length queries (a small copy), so the products stay in f32's range.
        let normalized: Vec<f32>;
        let queries = match self.metric {
            DenseMetric::Dot => queries,
            DenseMetric::Cosine => {
                let scales = row_scales(queries, self.dim, self.metric);
                normalized = queries
                    .chunks(self.dim)
                    .zip(&scales)
                    .flat_map(|(row, &s)| row.iter().map(move |v| v * s))
                    .collect();
                &normalized
            }
        };
        let nq = queries.len() / self.dim;
        let mut results = Vec::with_capacity(nq);
        for block in queries.chunks(QUERY_BLOCK * self.dim) {
            results.extend(self.search_block(block, top_k));
        }
        Ok(results)
    }

    fn search_block(&self, queries: &[f32], top_k: usize) -> Vec<Vec<Hit>> {
        let nq = queries.len() / self.dim;
        let q = Mat::new(queries, nq, self.dim);
        // Per document block: each query's best top_k within the block.
        let per_block: Vec<Vec<Vec<Hit>>> = self
            .vectors
            .par_chunks(DOC_BLOCK * self.dim)
            .enumerate()
            .map(|(block, rows)| {
                let first = block * DOC_BLOCK;
                let n = rows.len() / self.dim;
                let mut tile = vec![0f32; nq * n];
                let docs = Mat::new(rows, n, self.dim);
                matmul(
                    MatMut::new(&mut tile, nq, n),
                    q,
                    docs,
                    B::Transposed,
                    1.0,
                    false,
                    1,
                );
                let scales = &self.scales[first..first + n];
                tile.chunks(n)
                    .map(|scores| {
                        let hits = scores
                            .iter()
                            .zip(scales)
                            .enumerate()
                            .map(|(i, (&s, &ds))| Hit {
                                doc: (first + i) as u32,
                                score: s * ds,
                            })
                            .collect();
                        top_hits(hits, top_k)
                    })
                    .collect()
            })
            .collect();
        (0..nq)
            .map(|query| {
                let hits = per_block
                    .iter()
                    .flat_map(|b| b[query].iter().copied())
                    .collect();
                top_hits(hits, top_k)
            })
            .collect()
    }
}

#[derive(Serialize, Deserialize)]
struct Saved {
    dim: u64,
    metric: DenseMetric,
    ids: Vec<String>,
    vectors: Vec<f32>,
}

/// Embeddings owned by the index.
pub struct DenseIndex {
    dim: usize,
    metric: DenseMetric,
    vectors: Vec<f32>,
    scales: Vec<f32>,
    /// One id per row, or empty when rows are known by position.
    ids: Vec<String>,
}

impl DenseIndex {
    /// `vectors`: (n, dim) row-major; `ids`: one per row, or empty.
    pub fn new(
        vectors: Vec<f32>,
        dim: usize,
        metric: DenseMetric,
        ids: Vec<String>,
    ) -> Result<Self> {
        let mut index = Self {
            dim,
            metric,
            vectors: Vec::new(),
            scales: Vec::new(),
            ids: Vec::new(),
        };
        if dim == 0 {
            return Err(Error::invalid(
                "embeddings must have at least one dimension",
            ));
        }
        index.add(vectors, ids)?;
        Ok(index)
    }

    /// Append rows (with ids when the index has ids, none when it has none).
    pub fn add(&mut self, vectors: Vec<f32>, ids: Vec<String>) -> Result<()> {
        if !vectors.len().is_multiple_of(self.dim) {
            return Err(Error::invalid(format!(
                "{} values are not rows of dimension {}",
                vectors.len(),
                self.dim
            )));
        }
        check_finite(&vectors, "embedding", self.dim)?;
        let n = vectors.len() / self.dim;
        if self.len() + n > u32::MAX as usize {
            return Err(Error::invalid("an index holds at most 2^32 - 1 rows"));
        }
        let has_ids = !self.ids.is_empty();
        if !self.is_empty() && !has_ids && !ids.is_empty() {
            return Err(Error::invalid(
                "this index was built without ids: add rows without ids",
            ));
        }
        if has_ids && ids.is_empty() && n > 0 {
            return Err(Error::invalid(
                "this index has ids: give one id per added row",
            ));
        }
        if !ids.is_empty() {
            let mut all = self.ids.clone();
            all.extend(ids);
            check_ids(&all, self.len() + n)?;
            self.ids = all;
        }
        self.scales
            .extend(row_scales(&vectors, self.dim, self.metric));
        self.vectors.extend(vectors);
        Ok(())
    }

    pub fn view(&self) -> DenseView<'_> {
        DenseView {
            vectors: &self.vectors,
            dim: self.dim,
            metric: self.metric,
            scales: &self.scales,
        }
    }

    pub fn search(&self, queries: &[f32], top_k: usize) -> Result<Vec<Vec<Hit>>> {
        self.view().search(queries, top_k)
    }

    pub fn len(&self) -> usize {
        self.scales.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn metric(&self) -> DenseMetric {
        self.metric
    }

    pub fn vectors(&self) -> &[f32] {
        &self.vectors
    }

    pub fn ids(&self) -> Option<&[String]> {
        (!self.ids.is_empty()).then_some(self.ids.as_slice())
    }

    /// The rows, ids and metric, for callers that keep the rows elsewhere.
    pub fn into_parts(self) -> (Vec<f32>, usize, DenseMetric, Vec<String>) {
        (self.vectors, self.dim, self.metric, self.ids)
    }

    /// Write `vectors` (with `dim`, `metric`, `ids`) in the index file format.
    pub fn save_parts(
        path: &Path,
        vectors: &[f32],
        dim: usize,
        metric: DenseMetric,
        ids: &[String],
    ) -> Result<()> {
        let saved = Saved {
            dim: dim as u64,
            metric,
            ids: ids.to_vec(),
            vectors: vectors.to_vec(),
        };
        index_file::write(path, &index_file::encode(MAGIC, &saved, WHAT)?)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        Self::save_parts(path, &self.vectors, self.dim, self.metric, &self.ids)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let saved: Saved = index_file::decode(MAGIC, &index_file::read(path, WHAT)?, path, WHAT)?;
        Self::new(saved.vectors, saved.dim as usize, saved.metric, saved.ids)
            .map_err(|e| Error::bad_file(path, format!("corrupt {WHAT}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    /// Brute force by hand: every score, then a full sort.
    fn naive(
        vectors: &[f32],
        queries: &[f32],
        dim: usize,
        metric: DenseMetric,
        k: usize,
    ) -> Vec<Vec<Hit>> {
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        queries
            .chunks(dim)
            .map(|q| {
                let mut hits: Vec<Hit> = vectors
                    .chunks(dim)
                    .enumerate()
                    .map(|(i, v)| {
                        let dot: f32 = q.iter().zip(v).map(|(a, b)| a * b).sum();
                        let score = match metric {
                            DenseMetric::Dot => dot,
                            DenseMetric::Cosine => dot / (norm(q) * norm(v)),
                        };
                        Hit {
                            doc: i as u32,
                            score,
                        }
                    })
                    .collect();
                hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.doc.cmp(&b.doc)));
                hits.truncate(k);
                hits
            })
            .collect()
    }

    #[test]
    fn equals_brute_force_across_blocks() {
        let (dim, n, nq) = (24, DOC_BLOCK * 2 + 37, QUERY_BLOCK + 3);
        let mut seed = 7;
        let vectors: Vec<f32> = (0..n * dim).map(|_| lcg(&mut seed)).collect();
        let queries: Vec<f32> = (0..nq * dim).map(|_| lcg(&mut seed)).collect();
        for metric in [DenseMetric::Cosine, DenseMetric::Dot] {
            let index = DenseIndex::new(vectors.clone(), dim, metric, Vec::new()).unwrap();
            let got = index.search(&queries, 10).unwrap();
            let want = naive(&vectors, &queries, dim, metric, 10);
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(
                    g.iter().map(|h| h.doc).collect::<Vec<_>>(),
                    w.iter().map(|h| h.doc).collect::<Vec<_>>()
                );
                for (a, b) in g.iter().zip(w) {
                    assert!((a.score - b.score).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn add_ids_save_load_and_bad_input() {
        let mut index = DenseIndex::new(
            vec![1.0, 0.0, 0.0, 1.0],
            2,
            DenseMetric::Cosine,
            vec!["a".into(), "b".into()],
        )
        .unwrap();
        index
            .add(vec![0.0, 0.0, 3.0, 3.0], vec!["zero".into(), "c".into()])
            .unwrap();
        let hits = index.search(&[1.0, 1.0], 10).unwrap();
        assert_eq!(
            hits[0].iter().map(|h| h.doc).collect::<Vec<_>>(),
            [3, 0, 1, 2]
        );
        assert_eq!(hits[0][3].score, 0.0, "a zero vector scores 0");
        assert!(index.add(vec![1.0, 1.0], Vec::new()).is_err());
        assert!(
            index.add(vec![1.0, 1.0], vec!["a".into()]).is_err(),
            "duplicate id"
        );
        assert!(index.add(vec![1.0], vec!["d".into()]).is_err());
        assert!(index.search(&[f32::NAN, 1.0], 1).is_err());
        assert!(index.search(&[1.0, 1.0], 0).is_err());
        assert!(
            DenseIndex::new(vec![f32::INFINITY, 0.0], 2, DenseMetric::Dot, Vec::new()).is_err()
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.dense");
        index.save(&path).unwrap();
        let loaded = DenseIndex::load(&path).unwrap();
        assert_eq!(loaded.ids().unwrap(), index.ids().unwrap());
        assert_eq!(loaded.search(&[1.0, 1.0], 10).unwrap(), hits);
        std::fs::write(&path, b"junk").unwrap();
        assert!(DenseIndex::load(&path).is_err());
        assert!("euclid".parse::<DenseMetric>().is_err());
    }
}
