//! How closely `precision="int8"` tracks float32: per-query Spearman rank correlation of
//! the two precisions' scores on a re-ranking workload, and the largest logit gap.
//!
//!     cargo run --release --example int8_accuracy -- MODEL_DIR [--queries N] [--f32-cache FILE]
//!
//! Workload: the first N (default 10) Cranfield queries (`$CRANFIELD`, default
//! the repository's data/cranfield: corpus.jsonl and queries.jsonl, JSON lines with `_id`,
//! `title`, `text`), BM25 top-100 each (k1 0.9, b 0.4, document = title + " " + text),
//! scored at max_length 512 as raw logits. `--f32-cache FILE` keeps the float32 scores
//! between runs (recomputed when the file is missing or holds another count), for
//! trying int8 variants quickly. Accuracy only: it times nothing.

use std::path::PathBuf;

use crossrank::{
    Activation, AnalyzerConfig, Bm25, Bm25Params, CrossEncoder, CrossEncoderOptions, Precision,
};

const TOP_K: usize = 100;
const MAX_LENGTH: usize = 512;

fn read_jsonl(path: &PathBuf) -> Result<Vec<serde_json::Value>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?)
}

fn field<'a>(v: &'a serde_json::Value, name: &str) -> &'a str {
    v.get(name).and_then(|s| s.as_str()).unwrap_or("")
}

/// Ranks 1..=n, ties sharing their average rank.
fn ranks(values: &[f32]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0f64; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let average = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = average;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's rho: Pearson correlation of the (tie-averaged) ranks.
fn spearman(a: &[f32], b: &[f32]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        cov += (x - ma) * (y - mb);
        va += (x - ma) * (x - ma);
        vb += (y - mb) * (y - mb);
    }
    if va == 0.0 || vb == 0.0 {
        return f64::NAN;
    }
    cov / (va * vb).sqrt()
}

fn scores(
    model: &str,
    precision: Precision,
    pairs: &[(&str, &str)],
) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
    let encoder = CrossEncoder::load(
        model,
        &CrossEncoderOptions {
            max_length: Some(MAX_LENGTH),
            activation: Some(Activation::Identity),
            precision,
            ..Default::default()
        },
    )?;
    let logits = encoder.logits(pairs, 32, None, &mut |_| Ok(()))?;
    // The first label's logit (cross-encoder rerankers have one).
    Ok(logits
        .values
        .chunks(logits.num_labels)
        .map(|row| row[0])
        .collect())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut model, mut queries, mut cache) = (None, 10usize, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--queries" => queries = args.next().ok_or("--queries N")?.parse()?,
            "--f32-cache" => cache = Some(PathBuf::from(args.next().ok_or("--f32-cache FILE")?)),
            _ if model.is_none() => model = Some(arg),
            _ => return Err(format!("unexpected argument {arg:?}").into()),
        }
    }
    let model = model.ok_or("usage: int8_accuracy MODEL_DIR [--queries N] [--f32-cache FILE]")?;
    let data = PathBuf::from(
        std::env::var("CRANFIELD")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/data/cranfield").into()),
    );
    let corpus = read_jsonl(&data.join("corpus.jsonl"))?;
    let documents: Vec<String> = corpus
        .iter()
        .map(|d| {
            format!("{} {}", field(d, "title"), field(d, "text"))
                .trim()
                .to_string()
        })
        .collect();
    let query_texts: Vec<String> = read_jsonl(&data.join("queries.jsonl"))?
        .iter()
        .take(queries)
        .map(|q| field(q, "text").to_string())
        .collect();
    let bm25 = Bm25::new(
        &documents,
        Bm25Params { k1: 0.9, b: 0.4 },
        AnalyzerConfig::default(),
    )?;
    let hits = bm25.search_batch(&query_texts, TOP_K)?;
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let mut groups = Vec::new();
    for (q, hits) in query_texts.iter().zip(&hits) {
        let start = pairs.len();
        pairs.extend(
            hits.iter()
                .map(|h| (q.as_str(), documents[h.doc as usize].as_str())),
        );
        groups.push(start..pairs.len());
    }
    eprintln!(
        "{}: {} queries, {} pairs, max_length {MAX_LENGTH}",
        model,
        query_texts.len(),
        pairs.len()
    );

    let cached: Option<Vec<f32>> = cache
        .as_ref()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| serde_json::from_str(&text).ok())
        .filter(|v: &Vec<f32>| v.len() == pairs.len());
    let exact = match cached {
        Some(v) => v,
        None => {
            let v = scores(&model, Precision::Float32, &pairs)?;
            if let Some(path) = &cache {
                std::fs::write(path, serde_json::to_string(&v)?)?;
            }
            v
        }
    };
    let int8 = scores(&model, Precision::Int8, &pairs)?;

    let mut rhos = Vec::new();
    for (q, range) in groups.iter().enumerate() {
        let rho = spearman(&exact[range.clone()], &int8[range.clone()]);
        println!(
            "query {:>2}: {} docs, spearman {rho:.5}",
            q + 1,
            range.len()
        );
        rhos.push(rho);
    }
    let max_diff = exact
        .iter()
        .zip(&int8)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let spread = exact
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    rhos.sort_by(f64::total_cmp);
    let median = if rhos.len() % 2 == 1 {
        rhos[rhos.len() / 2]
    } else {
        (rhos[rhos.len() / 2 - 1] + rhos[rhos.len() / 2]) / 2.0
    };
    println!(
        "spearman min {:.5} median {median:.5}; max |logit diff| {max_diff:.4} (f32 logits {:.2}..{:.2})",
        rhos[0], spread.0, spread.1
    );
    Ok(())
}
