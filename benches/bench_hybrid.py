"""HybridReranker(cross_encoder + bi_encoder + bm25) re-rank of 100 candidates: the signals
computed one after another from Python (how HybridReranker computed them up to session 8),
against crossrank._core.ModelSignals (all three in Rust, side by side, GIL released), and
against ModelSignals given the candidates' embeddings (from a DenseIndex / vector store),
which leaves the bi-encoder only the query to embed. The full HybridReranker.rerank (since
session 9 one call into crossrank._core.HybridReranker: signals, normalization and fusion
with the GIL released) is timed with and without the embeddings. Same models and candidates
for every row; runs interleaved; medians.

Workload: the first N Cranfield queries, BM25 top-100 candidates each (title + text),
cross-encoder fixture at max_length 512, all-MiniLM-L6-v2 bi-encoder, batch 32, 2 threads.

    python benches/bench_hybrid.py [--queries 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import fixtures  # noqa: E402

os.environ.setdefault("RAYON_NUM_THREADS", "2")

import numpy as np  # noqa: E402

import crossrank  # noqa: E402
from crossrank._core import ModelSignals  # noqa: E402


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def sequential(ce, be, query: str, docs: list[str]) -> dict[str, np.ndarray]:
    """The signals as HybridReranker.raw_signals computed them before ModelSignals."""
    return {
        "cross_encoder": ce.predict([(query, d) for d in docs], batch_size=32).astype(np.float64),
        "bm25": crossrank.BM25(docs).score(query, docs).astype(np.float64),
        "bi_encoder": be.similarity(be.encode([query]), be.encode(docs))[0].astype(np.float64),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print("runtime:", json.dumps(crossrank.runtime_info()))
    _, ce_dir = fixtures.ensure_default_fixtures()
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=512)
    be = crossrank.BiEncoder(str(fixtures.fetch_minilm()))
    data = fixtures.DATA / "cranfield"
    corpus = read_jsonl(data / "corpus.jsonl")
    texts = [(d.get("title", "") + " " + d["text"]).strip() for d in corpus]
    queries = [q["text"] for q in read_jsonl(data / "queries.jsonl")[: args.queries]]
    index = crossrank.BM25(texts)
    hits = index.search_batch(queries, top_k=100)
    work = [(q, [texts[i] for i in ids], ids) for q, (ids, _) in zip(queries, hits)]
    corpus_embeddings = be.encode(texts, batch_size=32)  # what a DenseIndex / vector store holds
    signals = ModelSignals(cross_encoder=ce, bi_encoder=be, bm25=True, batch_size=32)
    hybrid = crossrank.HybridReranker(cross_encoder=ce, bi_encoder=be, bm25=True)

    rows = {
        "before: signals one after another from Python": lambda q, d, ids: sequential(ce, be, q, d),
        "ModelSignals (Rust, side by side)": lambda q, d, ids: signals.compute(q, d),
        "ModelSignals with the candidates' embeddings": lambda q, d, ids: signals.compute(
            q, d, embeddings=corpus_embeddings[np.asarray(ids)]),
        "HybridReranker.rerank (after: one core call)": lambda q, d, ids: hybrid.rerank(q, d),
        "HybridReranker.rerank with the candidates' embeddings": lambda q, d, ids: hybrid.rerank(
            q, d, embeddings=corpus_embeddings[np.asarray(ids)]),
    }
    check = {name: f(*work[0]) for name, f in rows.items() if "rerank" not in name}
    reference = check["before: signals one after another from Python"]
    for name, got in check.items():
        for signal, values in reference.items():
            assert np.abs(got[signal] - values).max() < 1e-4, (name, signal)
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.runs):
        for name, f in rows.items():
            start = time.perf_counter()
            for q, d, ids in work:
                f(q, d, ids)
            times[name].append((time.perf_counter() - start) / len(work))
    base = statistics.median(times["before: signals one after another from Python"])
    print(f"\n{len(work)} queries x 100 candidates, medians of {args.runs} runs")
    print("| path | ms/query | vs before |\n|---|---|---|")
    for name, t in times.items():
        m = statistics.median(t)
        print(f"| {name} | {m * 1000:.0f} | {base / m:.2f}x |")


if __name__ == "__main__":
    main()
