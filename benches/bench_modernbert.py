"""ModernBERT cross-encoder throughput: crossrank vs sentence-transformers, side by side in
one process, on a ModernBERT-base-sized model with random weights (22 layers, hidden 768,
12 heads, GeGLU 1152, a global layer every 3rd, local window 128; the shape of
gte-reranker-modernbert-base). Only the shape matters for speed; the scores of both are
checked equal first. The tokenizer is MiniLM's WordPiece (ModernBERT's BPE is not
reachable offline): token counts differ a little from the real model's, equally for both.

Workload: BM25 top-100 candidates of the first N Cranfield queries, max_length 512,
batch_size 32, 2 threads; one predict() call per query; runs alternate; medians. With
--int8, crossrank's precision="int8" runs too and its per-query Spearman with float32 is
reported.

    python benches/bench_modernbert.py [--queries 3] [--runs 3] [--int8]
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
import torch  # noqa: E402
from bench_cross_encoder import bm25_candidates  # noqa: E402
from sentence_transformers import CrossEncoder as STCrossEncoder  # noqa: E402

import crossrank  # noqa: E402

import fixtures  # noqa: E402

BASE = dict(hidden_size=768, intermediate_size=1152, num_hidden_layers=22, num_attention_heads=12,
            local_attention=128, max_position_embeddings=8192)


def write_model(target: Path) -> Path:
    from transformers import AutoTokenizer, ModernBertConfig, ModernBertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(fixtures.fetch_minilm()),
                                              model_input_names=["input_ids", "attention_mask"])
    torch.manual_seed(0)
    config = ModernBertConfig(vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id,
                              cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id,
                              bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                              num_labels=1, **BASE)
    ModernBertForSequenceClassification(config).eval().save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    return target


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--int8", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    print("runtime:", json.dumps(crossrank.runtime_info()))
    path = write_model(Path(tempfile.mkdtemp()) / "modernbert-base-random")
    workload = bm25_candidates(args.queries)
    ours = crossrank.CrossEncoder(str(path), max_length=512)
    st = STCrossEncoder(str(path), max_length=512, device="cpu")
    systems = {
        "crossrank": lambda q, docs: ours.predict([(q, d) for d in docs], batch_size=32),
        "sentence-transformers": lambda q, docs: st.predict([(q, d) for d in docs], batch_size=32),
    }
    if args.int8:
        from scipy.stats import spearmanr

        int8 = crossrank.CrossEncoder(str(path), max_length=512, precision="int8")
        systems["crossrank int8"] = lambda q, docs: int8.predict([(q, d) for d in docs], batch_size=32)
        rhos = [spearmanr(ours.predict([(q, d) for d in docs]), int8.predict([(q, d) for d in docs])).statistic
                for q, docs in workload]
        print(f"int8 vs float32 per-query Spearman: min {min(rhos):.4f}, mean {np.mean(rhos):.4f}")
    q, docs = workload[0]
    diff = np.abs(systems["crossrank"](q, docs[:20]) - systems["sentence-transformers"](q, docs[:20])).max()
    print(f"max |score diff| on 20 pairs: {diff:.2e}")
    pairs = sum(len(d) for _, d in workload)
    times: dict[str, list[float]] = {name: [] for name in systems}
    for run in range(args.runs):
        for name, score in systems.items():
            start = time.perf_counter()
            for q, docs in workload:
                score(q, docs)
            times[name].append(time.perf_counter() - start)
            print(f"run {run}: {name} {pairs / times[name][-1]:.2f} pairs/s", flush=True)
    base = pairs / statistics.median(times["sentence-transformers"])
    print(f"\n{len(workload)} queries x 100 candidates = {pairs} pairs, medians of {args.runs} runs")
    print("| system | pairs/s (median) | vs sentence-transformers |\n|---|---|---|")
    for name, ts in times.items():
        rate = pairs / statistics.median(ts)
        print(f"| {name} | {rate:.2f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
