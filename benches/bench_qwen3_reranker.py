"""Decoder reranker throughput: crossrank vs sentence-transformers 6.2 (CrossEncoder with
LogitScore), side by side in one process, on a Qwen3-Reranker-0.6B-sized model with random
weights (28 layers, hidden 1024, 16 query heads over 8 key/value heads of 128, SiLU MLP 3072,
vocabulary 151936, tied head). Only the shape matters for speed; the scores are checked
equal first. The tokenizer is the small byte-level BPE of scripts/qwen3_reranker.py (Qwen's
is not reachable offline) with Qwen3-Reranker's prompt template, so token counts are close
to the real model's.

crossrank runs twice: as shipped (each query's prompt beginning, i.e. system prompt,
instruction and query, computed once and its keys/values reused by the candidates) and with
that sharing off (CROSSRANK_PREFIX_CACHE=0), to measure what it saves.

Workload: BM25 top-N candidates of the first Q Cranfield queries, max_length 512, one
rank-style predict() call per query, batch_size 32, 2 threads; runs alternate; medians.

    python benches/bench_qwen3_reranker.py [--queries 3] [--candidates 20] [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
sys.path.insert(0, str(ROOT / "scripts"))

THREADS = 2
os.environ.setdefault("RAYON_NUM_THREADS", str(THREADS))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))

import numpy as np  # noqa: E402
import qwen3_reranker as q3  # noqa: E402
import torch  # noqa: E402
from bench_cross_encoder import bm25_candidates  # noqa: E402
from sentence_transformers import CrossEncoder as STCrossEncoder  # noqa: E402

import crossrank  # noqa: E402

QWEN3_0_6B = dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                  num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                  tie_word_embeddings=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    print("runtime:", json.dumps(crossrank.runtime_info()))
    start = time.perf_counter()
    path = q3.write_checkpoint(Path(tempfile.mkdtemp()) / "qwen3-reranker-0.6b-random", q3.cranfield_texts(n=400),
                               sizes=QWEN3_0_6B)
    print(f"checkpoint written in {time.perf_counter() - start:.0f} s")
    workload = [(q, docs[: args.candidates]) for q, docs in bm25_candidates(args.queries, depth=args.candidates)]
    ours = crossrank.CrossEncoder(str(path), max_length=512)
    os.environ["CROSSRANK_PREFIX_CACHE"] = "0"
    unshared = crossrank.CrossEncoder(str(path), max_length=512)
    del os.environ["CROSSRANK_PREFIX_CACHE"]
    st = STCrossEncoder(str(path), max_length=512, device="cpu")
    systems = {
        "crossrank": lambda q, docs: ours.predict([(q, d) for d in docs], batch_size=32),
        "crossrank, prefix sharing off": lambda q, docs: unshared.predict([(q, d) for d in docs], batch_size=32),
        "sentence-transformers": lambda q, docs: st.predict([(q, d) for d in docs], batch_size=32),
    }
    q, docs = workload[0]
    check = {name: score(q, docs[:4]) for name, score in systems.items()}
    diff = max(np.abs(v - check["sentence-transformers"]).max() for v in check.values())
    print(f"max |score diff| on 4 pairs: {diff:.2e}")
    lengths = [len(ids) for q, docs in workload for ids in ours.tokenize([(q, d) for d in docs])]
    print(f"prompt tokens per pair: mean {statistics.mean(lengths):.0f}, max {max(lengths)}")
    pairs = sum(len(d) for _, d in workload)
    times: dict[str, list[float]] = {name: [] for name in systems}
    for run in range(args.runs):
        for name, score in systems.items():
            start = time.perf_counter()
            for q, docs in workload:
                score(q, docs)
            times[name].append(time.perf_counter() - start)
            print(f"run {run}: {name} {pairs / times[name][-1]:.3f} pairs/s", flush=True)
    base = pairs / statistics.median(times["sentence-transformers"])
    print(f"\n{len(workload)} queries x {args.candidates} candidates = {pairs} pairs, medians of {args.runs} runs")
    print("| system | pairs/s (median) | vs sentence-transformers |\n|---|---|---|")
    for name, ts in times.items():
        rate = pairs / statistics.median(ts)
        print(f"| {name} | {rate:.3f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
