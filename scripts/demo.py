"""`make demo`: the main job, on real data with the embedded defaults.

BM25 top-100 -> dense retrieval (real all-MiniLM-L6-v2) -> hybrid (reciprocal rank fusion
of both) -> cross-encoder re-ranking of the hybrid top-100. The cross-encoder is the demo's
own fine-tuned model (`scripts/demo_model.py`: trained with crossrank's trainer on the
training queries of the shipped collections the first time, then cached), or CE_MODEL (a
hub id or a directory). On a shipped collection every stage is measured on its held-out
test queries, which the demo model never saw. Prints the metrics table per stage with
latency and what each stage changed versus BM25, then the cross-encoder engine's speed
(float32 and int8).

    python scripts/demo.py [--data DIR ...] [--write-results benches/RESULTS.md]

`make demo-all` runs it on cranfield, cisi and cacm and writes the tables to
benches/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import crossrank  # noqa: E402
from crossrank.datasets import load_beir  # noqa: E402
from crossrank.evaluation import BM25Stage, DenseStage, FusionStage, RerankStage, evaluate  # noqa: E402

import demo_model  # noqa: E402
import fixtures  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = fixtures.DATA
METRICS = ["ndcg@10", "mrr@10", "map@100", "recall@100"]
MARK_START, MARK_END = "<!-- demo-all:start -->", "<!-- demo-all:end -->"
RESULTS_SETUP = (
    "the held-out test queries of each collection's seeded split (`scripts/demo_model.py`), depth 100, documents "
    "as title + text; BM25 k1 0.9, b 0.4, no stemming; dense = all-MiniLM-L6-v2 (crossrank BiEncoder, cosine, "
    "exact); hybrid = RRF (k 60) of both; cross-encoder = the demo's model fine-tuned by crossrank on the training "
    "queries (recipe and training time in `training.json` beside it and benches/TRAINING.md), re-ranking the "
    "hybrid top-100 at max_length 128; ce+dense = RRF of the cross-encoder's and the dense order. ms/query is the "
    "stage's own time on 2 cores; total adds the stages it uses.")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ranks = [np.argsort(np.argsort(x, kind="stable"), kind="stable") for x in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def run_collection(path: Path, bi: crossrank.BiEncoder, ce: crossrank.CrossEncoder | None):
    data = load_beir(path)
    if path.resolve().parent == SHARED.resolve() and path.name in demo_model.COLLECTIONS:
        _, data = demo_model.split(path.name, data)
        print(f"\n{data}: the held-out test queries (the demo cross-encoder trained on the others)")
    else:
        print(f"\n{data}")
    pipeline = [BM25Stage(), DenseStage(bi), FusionStage(["bm25", "dense"], name="hybrid")]
    if ce is not None:
        # The cross-encoder's order, and that order fused with the dense one (RRF): how the
        # two models' evidence combines.
        pipeline += [RerankStage(ce, name="cross-encoder", input="hybrid"),
                     FusionStage(["cross-encoder", "dense"], name="ce+dense")]
    result = evaluate(pipeline, data, metrics=METRICS, depth=100, show_progress_bar=True)
    print(result)
    for stage in result.stages[1:]:
        changes = result.compare("bm25", stage.name)
        print(f"  {stage.name} vs bm25: " + "; ".join(
            f"{m} {c['delta']:+.4f} (p={c['p_value']:.2g}, {c['better']}+/{c['worse']}-)" for m, c in changes.items()))
    best = max(result.stages, key=lambda s: s.metrics["ndcg@10"])
    verdict = "beats" if best.metrics["ndcg@10"] > result["bm25"].metrics["ndcg@10"] else "does NOT beat"
    print(f"  best stage by nDCG@10: {best.name} ({best.metrics['ndcg@10']:.4f}) {verdict} BM25 "
          f"({result['bm25'].metrics['ndcg@10']:.4f})")
    return result


def engine_speed(ce_dir: Path, path: Path) -> None:
    """The cross-encoder engine: BM25 top-100 of 5 queries, max_length 512."""
    data = load_beir(path)
    bm25 = crossrank.BM25(data.doc_texts, ids=data.doc_ids)
    queries = list(data.queries.values())[:5]
    pairs = [(q, data.text(d)) for q in queries for d in bm25.search(q, top_k=100)[0]]
    timings = {}
    for precision in ("float32", "int8"):
        ce = crossrank.CrossEncoder(str(ce_dir), max_length=512, precision=precision)
        start = time.perf_counter()
        timings[precision] = (ce.predict(pairs, batch_size=32), time.perf_counter() - start)
    (f32, t32), (i8, t8) = timings["float32"], timings["int8"]
    rho = np.median([spearman(f32[i : i + 100], i8[i : i + 100]) for i in range(0, len(pairs), 100)])
    print(f"\ncross-encoder engine ({ce_dir.name}, max_length 512, {len(pairs)} BM25 pairs): "
          f"float32 {len(pairs) / t32:.1f} pairs/s; int8 {len(pairs) / t8:.1f} pairs/s ({t32 / t8:.2f}x), "
          f"median per-query Spearman with float32 {rho:.4f}")


def write_results(path: Path, results: list) -> None:
    lines = [MARK_START, "", "Written by `make demo-all` (`python scripts/demo.py --all --write-results "
             "benches/RESULTS.md`): " + RESULTS_SETUP, ""]
    for result in results:
        lines += [f"**{result.dataset}** ({result.num_queries} queries)", "", result.to_markdown(), ""]
    lines.append(MARK_END)
    block = "\n".join(lines)
    text = path.read_text() if path.exists() else ""
    if MARK_START in text:
        text = re.sub(re.escape(MARK_START) + ".*?" + re.escape(MARK_END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n## Pipeline quality on the shipped collections\n\n" + block + "\n"
    path.write_text(text)
    print(f"\nwrote the tables to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, nargs="*", default=None,
                        help="BEIR-layout directories (default: data/cranfield, or $DATA)")
    parser.add_argument("--all", action="store_true", help="cranfield, cisi and cacm")
    parser.add_argument("--write-results", type=Path, default=None, help="write the tables into this markdown file")
    parser.add_argument("--plot", type=Path, default=None,
                        help="draw each collection's latency / nDCG@10 trade-off into this image")
    args = parser.parse_args()
    if args.all:
        paths = [SHARED / n for n in ("cranfield", "cisi", "cacm")]
    elif args.data:
        paths = args.data
    else:
        paths = [Path(os.environ["DATA"]) if os.environ.get("DATA") else SHARED / "cranfield"]

    minilm = fixtures.fetch_minilm()
    bi = crossrank.BiEncoder(str(minilm))
    if os.environ.get("CE_MODEL"):
        ce_dir = Path(os.environ["CE_MODEL"])
        ce = crossrank.CrossEncoder(os.environ["CE_MODEL"], max_length=512)
    else:
        ce_dir = demo_model.ensure_demo_cross_encoder()
        report = demo_model.training_report(ce_dir)
        print(f"demo cross-encoder: {ce_dir} (trained by crossrank in {report['training_seconds'] / 60:.1f} min, "
              f"{report['steps']} steps on {', '.join(report['examples'])})")
        # Scored at the length it was trained at.
        ce = crossrank.CrossEncoder(str(ce_dir), max_length=demo_model.RECIPE["max_length"])
    print(f"cross-encoder stage: {ce!r}")
    results = [run_collection(p, bi, ce) for p in paths]
    engine_speed(ce_dir, paths[0])
    if args.write_results:
        write_results(args.write_results, results)
    if args.plot:
        from crossrank.plot import plot_trade_off

        plot_trade_off(results, args.plot)
        print(f"wrote the trade-off chart to {args.plot}")


if __name__ == "__main__":
    main()
