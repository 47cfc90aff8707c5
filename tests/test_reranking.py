"""HybridReranker, MultiStage, selective options, calibration and thresholds: behaviour
checked against hand computations and independent references (scikit-learn's log loss for
calibration, brute force over all thresholds, held-out queries for the fitted weights)."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

import crossrank
from crossrank.datasets import Dataset
from crossrank.evaluation import BM25Stage, RerankStage, evaluate
from crossrank.reranking import (
    Calibrator,
    FieldMatch,
    HybridReranker,
    MultiStage,
    Recency,
    SourceTrust,
    as_reranker,
    expected_calibration_error,
    suggest_threshold,
)

DOCS = ["the cat sat on the mat", "dogs bark loudly", "a cat and a dog", "birds sing", "cat cat cat"]


class RecordingBiEncoder(crossrank.BiEncoder):
    """A BiEncoder that records the ``batch_size`` of every ``encode`` call."""

    def encode(self, sentences, batch_size=32, **kwargs):
        self.batch_sizes = [*getattr(self, "batch_sizes", []), batch_size]
        return super().encode(sentences, batch_size=batch_size, **kwargs)


class RecordingCrossEncoder(crossrank.CrossEncoder):
    """A CrossEncoder that records the ``batch_size`` of every ``predict`` call."""

    def predict(self, sentences, batch_size=32, **kwargs):
        self.batch_sizes = [*getattr(self, "batch_sizes", []), batch_size]
        return super().predict(sentences, batch_size=batch_size, **kwargs)


def minmax(x):
    x = np.asarray(x, dtype=float)
    return (x - x.min()) / (x.max() - x.min()) if x.max() > x.min() else np.ones_like(x)


def test_weighted_sum_by_hand_and_explain():
    length = lambda q, docs: [float(len(d)) for d in docs]  # noqa: E731
    hr = HybridReranker(bm25=True, first_stage=True, signals={"length": length},
                        weights={"bm25": 0.5, "first_stage": 0.2, "length": 0.3})
    got = hr.rerank("cat dog", DOCS, explain=True)
    bm25 = crossrank.BM25(DOCS).score("cat dog", DOCS)
    want = 0.5 * minmax(bm25) + 0.2 * minmax(-np.arange(5)) + 0.3 * minmax([len(d) for d in DOCS])
    assert [r["corpus_id"] for r in got] == sorted(range(5), key=lambda i: (-want[i], i))
    for r in got:
        assert r["score"] == pytest.approx(want[r["corpus_id"]], abs=1e-12)
        assert isinstance(r["score"], float)
        e = r["explanation"]
        assert e["bm25"]["raw"] == pytest.approx(bm25[r["corpus_id"]], rel=1e-6)
        assert sum(s["contribution"] for s in e.values()) == pytest.approx(r["score"], abs=1e-12)
        assert e["length"]["contribution"] == pytest.approx(0.3 * e["length"]["normalized"])
    # As a callable it gives the same scores, so it plugs into the harness and MultiStage.
    np.testing.assert_allclose(hr("cat dog", DOCS), want, atol=1e-12)


def test_rrf_zscore_rank_and_corpus_bm25():
    corpus = crossrank.BM25(DOCS + ["cats everywhere", "the dog"])
    hr = HybridReranker(bm25=corpus, first_stage=True, fusion="rrf", k=10)
    got = {r["corpus_id"]: r["score"] for r in hr.rerank("cat", DOCS)}
    bm25 = corpus.score("cat", DOCS)
    bm25_rank = {d: r for r, d in enumerate(sorted(range(5), key=lambda i: (-bm25[i], i)), 1)}
    for i in range(5):
        assert got[i] == pytest.approx(1 / (10 + bm25_rank[i]) + 1 / (10 + i + 1))
    z = HybridReranker(signals={"a": lambda q, d: [1.0, 2.0, 3.0, 4.0, 6.0]}, normalization="zscore")
    x = np.array([1.0, 2.0, 3.0, 4.0, 6.0])
    np.testing.assert_allclose(z("q", DOCS), (x - x.mean()) / x.std())
    r = HybridReranker(signals={"a": lambda q, d: [5.0, 1.0, 5.0, 0.0, 2.0]}, normalization="rank")
    np.testing.assert_allclose(r("q", DOCS), [1.0, 0.4, 1.0, 0.2, 0.6])


def test_metadata_rules():
    now = datetime(2026, 11, 27, tzinfo=timezone.utc)
    meta = [{"date": (now - timedelta(days=30)).isoformat(), "source": "wiki", "tag": "cats"},
            {"date": now.date(), "source": "forum", "tag": "dogs"},
            {"date": now.timestamp() - 60 * 86400, "source": "unknown", "tag": ["birds", "dog"]}]
    rules = [Recency("date", half_life_days=30, now=now), SourceTrust("source", trust={"wiki": 1.0, "forum": 0.2},
             default=0.5), FieldMatch("tag", weight=2.0)]
    hr = HybridReranker(metadata_rules=rules)
    got = hr.rerank("my dog", DOCS[:3], metadata=meta, explain=True)
    raw = {r["corpus_id"]: r["explanation"]["metadata"]["raw"] for r in got}
    assert raw[0] == pytest.approx((0.5 + 1.0 + 0.0) / 4)
    assert raw[1] == pytest.approx((1.0 + 0.2 + 2.0 * 0.0) / 4)  # "dogs" is not in "my dog"
    assert raw[2] == pytest.approx((0.25 + 0.5 + 2.0 * 1.0) / 4)
    with pytest.raises(ValueError, match="document 1 has no metadata field 'date'"):
        hr.rerank("q", DOCS[:2], metadata=[meta[0], {"source": "wiki"}])
    lenient = HybridReranker(metadata_rules=[Recency("date", now=now, missing=0.0)])
    assert len(lenient.rerank("q", DOCS[:2], metadata=[meta[0], {}])) == 2
    with pytest.raises(ValueError, match="one metadata dict per document"):
        hr.rerank("q", DOCS[:3], metadata=None)
    with pytest.raises(ValueError, match="not an ISO date"):
        HybridReranker(metadata_rules=[Recency("date")]).rerank("q", ["a"], metadata=[{"date": "yesterday"}])
    assert FieldMatch("source", value="wiki").score_document("q", {"source": "wiki"}, 0) == 1.0


def test_bad_weights_signals_and_callables():
    with pytest.raises(ValueError, match="all weights are 0: at least one must count"):
        HybridReranker(bm25=True, weights={"bm25": 0.0})
    with pytest.raises(ValueError, match="finite and >= 0"):
        HybridReranker(bm25=True, weights={"bm25": -1.0})
    with pytest.raises(ValueError, match="finite and >= 0"):
        HybridReranker(bm25=True, weights={"bm25": math.nan})
    with pytest.raises(ValueError, match="unknown signals"):
        HybridReranker(bm25=True, weights={"cross_encoder": 1.0})
    with pytest.raises(ValueError, match="no signals"):
        HybridReranker()
    with pytest.raises(ValueError, match="normalization"):
        HybridReranker(bm25=True, normalization="softmax")
    with pytest.raises(TypeError, match="cross_encoder must be a crossrank.CrossEncoder, got str"):
        HybridReranker(cross_encoder="cross-encoder/ms-marco")
    nan = HybridReranker(signals={"judge": lambda q, d: [math.nan] * len(d)})
    with pytest.raises(ValueError, match="signal 'judge' returned a non-finite score"):
        nan.rerank("q", DOCS)

    def broken(q, d):
        raise RuntimeError("LLM timeout")

    with pytest.raises(RuntimeError, match="LLM timeout"):
        HybridReranker(signals={"judge": broken}).rerank("q", DOCS)
    with pytest.raises(ValueError, match="returned"):
        HybridReranker(signals={"judge": lambda q, d: [1.0]}).rerank("q", DOCS)
    with pytest.raises(TypeError, match="documents must be a list of str, got str"):
        HybridReranker(bm25=True).rerank("q", "not a list")
    assert HybridReranker(bm25=True).rerank("q", []) == []


def test_multistage_order_and_timings():
    first = lambda q, docs: [-float(len(d)) for d in docs]  # noqa: E731  shortest first
    second = lambda q, docs: [float(d.count("cat")) for d in docs]  # noqa: E731
    ms = MultiStage([(first, 4), (second, 2)])
    got = ms.rerank("cat", DOCS)
    head4 = sorted(range(4), key=lambda i: (len(DOCS[i]), i))
    top2 = sorted(head4[:2], key=lambda i: (-DOCS[i].count("cat"), head4.index(i)))
    assert [r["corpus_id"] for r in got] == top2 + head4[2:] + [4]
    assert [r["stage"] for r in got] == [1, 1, 0, 0, None]
    assert got[-1]["score"] is None
    assert len(got.timings) == 2 and all(t >= 0 for t in got.timings.values())
    # N larger than the candidates: every candidate is scored.
    assert [r["stage"] for r in MultiStage([(second, 50)]).rerank("cat", DOCS)] == [0] * 5
    # Any reranker may be a stage, including a HybridReranker and another MultiStage.
    # Stage 0 (the inner cascade) orders all five shortest first; stage 1 re-orders that
    # order's first three by BM25 against their own statistics (min-max keeps the order),
    # ties in stage 0's order; the other two keep stage 0's order and its n - position score.
    nested = MultiStage([(MultiStage([(first, 5)]), 5), (HybridReranker(bm25=True), 3)])
    got = nested.rerank("cat", DOCS)
    shortest = sorted(range(5), key=lambda i: (len(DOCS[i]), i))
    head = shortest[:3]
    bm25 = crossrank.BM25([DOCS[i] for i in head]).score("cat", [DOCS[i] for i in head])
    want = [head[j] for j in sorted(range(3), key=lambda j: (-bm25[j], j))] + shortest[3:]
    assert want == [4, 2, 3, 1, 0]  # differs from the input and from stage 0's order
    assert [r["corpus_id"] for r in got] == want
    assert [r["stage"] for r in got] == [1, 1, 1, 0, 0]
    assert [r["score"] for r in got[:3]] == pytest.approx(sorted(minmax(bm25), reverse=True), abs=1e-12)
    assert [r["score"] for r in got[3:]] == [2.0, 1.0]
    with pytest.raises(ValueError, match="positive integer"):
        MultiStage([(first, 0)])
    with pytest.raises(ValueError, match=r"stages must be a non-empty list of \(model, top_n\) pairs"):
        MultiStage([])
    with pytest.raises(TypeError, match=r"stages\[0\] must be a \(model, top_n\) pair"):
        MultiStage([first])
    with pytest.raises(ValueError, match="non-finite"):
        MultiStage([(lambda q, d: [math.nan] * len(d), 3)]).rerank("q", DOCS)


def test_every_caller_passes_batch_size_and_gets_the_same_scores(minilm_dir, ce_dir):
    """HybridReranker's model signals, MultiStage's stages and evaluation.RerankStage score
    through one dispatcher: each hands its batch_size to encode / predict (HybridReranker's
    bi-encoder signal used to drop it) and all get cosine / predict scores."""
    be, ce = RecordingBiEncoder(str(minilm_dir)), RecordingCrossEncoder(str(ce_dir))
    plain_be = crossrank.BiEncoder(str(minilm_dir))
    d, q = plain_be.encode(DOCS).astype(np.float64), plain_be.encode(["cat"])[0].astype(np.float64)
    cosine = d @ q / (np.linalg.norm(d, axis=1) * np.linalg.norm(q))
    predicted = crossrank.CrossEncoder(str(ce_dir)).predict([("cat", t) for t in DOCS])

    raw = HybridReranker(bi_encoder=be, cross_encoder=ce, batch_size=3).raw_signals("cat", DOCS)
    assert be.batch_sizes == [3, 3] and ce.batch_sizes == [3]  # the query's encode, the documents'
    np.testing.assert_allclose(raw["bi_encoder"], cosine, atol=1e-6)
    np.testing.assert_allclose(raw["cross_encoder"], predicted, rtol=1e-6)

    be.batch_sizes, ce.batch_sizes = [], []
    got = MultiStage([(be, 5), (ce, 3)], batch_size=2).rerank("cat", DOCS)
    assert be.batch_sizes == [2, 2] and ce.batch_sizes == [2]
    for r in got:
        assert r["score"] == pytest.approx((cosine if r["stage"] == 0 else predicted)[r["corpus_id"]], abs=1e-6)

    be.batch_sizes, ce.batch_sizes = [], []
    ids = [f"d{i}" for i in range(len(DOCS))]
    data = Dataset("docs", ids, DOCS, {"q": "cat"}, {"q": {"d4": 1}})
    result = evaluate([BM25Stage(), RerankStage(be, name="dense", batch_size=4),
                       RerankStage(ce, name="ce", input="bm25", batch_size=5)], data, metrics=["ndcg@10"])
    assert be.batch_sizes == [4, 4] and ce.batch_sizes == [5]
    for stage, want in (("dense", cosine), ("ce", predicted)):
        run = result[stage].run["q"]
        assert run and set(run) == set(result["bm25"].run["q"])
        for doc, score in run.items():
            assert score == pytest.approx(want[ids.index(doc)], abs=1e-6), (stage, doc)


def test_selective_options_on_every_reranker(ce_dir):
    ce = crossrank.CrossEncoder(str(ce_dir))
    count = lambda q, docs: [float(d.count("cat")) for d in docs]  # noqa: E731
    for reranker in [as_reranker(count, rerank_top_n=3), HybridReranker(signals={"c": count}, rerank_top_n=3,
                     normalization="none"), MultiStage([(count, 10)], rerank_top_n=3)]:
        got = reranker.rerank("cat", DOCS)
        assert [r["corpus_id"] for r in got] == [0, 2, 1, 3, 4], type(reranker)
        assert [r["score"] for r in got[3:]] == [None, None]
    thresh = as_reranker(count, score_threshold=1.0)
    assert [r["corpus_id"] for r in thresh.rerank("cat", DOCS)] == [4, 0, 2]
    keep = as_reranker(count, score_threshold=10.0, min_keep=2)
    assert [r["corpus_id"] for r in keep.rerank("cat", DOCS)] == [4, 0]
    assert [r["corpus_id"] for r in as_reranker(count).rerank("cat", DOCS, top_k=2)] == [4, 0]
    # A CrossEncoder wrapped: the same order as CrossEncoder.rank on the re-scored head.
    head = as_reranker(ce, rerank_top_n=4).rerank("cat", DOCS)
    assert [r["corpus_id"] for r in head[:4]] == [r["corpus_id"] for r in ce.rank("cat", DOCS[:4])]
    with pytest.raises(ValueError, match="rerank_top_n must be a non-negative integer or None, got -1"):
        as_reranker(count, rerank_top_n=-1)
    with pytest.raises(ValueError, match="score_threshold must be a finite number or None, got nan"):
        as_reranker(count, score_threshold=math.nan)


def test_fit_learns_the_useful_signal_on_held_out_queries():
    rng = random.Random(0)
    queries, candidates, qrels = {}, {}, {}
    for q in range(60):
        qid = f"q{q}"
        queries[qid] = f"query {q}"
        docs = [(f"{qid}-d{i}", f"doc {i}") for i in range(20)]
        candidates[qid] = docs
        qrels[qid] = {d: int(rng.random() < 0.25) for d, _ in docs}
    relevant = {d: r for judged in qrels.values() for d, r in judged.items()}
    ids_of = {}
    for qid, docs in candidates.items():
        for d, _ in docs:
            ids_of.setdefault(qid, []).append(d)

    def oracle(q, texts):  # relevance plus noise: the informative signal
        qid = next(k for k, v in queries.items() if v == q)
        return [relevant[d] + 0.5 * rng.random() for d in ids_of[qid]]

    def noise(q, texts):
        return [rng.random() for _ in texts]

    hr = HybridReranker(signals={"noise": noise, "oracle": oracle}, weights={"noise": 0.9, "oracle": 0.1})
    train = list(queries)[:40]
    test = list(queries)[40:]
    report = hr.fit(({q: queries[q] for q in train}, candidates, qrels), metric="ndcg@10")
    assert report["score"] > report["initial_score"]
    assert hr.weights["oracle"] > hr.weights["noise"]
    assert sum(hr.weights.values()) == pytest.approx(1.0)
    from crossrank.metrics import evaluate

    def run_of(model):
        return {q: {d: float(s) for d, s in zip(ids_of[q], model(queries[q], [t for _, t in candidates[q]]))}
                for q in test}

    learned = evaluate({q: qrels[q] for q in test}, run_of(hr), ["ndcg@10"])["ndcg@10"]
    default = HybridReranker(signals={"noise": noise, "oracle": oracle}, weights={"noise": 0.9, "oracle": 0.1})
    assert learned > evaluate({q: qrels[q] for q in test}, run_of(default), ["ndcg@10"])["ndcg@10"] + 0.1
    with pytest.raises(ValueError, match="metadata"):
        HybridReranker(metadata_rules=[Recency("date")]).fit(({}, {}, {}))
    with pytest.raises(TypeError, match=r"data must be a crossrank.datasets.Dataset or a \(queries, candidates, "
                                        r"qrels\) tuple"):
        hr.fit("cranfield")


def test_calibration_against_sklearn_log_loss():
    import sklearn.metrics as sklearn_metrics
    rng = np.random.default_rng(0)
    scores = rng.normal(0, 3, 3000)
    labels = (rng.random(3000) < 1 / (1 + np.exp(-scores / 3))).astype(int)
    cal = Calibrator.fit(scores, labels, method="temperature")
    t = cal.params["temperature"]
    # The fitted temperature minimizes log loss: nearby temperatures do worse.
    loss = lambda temp: sklearn_metrics.log_loss(labels, 1 / (1 + np.exp(-scores / temp)))  # noqa: E731
    assert loss(t) <= min(loss(t * 0.97), loss(t * 1.03))
    assert t == pytest.approx(3.0, rel=0.15)
    np.testing.assert_allclose(cal.transform(scores), 1 / (1 + np.exp(-scores / t)), rtol=1e-12)
    platt = Calibrator.fit(scores, labels, method="platt")
    a, b = platt.params["a"], platt.params["b"]
    assert a == pytest.approx(1 / 3, rel=0.15) and abs(b) < 0.2
    raw = 1 / (1 + np.exp(-scores))
    before = expected_calibration_error(raw, labels)
    after = expected_calibration_error(platt.transform(scores), labels)
    assert after < before / 2
    # ECE by hand on a tiny case: bins [0, .5) and [.5, 1].
    assert expected_calibration_error([0.2, 0.4, 0.9], [0, 1, 1], bins=2) == pytest.approx(
        2 / 3 * abs(0.3 - 0.5) + 1 / 3 * abs(0.9 - 1.0))
    with pytest.raises(ValueError, match="both"):
        Calibrator.fit([1.0, 2.0], [1, 1])
    with pytest.raises(ValueError, match="0 or 1"):
        Calibrator.fit([1.0, 2.0], [0, 2])
    with pytest.raises(ValueError, match="finite"):
        Calibrator.fit([1.0, math.nan], [0, 1])
    with pytest.raises(ValueError, match="method"):
        Calibrator.fit([1.0, 2.0], [0, 1], method="isotonic")


def test_suggest_threshold_by_brute_force():
    rng = np.random.default_rng(1)
    scores = rng.random(200)
    labels = (rng.random(200) < scores).astype(int)

    def at(t):
        pred = scores >= t
        tp = int(np.sum(pred & (labels == 1)))
        p, r = tp / max(int(pred.sum()), 1), tp / int(labels.sum())
        return p, r, (2 * p * r / (p + r) if tp else 0.0)

    best_f1 = max(at(t)[2] for t in scores)
    got = suggest_threshold(scores, labels, "f1")
    assert got["f1"] == pytest.approx(best_f1) and at(got["threshold"])[2] == pytest.approx(best_f1)
    got = suggest_threshold(scores, labels, "precision>=0.9")
    assert got["precision"] >= 0.9
    assert got["threshold"] == min(t for t in scores if at(t)[0] >= 0.9)
    with pytest.raises(ValueError, match="target"):
        suggest_threshold(scores, labels, "accuracy")
