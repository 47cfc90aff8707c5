"""Re-ranking a batch job bigger than one machine with Ray Data.

crossrank models and rerankers pickle as their constructor arguments (the weights reload
from the model directory or the Hugging Face cache on each worker), so they can be handed
to Ray, Spark or multiprocessing workers. Here: BM25 candidates for Cranfield queries, one
row per (query, document) candidate, scored by a cross-encoder inside `map_batches` with a
callable class, so each Ray actor loads the model once and scores many batches.

    python examples/ray_batch_rerank.py [--queries 20] [--top-k 20]

On a cluster, `ray.init(address="auto")` instead of a local start, and the model path
must exist on every node (or be a hub id the nodes can download).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


class ScoreBatch:
    """A Ray Data UDF: one instance per actor, holding the (unpickled) reranker."""

    def __init__(self, model):
        self.model = model

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pairs = list(zip(batch["query"].tolist(), batch["document"].tolist()))
        batch["score"] = self.model.predict(pairs, batch_size=32).astype(np.float64)
        return batch


def candidates(data_dir: Path, n_queries: int, top_k: int) -> list[dict]:
    import crossrank
    from crossrank.datasets import load_beir

    data = load_beir(data_dir)
    bm25 = crossrank.BM25(data.doc_texts, ids=data.doc_ids)
    rows = []
    for qid in sorted(data.queries, key=int)[:n_queries]:
        ids, _ = bm25.search(data.queries[qid], top_k=top_k)
        rows += [{"qid": qid, "doc_id": d, "query": data.queries[qid], "document": data.text(d)} for d in ids]
    return rows


def rerank_with_ray(model, rows: list[dict], actors: int = 2, batch_size: int = 64) -> list[dict]:
    import ray

    ray.init(num_cpus=actors, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    try:
        scored = ray.data.from_items(rows).map_batches(
            ScoreBatch, fn_constructor_args=(model,), batch_size=batch_size, concurrency=actors,
            batch_format="numpy")
        return scored.take_all()
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--top-k", type=int, default=20)
    args = parser.parse_args()

    import crossrank

    import fixtures

    _, ce_path = fixtures.ensure_default_fixtures()
    model = crossrank.CrossEncoder(str(ce_path), max_length=256)
    rows = candidates(ROOT / "data" / "cranfield", args.queries, args.top_k)
    scored = rerank_with_ray(model, rows)
    best: dict[str, tuple[float, str]] = {}
    for row in scored:
        if row["qid"] not in best or row["score"] > best[row["qid"]][0]:
            best[row["qid"]] = (row["score"], row["doc_id"])
    print(f"scored {len(scored)} candidates of {len(best)} queries with Ray Data")
    for qid in sorted(best, key=int)[:5]:
        print(f"query {qid}: best document {best[qid][1]} (score {best[qid][0]:.4f})")


if __name__ == "__main__":
    main()
