"""Cross-encoder throughput: crossrank vs sentence-transformers, side by side, one process.

Workload: BM25 (bm25s, Lucene variant, k1=0.9, b=0.4) top-100 candidates for the first
N Cranfield queries, scored with the cross-encoder fixture (real all-MiniLM-L6-v2 encoder
+ seeded head) at max_length 512, batch_size 32, on 2 threads. Each query's 100 pairs are
one predict() call; runs alternate between the two libraries and medians are reported.

    python benches/bench_cross_encoder.py [--queries 10] [--runs 3]
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

THREADS = 2
os.environ.setdefault("RAYON_NUM_THREADS", str(THREADS))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))

import bm25s  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import CrossEncoder as STCrossEncoder  # noqa: E402

import crossrank  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "cranfield"


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def bm25_candidates(num_queries: int, depth: int = 100) -> list[tuple[str, list[str]]]:
    corpus = read_jsonl(DATA / "corpus.jsonl")
    queries = read_jsonl(DATA / "queries.jsonl")[:num_queries]
    texts = [(d.get("title", "") + " " + d["text"]).strip() for d in corpus]
    retriever = bm25s.BM25(method="lucene", k1=0.9, b=0.4)
    retriever.index(bm25s.tokenize(texts, stopwords=None, show_progress=False), show_progress=False)
    query_tokens = bm25s.tokenize([q["text"] for q in queries], stopwords=None, show_progress=False)
    ids, _ = retriever.retrieve(query_tokens, k=depth, show_progress=False)
    return [(q["text"], [texts[j] for j in row]) for q, row in zip(queries, ids)]


def encoder_flops(lengths: list[int], config: dict) -> float:
    """Multiply-adds x 2 of a full encoder pass over sequences of these lengths:
    QKV + output projections, the feed-forward block, and attention (QK^T and PV)."""
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    per_layer = sum(2 * n * (4 * h * h + 2 * h * i) + 4 * n * n * h for n in lengths)
    return float(per_layer * layers)


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """The machine's practical f32 limit: a large square matmul in PyTorch, same threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def timed_run(score, workload) -> tuple[float, list[float], list[np.ndarray]]:
    latencies, outputs = [], []
    for query, docs in workload:
        pairs = [(query, d) for d in docs]
        start = time.perf_counter()
        outputs.append(np.asarray(score(pairs), dtype=np.float32))
        latencies.append(time.perf_counter() - start)
    return sum(latencies), latencies, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", type=Path, default=None, help="cross-encoder directory (default: the fixture)")
    args = parser.parse_args()

    torch.set_num_threads(THREADS)
    model_dir = args.model or fixtures.ensure_default_fixtures()[1]
    workload = bm25_candidates(args.queries)
    n_pairs = sum(len(docs) for _, docs in workload)

    ours = crossrank.CrossEncoder(str(model_dir), max_length=args.max_length)
    st = STCrossEncoder(str(model_dir), max_length=args.max_length, device="cpu")
    identity = torch.nn.Identity()
    systems = {
        "crossrank": lambda pairs: ours.predict(pairs, batch_size=args.batch_size, activation_fn="identity"),
        "sentence-transformers": lambda pairs: st.predict(pairs, batch_size=args.batch_size, activation_fn=identity),
    }
    warm = [(workload[0][0], workload[0][1][:8])]
    for score in systems.values():
        timed_run(score, warm)

    totals = {name: [] for name in systems}
    latencies = {name: [] for name in systems}
    outputs = {}
    for run in range(args.runs):
        for name, score in systems.items():
            total, lat, out = timed_run(score, workload)
            totals[name].append(total)
            latencies[name].extend(lat)
            outputs[name] = out
            print(f"run {run + 1}/{args.runs} {name:>22}: {n_pairs / total:7.1f} pairs/s", flush=True)

    config = json.loads((Path(model_dir) / "config.json").read_text())
    lengths = [len(ids) for query, docs in workload for ids in ours.tokenize([(query, d) for d in docs])]
    flops = encoder_flops(lengths, config)
    peak = matmul_gflops()
    diff = max(np.abs(a - b).max() for a, b in zip(outputs["crossrank"], outputs["sentence-transformers"]))
    print(f"\n{args.queries} Cranfield queries x BM25 top-100 = {n_pairs} pairs, max_length {args.max_length}, "
          f"batch_size {args.batch_size}, {THREADS} threads, {args.runs} runs; max |logit diff| = {diff:.2e}")
    print(f"mean tokens per pair {np.mean(lengths):.0f}; {flops / 1e9:.0f} GFLOP per run; "
          f"large f32 matmul (torch, {THREADS} threads): {peak:.0f} GFLOP/s")
    print("| system | pairs/s (median) | ms/query p50 | GFLOP/s | ratio vs sentence-transformers |")
    print("|---|---|---|---|---|")
    base = n_pairs / statistics.median(totals["sentence-transformers"])
    for name in systems:
        rate = n_pairs / statistics.median(totals[name])
        p50 = statistics.median(latencies[name]) * 1000
        gflops = flops / statistics.median(totals[name]) / 1e9
        print(f"| {name} | {rate:.1f} | {p50:.0f} | {gflops:.0f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
