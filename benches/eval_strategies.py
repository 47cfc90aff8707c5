"""Re-ranking strategies on the shipped collections, with the evaluation harness.

Per collection: a fixed query split (seeded shuffle, 2/3 train, 1/3 test); candidates =
BM25 top-100. On the test queries it compares BM25 with:
  * HybridReranker over BM25 (corpus statistics), all-MiniLM-L6-v2 cosine and the
    first-stage order, with default (equal) weights and with weights learned by
    `fit` (coordinate ascent on nDCG@10) on the training queries;
  * MultiStage: the bi-encoder re-scores the top 100, then the learned hybrid the top 20;
  * PairwiseReranker on the top 20 (allpairs/sum and sort), with a comparator made from
    the bi-encoder (P(a > b) = sigmoid(20 (cos(q, a) - cos(q, b)))): no trained duo model is
    reachable offline, so this checks the machinery and its cost (comparisons per query),
    not a duo model's quality;
and reports expected calibration error (10 bins) of the bi-encoder cosine as a probability
of relevance before and after `Calibrator` (fitted on the training queries' candidates), on
the test queries' candidates: Platt on the cosine, and temperature scaling, which maps 0 to
0.5 and so needs logit-like scores: it refuses raw cosines (all positive) and is fitted on
the margin cosine - t, t = the training queries' F1-best threshold.

    python benches/eval_strategies.py [--collections cranfield cisi cacm]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import crossrank  # noqa: E402
from crossrank.datasets import load_beir  # noqa: E402
from crossrank.evaluation import BM25Stage, RerankStage, evaluate  # noqa: E402
from crossrank.reranking import (  # noqa: E402
    Calibrator,
    HybridReranker,
    MultiStage,
    PairwiseReranker,
    expected_calibration_error,
    suggest_threshold,
)

import fixtures  # noqa: E402

METRICS = ["ndcg@10", "mrr@10", "map@100"]


def cached_cosine(bi: crossrank.BiEncoder, texts: list[str]):
    """A signal f(query, documents) -> cosine, with the corpus embedded once."""
    embeddings = bi.encode(texts, batch_size=32, show_progress_bar=True)
    embeddings /= np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    row = {t: i for i, t in enumerate(texts)}

    def cosine(query: str, documents: list[str]) -> np.ndarray:
        q = bi.encode([query])[0]
        q /= max(np.linalg.norm(q), 1e-12)
        return embeddings[[row[d] for d in documents]] @ q

    cosine.__name__ = "bi_encoder"
    return cosine


def cosine_comparator(bi: crossrank.BiEncoder, cosine):
    """P(a > b) from the bi-encoder, one query embedding per query."""
    cache: dict[str, dict[str, float]] = {}

    def compare(query: str, a: str, b: str) -> float:
        scores = cache.setdefault(query, {})
        for d in (a, b):
            if d not in scores:
                scores[d] = float(cosine(query, [d])[0])
        return float(1.0 / (1.0 + np.exp(-20.0 * (scores[a] - scores[b]))))

    compare.__name__ = "bi_encoder_comparator"
    return compare


class Counted:
    """A PairwiseReranker as a harness stage that records comparisons per query."""

    def __init__(self, reranker: PairwiseReranker):
        self.reranker, self.comparisons = reranker, []

    def __call__(self, query: str, documents: list[str]) -> np.ndarray:
        ranking = self.reranker.rerank(query, documents)
        self.comparisons.append(ranking.comparisons)
        scores = np.zeros(len(documents))
        for position, r in enumerate(ranking):
            scores[r["corpus_id"]] = len(documents) - position
        return scores


def make_hybrid(corpus_bm25: crossrank.BM25, dense) -> HybridReranker:
    """BM25 with the corpus' statistics, the first-stage order and the bi-encoder cosine."""
    return HybridReranker(bm25=corpus_bm25, first_stage=True, signals={"bi_encoder": dense})


def candidates_and_labels(split, data, corpus_bm25: crossrank.BM25, dense) -> tuple[np.ndarray, np.ndarray]:
    """The cosine of each of ``split``'s queries with its BM25 top 100, and whether each is relevant."""
    scores, labels = [], []
    for qid, text in split.queries.items():
        ids, _ = corpus_bm25.search(text, top_k=100)
        scores.extend(dense(text, [data.text(d) for d in ids]))
        labels.extend(int(split.qrels[qid].get(d, 0) > 0) for d in ids)
    return np.asarray(scores), np.asarray(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collections", nargs="+", default=["cranfield", "cisi", "cacm"])
    args = parser.parse_args()
    minilm, _ = fixtures.ensure_default_fixtures()
    bi = crossrank.BiEncoder(str(minilm))
    print("| collection | test queries | stage | nDCG@10 | MRR@10 | MAP@100 | ms/query |")
    print("|---|---|---|---|---|---|---|")
    calibration_rows, weight_rows, comparison_rows = [], [], []
    for name in args.collections:
        data = load_beir(fixtures.DATA / name)
        qids = sorted(data.queries)
        random.Random(0).shuffle(qids)
        cut = len(qids) * 2 // 3
        train, test = data.subset(qids[:cut]), data.subset(qids[cut:])
        corpus_bm25 = crossrank.BM25(data.doc_texts, ids=data.doc_ids)
        dense = cached_cosine(bi, data.doc_texts)
        default, learned = make_hybrid(corpus_bm25, dense), make_hybrid(corpus_bm25, dense)
        start = time.perf_counter()
        report = learned.fit(train, metric="ndcg@10", depth=100)
        fit_s = time.perf_counter() - start
        weight_rows.append(f"| {name} | {len(train.queries)} | {report['initial_score']:.4f} | {report['score']:.4f} | "
                           + ", ".join(f"{k} {v:.3f}" for k, v in report["weights"].items()) + f" | {fit_s:.1f} |")
        cascade = MultiStage([(dense, 100), (learned, 20)])
        comparator = cosine_comparator(bi, dense)
        allpairs = Counted(PairwiseReranker(comparator, method="allpairs", rerank_top_n=20))
        by_sort = Counted(PairwiseReranker(comparator, method="sort", rerank_top_n=20))
        result = evaluate([BM25Stage(), RerankStage(default, name="hybrid (default weights)", input="bm25"),
                           RerankStage(learned, name="hybrid (learned weights)", input="bm25"),
                           RerankStage(cascade, name="multistage (dense 100 -> learned hybrid 20)", input="bm25"),
                           RerankStage(MultiStage([(dense, 20)]), name="pointwise bi-encoder top 20", input="bm25"),
                           RerankStage(allpairs, name="pairwise allpairs top 20", input="bm25"),
                           RerankStage(by_sort, name="pairwise sort top 20", input="bm25")],
                          test, metrics=METRICS, depth=100)
        for s in result.stages:
            print(f"| {name} | {len(test.queries)} | {s.name} | "
                  + " | ".join(f"{s.metrics[m]:.4f}" for m in METRICS) + f" | {s.ms_per_query:.1f} |", flush=True)
        comparison_rows.append(f"| {name} | {np.mean(allpairs.comparisons):.0f} | {np.mean(by_sort.comparisons):.1f} "
                               f"| {max(by_sort.comparisons)} |")

        train_scores, train_labels = candidates_and_labels(train, data, corpus_bm25, dense)
        test_scores, test_labels = candidates_and_labels(test, data, corpus_bm25, dense)
        before = expected_calibration_error(np.clip(test_scores, 0, 1), test_labels)
        row = [name, f"{test_labels.mean():.3f}", f"{before:.4f}"]
        platt = Calibrator.fit(train_scores, train_labels, method="platt")
        row.append(f"{expected_calibration_error(platt.transform(test_scores), test_labels):.4f} ({platt!r})")
        try:
            Calibrator.fit(train_scores, train_labels, method="temperature")
            row.append("fitted")
        except ValueError:
            row.append("refused")
        t = suggest_threshold(train_scores, train_labels, target="f1")["threshold"]
        temperature = Calibrator.fit(train_scores - t, train_labels, method="temperature")
        row.append(f"{expected_calibration_error(temperature.transform(test_scores - t), test_labels):.4f} "
                   f"(t={t:.3f}, {temperature!r})")
        calibration_rows.append("| " + " | ".join(row) + " |")
    print("\nLearned weights (fit on the training queries; nDCG@10 on them before -> after):")
    print("| collection | train queries | nDCG@10 default | nDCG@10 learned | weights | fit s |")
    print("|---|---|---|---|---|---|")
    print("\n".join(weight_rows))
    print("\nCalibration of the bi-encoder cosine on the test queries' BM25 top-100 (ECE, 10 bins):")
    print("| collection | relevant rate | ECE raw cosine | ECE Platt | temperature on raw cosine "
          "| ECE temperature on cosine - t |")
    print("|---|---|---|---|---|---|")
    print("\n".join(calibration_rows))
    print("\nPairwise comparisons per query (top 20):")
    print("| collection | allpairs | sort (mean) | sort (max) |")
    print("|---|---|---|---|")
    print("\n".join(comparison_rows))


if __name__ == "__main__":
    main()
