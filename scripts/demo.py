"""`make demo`: the main job, on real data with the embedded defaults.

BM25 top-100 -> dense retrieval (real all-MiniLM-L6-v2) -> hybrid (reciprocal rank fusion
of both) -> cross-encoder re-ranking of the hybrid top-100 -> a learned last stage: the
cross-encoder's, BM25's and the dense order fused by weighted RRF, the weights fitted on the
training queries (`HybridReranker.fit`). The cross-encoder is the demo's
own fine-tuned model (`scripts/demo_model.py`: trained with crossrank's trainer on the
training queries of the shipped collections the first time, then cached), or CE_MODEL (a
hub id or a directory). On a shipped collection every stage is measured on its held-out
test queries, which the demo model never saw. Prints the metrics table per stage with
latency and what each stage changed versus BM25, then the cross-encoder engine's speed
(float32 and int8).

    python scripts/demo.py [--data DIR ...] [--write-results benches/RESULTS.md] [--no-learned]

The learned stage needs training queries, so it runs on the shipped collections only; its
first fit scores each training query's hybrid top 100 with the cross-encoder (a few
minutes), and the weights are kept beside the demo model. Each stage's nDCG@10 against
BM25, dense and hybrid is printed with the paired randomization p-value: an improvement that
is not significant says so (benches/TRAINING.md, "Learned final stage").

`make demo-all` runs it on cranfield, cisi and cacm and writes the tables to
benches/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import crossrank  # noqa: E402
from crossrank.datasets import Dataset, load_beir  # noqa: E402
from crossrank.evaluation import BM25Stage, DenseStage, FusionStage, RerankStage, evaluate  # noqa: E402
from crossrank.reranking import HybridReranker  # noqa: E402
from crossrank.retrieval import fuse  # noqa: E402

import demo_model  # noqa: E402
import fixtures  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = fixtures.DATA
METRICS = ["ndcg@10", "mrr@10", "map@100", "recall@100"]
# Training candidates per query for the learned stage's weights (hybrid top FIT_DEPTH): as
# many as it re-ranks at test time, since reciprocal ranks depend on the list's length.
FIT_DEPTH = 100
# The learned stage re-reads the cross-encoder stage's scores from the model's cache.
SCORE_CACHE = 100_000
MARK_START, MARK_END = "<!-- demo-all:start -->", "<!-- demo-all:end -->"
RESULTS_SETUP = (
    "the held-out test queries of each collection's seeded split (`scripts/demo_model.py`), depth 100, documents "
    "as title + text; BM25 k1 0.9, b 0.4, no stemming; dense = all-MiniLM-L6-v2 (crossrank BiEncoder, cosine, "
    "exact); hybrid = RRF (k 60) of both; cross-encoder = the demo's model fine-tuned by crossrank on the training "
    "queries (recipe and training time in `training.json` beside it and benches/TRAINING.md), re-ranking the "
    "hybrid top-100 at max_length 128; learned = weighted RRF of the cross-encoder's, BM25's and the dense order "
    "of those candidates, weights fitted on the training queries (`HybridReranker.fit`). ms/query is the "
    "stage's own time on 2 cores; total adds the stages it uses.")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ranks = [np.argsort(np.argsort(x, kind="stable"), kind="stable") for x in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def learned_scorer(train: Dataset, bi: crossrank.BiEncoder, ce: crossrank.CrossEncoder,
                   weights_file: Path | None = None):
    """The demo's last stage: a HybridReranker fusing the cross-encoder's, BM25's and the
    bi-encoder's orders of the candidates (the hybrid top 100) by weighted reciprocal rank
    fusion, its weights fitted by coordinate ascent on nDCG@10 over the hybrid top
    FIT_DEPTH of the *training* queries, which the evaluation never sees. The weights are
    kept in ``weights_file`` (beside the demo model), so a rerun does not score the training
    queries again. Returns ``f(query, documents) -> scores`` for a RerankStage."""
    start = time.perf_counter()
    bm25 = crossrank.BM25(train.doc_texts, ids=train.doc_ids)
    texts = [train.text(d) for d in train.doc_ids]
    index = crossrank.DenseIndex(bi.encode(texts, batch_size=64), ids=train.doc_ids)
    row_of_text = {t: i for i, t in reversed(list(enumerate(texts)))}
    reranker = HybridReranker(cross_encoder=ce, bm25=bm25, bi_encoder=bi, fusion="rrf")
    if weights_file is not None and weights_file.is_file():
        fitted = json.loads(weights_file.read_text())
        reranker.weights = fitted["weights"]
        how = f"fitted earlier, {weights_file}"
    else:
        queries = [train.queries[q] for q in train.queries]
        runs = zip(bm25.search_batch(queries, top_k=100), index.search(bi.encode(queries), top_k=100))
        candidates = {q: list(fuse([s, d], "rrf"))[:FIT_DEPTH] for q, (s, d) in zip(train.queries, runs)}
        fitted = reranker.fit(train, candidates=candidates, embeddings=index)
        if weights_file is not None:
            weights_file.write_text(json.dumps(fitted, indent=2) + "\n")
        how = f"fitted in {time.perf_counter() - start:.0f} s"
    weights = ", ".join(f"{n} {w:.2f}" for n, w in fitted["weights"].items())
    print(f"learned stage: RRF weights {weights} (training nDCG@10 {fitted['initial_score']:.4f} with equal "
          f"weights -> {fitted['score']:.4f}; {len(train.queries)} training queries x hybrid top {FIT_DEPTH}; {how})")
    table = index.embeddings

    def score(query: str, documents: list[str]) -> np.ndarray:
        # The candidates' embeddings from the index, as a deployment keeps them.
        ranking = reranker.rerank(query, documents, embeddings=table[[row_of_text[d] for d in documents]])
        scores = np.empty(len(documents), dtype=np.float32)
        for hit in ranking:
            scores[hit["corpus_id"]] = hit["score"]
        return scores

    return score


def run_collection(path: Path, bi: crossrank.BiEncoder, ce: crossrank.CrossEncoder | None, learned: bool = True,
                   weights_dir: Path | None = None):
    data = load_beir(path)
    train = None
    if path.resolve().parent == SHARED.resolve() and path.name in demo_model.COLLECTIONS:
        train, data = demo_model.split(path.name, data)
        print(f"\n{data}: the held-out test queries (the demo cross-encoder trained on the others)")
    else:
        print(f"\n{data}")
    pipeline = [BM25Stage(), DenseStage(bi), FusionStage(["bm25", "dense"], name="hybrid")]
    if ce is not None:
        pipeline.append(RerankStage(ce, name="cross-encoder", input="hybrid"))
    if learned and ce is not None and train is not None:
        # Re-ranks the cross-encoder's candidates (the hybrid top 100), so its total time adds
        # the cross-encoder stage's; the cross-encoder's score cache serves the scores that
        # stage computed.
        weights_file = None if weights_dir is None else weights_dir / f"learned-{path.name}.json"
        pipeline.append(RerankStage(learned_scorer(train, bi, ce, weights_file), name="learned",
                                    input="cross-encoder"))
    result = evaluate(pipeline, data, metrics=METRICS, depth=100, show_progress_bar=True)
    print(result)
    for stage in result.stages[1:]:
        changes = result.compare("bm25", stage.name)
        print(f"  {stage.name} vs bm25: " + "; ".join(
            f"{m} {c['delta']:+.4f} (p={c['p_value']:.2g}, {c['better']}+/{c['worse']}-)" for m, c in changes.items()))
    for reranked in result.stages[3:]:
        # Each re-ranking stage against every first stage, with the paired randomization test.
        for earlier in ("bm25", "dense", "hybrid"):
            c = result.compare(earlier, reranked.name)["ndcg@10"]
            verdict = "beats" if c["delta"] > 0 else "does NOT beat"
            print(f"  {reranked.name} {verdict} {earlier} on nDCG@10: {c['delta']:+.4f} (p={c['p_value']:.2g}"
                  f"{'' if c['p_value'] < 0.05 else ', not significant'})")
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


def cpu_model() -> str:
    """The CPU's model name where Linux says it, else the platform's word for it."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines()
                      if ":" in line)
    except OSError:
        return platform.processor() or "unknown CPU"
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    name, family, model = (fields.get(k, "?") for k in ("model name", "cpu family", "model"))
    return f"{name} family {family} model {model}"


def write_results(path: Path, results: list) -> None:
    info = crossrank.runtime_info()
    host = (f"Host: {cpu_model()} ({info['arch']}), CPU features {' '.join(info['cpu_features']) or 'none'}; "
            f"crossrank kernels f32 {info['f32_kernel']}, int8 {info['int8_kernel']}; {time.strftime('%Y-%m-%d')}.")
    lines = [MARK_START, "", "Written by `make demo-all` (`python scripts/demo.py --all --write-results "
             "benches/RESULTS.md`): " + RESULTS_SETUP, "", host, ""]
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
    parser.add_argument("--no-learned", dest="learned", action="store_false",
                        help="leave out the learned last stage (HybridReranker fitted on the training queries)")
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
    # Only the learned stage re-reads scores; without it a cache would only cost time.
    cache_size = SCORE_CACHE if args.learned else None
    weights_dir = None
    if os.environ.get("CE_MODEL"):
        ce_dir = Path(os.environ["CE_MODEL"])
        ce = crossrank.CrossEncoder(os.environ["CE_MODEL"], max_length=512, cache_size=cache_size)
    else:
        ce_dir = demo_model.ensure_demo_cross_encoder()
        report = demo_model.training_report(ce_dir)
        print(f"demo cross-encoder: {ce_dir} (trained by crossrank in {report['training_seconds'] / 60:.1f} min, "
              f"{report['steps']} steps on {', '.join(report['examples'])})")
        # Scored at the length it was trained at.
        ce = crossrank.CrossEncoder(str(ce_dir), max_length=demo_model.RECIPE["max_length"], cache_size=cache_size)
        weights_dir = ce_dir  # the learned stage's weights, fitted once per model
    print(f"cross-encoder stage: {ce!r}")
    results = [run_collection(p, bi, ce, args.learned, weights_dir) for p in paths]
    engine_speed(ce_dir, paths[0])
    if args.write_results:
        write_results(args.write_results, results)
    if args.plot:
        from crossrank.plot import plot_trade_off

        plot_trade_off(results, args.plot)
        print(f"wrote the trade-off chart to {args.plot}")


if __name__ == "__main__":
    main()
