"""`make demo`: the main job on real data with the embedded defaults.

1. Embed the Cranfield corpus with the real all-MiniLM-L6-v2 BiEncoder and retrieve the
   top-100 documents per query by cosine similarity; print nDCG@10 over all queries.
2. Re-score the candidates of 10 queries with the cross-encoder fixture (real MiniLM
   encoder + seeded head, max_length 512) and print pairs/s.

Later issues grow this into the full pipeline (BM25, hybrid, trained cross-encoder).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures  # noqa: E402

import crossrank  # noqa: E402

DATA = fixtures.ROOT.parent / "shared" / "data" / "cranfield"


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as f:
        next(f)  # header
        for line in f:
            qid, docid, rel = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, {})[docid] = int(rel)
    return qrels


def ndcg_at_k(ranked: list[str], judged: dict[str, int], k: int = 10) -> float:
    """trec_eval's ndcg_cut: linear gain, log2 discount, ideal from all judged documents."""
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def main() -> None:
    minilm, ce_dir = fixtures.ensure_default_fixtures()
    corpus = read_jsonl(DATA / "corpus.jsonl")
    queries = read_jsonl(DATA / "queries.jsonl")
    qrels = read_qrels(DATA / "qrels.tsv")
    doc_ids = [d["_id"] for d in corpus]
    doc_texts = [(d.get("title", "") + " " + d["text"]).strip() for d in corpus]
    judged_queries = [q for q in queries if q["_id"] in qrels]

    print(f"Cranfield: {len(corpus)} documents, {len(judged_queries)} judged queries")
    bi = crossrank.BiEncoder(str(minilm))
    start = time.perf_counter()
    doc_emb = bi.encode(doc_texts, batch_size=32, show_progress_bar=True)
    print(f"embedded {len(doc_texts)} documents in {time.perf_counter() - start:.1f}s ({bi!r})")
    query_emb = bi.encode([q["text"] for q in judged_queries])
    sims = bi.similarity(query_emb, doc_emb)
    top = np.argsort(-sims, axis=1, kind="stable")[:, :100]
    candidates = {q["_id"]: [doc_ids[j] for j in row] for q, row in zip(judged_queries, top)}
    dense_ndcg = np.mean([ndcg_at_k(candidates[q["_id"]], qrels[q["_id"]]) for q in judged_queries])
    print(f"dense retrieval (all-MiniLM-L6-v2, cosine): nDCG@10 = {dense_ndcg:.4f} over {len(judged_queries)} queries")

    ce = crossrank.CrossEncoder(str(ce_dir), max_length=512)
    text_of = dict(zip(doc_ids, doc_texts))
    sample = judged_queries[:10]
    pairs = [(q["text"], text_of[d]) for q in sample for d in candidates[q["_id"]]]
    start = time.perf_counter()
    scores = ce.predict(pairs, batch_size=32, show_progress_bar=True)
    elapsed = time.perf_counter() - start
    print(f"cross-encoder fixture ({ce!r}): scored {len(pairs)} pairs of {len(sample)} queries "
          f"in {elapsed:.1f}s = {len(pairs) / elapsed:.1f} pairs/s")
    best = int(np.argmax(scores[:100]))
    print(f"  (seeded random head, so its order is not meaningful yet; top score for query 1: {scores[best]:.4f})")


if __name__ == "__main__":
    main()
