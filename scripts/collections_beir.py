"""The shipped IR collections (data/, BEIR layout) and the dense-retrieval run the
demo, the tests and the benches share. nDCG here follows trec_eval's ndcg_cut; crossrank's
own metrics (checked against pytrec-eval-terrier) will replace it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import fixtures

DATA = fixtures.DATA


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


@dataclass
class Collection:
    name: str
    doc_ids: list[str]
    doc_texts: list[str]
    queries: list[dict]  # the judged ones: {"_id", "text"}
    qrels: dict[str, dict[str, int]]


def load(name: str) -> Collection:
    root = DATA / name
    corpus = read_jsonl(root / "corpus.jsonl")
    qrels = read_qrels(root / "qrels.tsv")
    queries = [q for q in read_jsonl(root / "queries.jsonl") if q["_id"] in qrels]
    return Collection(
        name=name,
        doc_ids=[d["_id"] for d in corpus],
        doc_texts=[(d.get("title", "") + " " + d["text"]).strip() for d in corpus],
        queries=queries,
        qrels=qrels,
    )


def ndcg_at_k(ranked: list[str], judged: dict[str, int], k: int = 10) -> float:
    """trec_eval's ndcg_cut: linear gain, log2 discount, ideal from all judged documents."""
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def dense_run(bi_encoder, collection: Collection, depth: int = 100, show_progress_bar: bool = False):
    """Top-`depth` document ids per query id by cosine similarity, and the mean nDCG@10."""
    docs = bi_encoder.encode(collection.doc_texts, batch_size=32, show_progress_bar=show_progress_bar)
    queries = bi_encoder.encode([q["text"] for q in collection.queries])
    sims = bi_encoder.similarity(queries, docs)
    top = np.argsort(-sims, axis=1, kind="stable")[:, :depth]
    run = {q["_id"]: [collection.doc_ids[j] for j in row] for q, row in zip(collection.queries, top)}
    ndcg = float(np.mean([ndcg_at_k(run[q["_id"]], collection.qrels[q["_id"]]) for q in collection.queries]))
    return run, ndcg
