"""precision="int8" for the BiEncoder: dense-retrieval nDCG@10 and embedding speed against
float32 on the three shipped collections (real all-MiniLM-L6-v2, cosine, full corpus).

    python benches/bench_int8_retrieval.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("RAYON_NUM_THREADS", "2")

import crossrank  # noqa: E402

import collections_beir as beir  # noqa: E402
import fixtures  # noqa: E402


def main() -> None:
    minilm = fixtures.fetch_minilm()
    models = {p: crossrank.BiEncoder(str(minilm), precision=p) for p in ("float32", "int8")}
    print("| collection | docs | queries | nDCG@10 float32 | nDCG@10 int8 | difference | relative | "
          "docs/s float32 | docs/s int8 | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in ("cranfield", "cisi", "cacm"):
        collection = beir.load(name)
        ndcg, rate = {}, {}
        for precision, model in models.items():
            start = time.perf_counter()
            _, ndcg[precision] = beir.dense_run(model, collection)
            rate[precision] = len(collection.doc_texts) / (time.perf_counter() - start)
        diff = ndcg["int8"] - ndcg["float32"]
        print(f"| {name} | {len(collection.doc_texts)} | {len(collection.queries)} | {ndcg['float32']:.4f} | "
              f"{ndcg['int8']:.4f} | {diff:+.4f} | {diff / ndcg['float32']:+.2%} | {rate['float32']:.0f} | "
              f"{rate['int8']:.0f} | {rate['int8'] / rate['float32']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
