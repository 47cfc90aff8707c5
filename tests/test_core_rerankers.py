"""HybridReranker, MultiStage and PairwiseReranker run in the Rust core
(``crossrank._core``): their results equal an independent computation from the models
alone, crossrank's models keep the options they were built with, Python stages and
comparators are called back with their exceptions passed through unchanged, and the core
objects pickle as their arguments."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import crossrank
from crossrank import _core
from crossrank.reranking import HybridReranker, MultiStage, PairwiseReranker


@pytest.fixture(scope="module")
def candidates(cranfield):
    queries, corpus = cranfield
    return queries[2]["text"], [d["text"] for d in corpus[:30]]


class JudgeFailed(Exception):
    pass


def _order(scores) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def test_multistage_equals_the_cascade_computed_by_hand(ce, be, candidates):
    query, docs = candidates
    ranking = MultiStage([(be, 20), (ce, 5)]).rerank(query, docs)
    # Stage 0 re-scores the first 20 in input order; stage 1 the best 5 of those.
    cos = be.similarity(be.encode([query]), be.encode(docs[:20]))[0]
    first = _order(cos)
    ce_scores = ce.predict([(query, docs[i]) for i in first[:5]])
    best = [first[j] for j in _order(ce_scores)]
    assert [r["corpus_id"] for r in ranking] == best + first[5:] + list(range(20, 30))
    assert [r["stage"] for r in ranking] == [1] * 5 + [0] * 15 + [None] * 10
    np.testing.assert_allclose([r["score"] for r in ranking[:5]], sorted(ce_scores, reverse=True), atol=1e-6)
    np.testing.assert_allclose([r["score"] for r in ranking[5:20]], cos[first[5:]], atol=1e-6)
    assert list(ranking.timings) == ["stage 0 (BiEncoder, top 20)", "stage 1 (CrossEncoder, top 5)"]


def test_a_models_long_document_mode_holds_in_every_reranker(ce_dir, candidates):
    """The core scores with the options the model was built with (here windows over long
    documents, max-pooled), not with defaults."""
    query, docs = candidates
    long_docs = [" ".join([d] * 6) for d in docs[:8]]
    windows = crossrank.CrossEncoder(str(ce_dir), max_length=64, long_document="max", stride=16)
    want = windows.predict([(query, d) for d in long_docs])
    truncated = crossrank.CrossEncoder(str(ce_dir), max_length=64).predict([(query, d) for d in long_docs])
    assert np.abs(want - truncated).max() > 1e-3, "the fixture must tell the two modes apart"

    raw = HybridReranker(cross_encoder=windows).raw_signals(query, long_docs)
    np.testing.assert_allclose(raw["cross_encoder"], want, atol=1e-6)
    ranking = MultiStage([(windows, 8)]).rerank(query, long_docs)
    np.testing.assert_allclose([r["score"] for r in ranking], sorted(want, reverse=True), atol=1e-6)


def test_python_stages_signals_and_comparators_are_called_back(ce, candidates):
    query, docs = candidates
    seen = []

    def by_length(q, documents):
        seen.append((q, list(documents)))
        return [float(len(d)) for d in documents]

    ranking = MultiStage([(by_length, 10), (ce, 3)]).rerank(query, docs)
    assert seen == [(query, docs[:10])]
    assert [r["stage"] for r in ranking[:4]] == [1, 1, 1, 0]
    raw = HybridReranker(cross_encoder=ce, signals={"length": by_length}).raw_signals(query, docs[:6])
    np.testing.assert_allclose(raw["length"], [len(d) for d in docs[:6]])

    judge = PairwiseReranker(lambda q, a, b: float(len(a) > len(b)), method="sort", both_orders=False)
    lengths = [len(d) for d in docs[:7]]
    got = [r["corpus_id"] for r in judge.rerank(query, docs[:7])]
    assert [lengths[i] for i in got] == sorted(lengths, reverse=True)


def test_exceptions_from_python_pass_through_unchanged(ce, candidates):
    query, docs = candidates

    def judge(*_):
        raise JudgeFailed("the judge is out")

    for reranker in (MultiStage([(ce, 10), (judge, 3)]), HybridReranker(cross_encoder=ce, signals={"j": judge}),
                     PairwiseReranker(judge)):
        with pytest.raises(JudgeFailed, match="the judge is out"):
            reranker.rerank(query, docs[:10])


@pytest.mark.parametrize("returned, error, match", [
    ("abc", TypeError, "must return one number per document, got str"),
    ([[1.0, 2.0]] * 4, TypeError, "must return one number per document, got list"),
    ([1.0, 2.0], ValueError, "stage 0 returned 2 scores for 4 documents"),
    ([1.0, float("nan"), 0.0, 0.0], ValueError, r"stage 0 returned a non-finite score \(NaN\) for document 1"),
])
def test_what_a_python_stage_returns_is_checked(returned, error, match):
    def stage(q, documents):
        return returned

    stage.__name__ = "my_stage"
    with pytest.raises(error, match=match):
        MultiStage([(stage, 10)]).rerank("q", ["a", "b", "c", "d"])


def test_bad_core_arguments_are_named(ce):
    with pytest.raises(TypeError, match=r"stages\[0\] must be a \(model, top_n, label\) triple"):
        _core.MultiStage([(ce, 3)])
    with pytest.raises(ValueError, match=r"stages\[0\]: top_n must be a positive integer, got 0"):
        _core.MultiStage([(ce, 0, "ce")])
    with pytest.raises(TypeError, match="must be a CrossEncoder, BiEncoder, Reranker or callable"):
        _core.MultiStage([(42, 3, "int")])
    with pytest.raises(ValueError, match='unknown method "best"'):
        _core.PairwiseReranker(ce, method="best")
    with pytest.raises(ValueError, match="weights name"):
        _core.HybridReranker([("bm25", "minmax", 1.0)], cross_encoder=ce)
    with pytest.raises(ValueError, match="signal names repeat"):
        _core.HybridReranker([("x", "minmax", 1.0)], scorers=[("x", len)], given=["x"])
    hybrid = _core.HybridReranker([("first_stage", "none", 1.0)], given=["first_stage"])
    with pytest.raises(ValueError, match="signal 'first_stage' needs its values"):
        hybrid.rerank("q", ["a", "b"])
    with pytest.raises(ValueError, match="not a given signal"):
        hybrid.rerank("q", ["a", "b"], given={"first_stage": [1.0, 0.0], "other": [0.0, 0.0]})


def test_setting_weights_rebuilds_the_core(ce, candidates):
    query, docs = candidates
    hybrid = HybridReranker(cross_encoder=ce, bm25=True)
    raw = hybrid.raw_signals(query, docs)
    hybrid.weights = {"bm25": 1.0}
    got = [r["corpus_id"] for r in hybrid.rerank(query, docs)]
    assert got == _order(raw["bm25"])
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
        hybrid.weights = {"bm25": -1.0}


def test_core_rerankers_pickle_as_their_arguments(ce, be, candidates):
    query, docs = candidates
    for reranker in (HybridReranker(cross_encoder=ce, bi_encoder=be, bm25=True, signals={"len": len_signal}),
                     MultiStage([(be, 10), (ce, 4)]), PairwiseReranker(ce, method="sort")):
        copy = pickle.loads(pickle.dumps(reranker))
        a, b = reranker.rerank(query, docs[:10]), copy.rerank(query, docs[:10])
        assert [r["corpus_id"] for r in a] == [r["corpus_id"] for r in b]


def len_signal(query, documents):
    return [float(len(d)) for d in documents]
