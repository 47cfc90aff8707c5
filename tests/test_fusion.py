"""crossrank.fusion (reciprocal rank fusion, weighted sum of min-max normalized scores)
against the formulas written out in Python, and HybridRetriever against them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crossrank import BM25, HybridRetriever
from crossrank.fusion import fuse, reciprocal_rank_fusion, weighted_sum_fusion


def as_ranked(run) -> list:
    """A run as its documents best first: dicts by score (ties by id), pairs as given."""
    if isinstance(run, dict):
        return [d for d, _ in sorted(run.items(), key=lambda kv: (-kv[1], kv[0]))]
    return list(run[0])


def as_scored(run) -> list[tuple]:
    if isinstance(run, dict):
        return list(run.items())
    return list(zip(run[0], run[1]))


def best_first(fused: dict) -> list[tuple]:
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def rrf_by_hand(runs, k=60.0, weights=None) -> list[tuple]:
    weights = weights or [1.0] * len(runs)
    fused: dict = {}
    for run, w in zip(runs, weights):
        for rank, doc in enumerate(as_ranked(run), start=1):
            fused[doc] = fused.get(doc, 0.0) + w / (k + rank)
    return best_first(fused)


def weighted_by_hand(runs, weights=None) -> list[tuple]:
    weights = weights or [1.0] * len(runs)
    fused: dict = {}
    for run, w in zip(runs, weights):
        pairs = as_scored(run)
        if not pairs:
            continue
        lo, hi = min(s for _, s in pairs), max(s for _, s in pairs)
        for doc, s in pairs:
            fused[doc] = fused.get(doc, 0.0) + w * ((s - lo) / (hi - lo) if hi > lo else 1.0)
    return best_first(fused)


def assert_fused(got: dict, want: list[tuple]) -> None:
    """Same documents in the same order (the dict is best first), scores to 1e-12."""
    assert [d for d, _ in got.items()] == [d for d, _ in want]
    for (_, a), (_, b) in zip(got.items(), want):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-15)


RUNS = [
    {"a": 12.5, "b": 7.0, "c": 3.25, "d": -1.0},
    {"c": 0.9, "e": 0.8, "a": 0.1},
    (["e", "f", "b"], [3.0, 2.0, 1.0]),
]


@pytest.mark.parametrize("k", [60.0, 0.0, 1.5])
@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 0.5], [0.0, 1.0, 3.0]])
def test_rrf_equals_the_formula(k, weights):
    """score(d) = sum_i w_i / (k + rank_i(d)); a document missing from a run gets nothing
    from it; the result is best first."""
    got = reciprocal_rank_fusion(RUNS, k=k, weights=weights)
    assert_fused(got, rrf_by_hand(RUNS, k, weights))
    assert_fused(fuse(RUNS, "rrf", k, weights), rrf_by_hand(RUNS, k, weights))


@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 0.5], [0.0, 0.0, 1.0]])
def test_weighted_sum_equals_the_formula(weights):
    """score(d) = sum_i w_i * (s - min_i) / (max_i - min_i); missing documents add nothing."""
    got = weighted_sum_fusion(RUNS, weights=weights)
    assert_fused(got, weighted_by_hand(RUNS, weights))
    assert_fused(fuse(RUNS, "weighted", weights=weights), weighted_by_hand(RUNS, weights))


def test_weighted_sum_of_a_constant_run_is_one():
    """A run whose scores are all equal normalizes every document to 1; an empty run adds
    nothing."""
    got = weighted_sum_fusion([{"x": 4.0, "y": 4.0}, {"y": 10.0, "z": 0.0}, {}], weights=[2.0, 1.0, 5.0])
    assert got == {"y": 3.0, "x": 2.0, "z": 0.0}
    assert list(got) == ["y", "x", "z"]


def test_pairs_keep_their_order_and_dicts_are_ranked_by_score():
    """An (ids, scores) pair is taken in its order whatever its scores; a dict is ranked by
    score whatever its insertion order, equal scores by id."""
    pair = (["c", "a", "b"], [0.1, 0.9, 0.5])
    assert list(reciprocal_rank_fusion([pair], k=0)) == ["c", "a", "b"]
    assert reciprocal_rank_fusion([pair], k=0) == {"c": 1.0, "a": 0.5, "b": 1 / 3}
    forward = {"c": 0.1, "a": 0.9, "b": 0.5, "d": 0.5}
    backward = dict(reversed(list(forward.items())))
    for run in (forward, backward):
        got = reciprocal_rank_fusion([run], k=0)
        assert list(got) == ["a", "b", "d", "c"]
        assert got["b"] == 0.5 and got["d"] == pytest.approx(1 / 3)


def test_equal_fused_scores_are_ordered_by_id():
    """Documents with equal fused scores come out by ascending id (str and int alike)."""
    runs = [(["z", "m"], [1.0, 0.0]), (["a", "q"], [1.0, 0.0])]
    assert list(reciprocal_rank_fusion(runs)) == ["a", "z", "m", "q"]
    assert list(weighted_sum_fusion(runs)) == ["a", "z", "m", "q"]
    int_runs = [([9, 4], [1.0, 0.5]), ([2, 7], [3.0, 1.0])]
    assert list(reciprocal_rank_fusion(int_runs)) == [2, 9, 4, 7]


def test_numpy_int_ids_from_search_work():
    """Positions as an int64 array (what search returns without ids) fuse like Python ints,
    and come back as Python ints."""
    runs = [
        (np.array([3, 1, 4], dtype=np.int64), np.array([0.9, 0.5, 0.1], dtype=np.float32)),
        (np.array([4, 3], dtype=np.int32), np.array([2.0, 1.0])),
    ]
    plain = [([3, 1, 4], runs[0][1].tolist()), ([4, 3], [2.0, 1.0])]
    for fn in (reciprocal_rank_fusion, weighted_sum_fusion):
        got = fn(runs)
        assert got == fn(plain)
        assert all(type(key) is int for key in got)
    assert_fused(reciprocal_rank_fusion(runs), rrf_by_hand(plain))
    assert_fused(weighted_sum_fusion(runs), weighted_by_hand(plain))


@pytest.mark.parametrize(
    "weights, message",
    [([-1.0, 1.0, 1.0], "weight of run 0 is -1; weights must be finite and >= 0"),
     ([1.0, math.nan, 1.0], "weight of run 1 is NaN; weights must be finite and >= 0"),
     ([1.0, 1.0, math.inf], "weight of run 2 is inf; weights must be finite and >= 0"),
     ([0.0, 0.0, 0.0], "all weights are 0: at least one must count"),
     ([1.0, 1.0], "got 2 weights for 3 runs"),
     ([1.0, 1.0, 1.0, 1.0], "got 4 weights for 3 runs")],
    ids=["negative", "nan", "inf", "all-zero", "too-few", "too-many"],
)
def test_bad_weights(weights, message):
    """Negative, non-finite, all-zero weights or a wrong count are ValueErrors everywhere."""
    with pytest.raises(ValueError, match=message):
        reciprocal_rank_fusion(RUNS, weights=weights)
    with pytest.raises(ValueError, match=message):
        weighted_sum_fusion(RUNS, weights=weights)
    for method in ("rrf", "weighted"):
        with pytest.raises(ValueError, match=message):
            fuse(RUNS, method, weights=weights)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_scores(bad):
    """A NaN or infinite score, in a dict or a pair, is a ValueError for both methods."""
    message = rf"document .*b.* has score {'NaN' if math.isnan(bad) else bad}; scores must be finite"
    for run in ({"a": 1.0, "b": bad}, (["a", "b"], [1.0, bad])):
        with pytest.raises(ValueError, match=message):
            weighted_sum_fusion([{"x": 1.0}, run])
        with pytest.raises(ValueError, match=message):
            reciprocal_rank_fusion([{"x": 1.0}, run])


def test_bad_runs_and_parameters():
    """No runs: ValueError; a dict or str instead of a list, or a bad run: TypeError;
    mismatched pair lengths, a negative / NaN k or an unknown method: ValueError."""
    for fn in (reciprocal_rank_fusion, weighted_sum_fusion):
        with pytest.raises(ValueError, match="empty"):
            fn([])
        with pytest.raises(TypeError, match="runs must be a list of runs"):
            fn({"a": 1.0})
        with pytest.raises(TypeError, match="runs must be a list of runs"):
            fn("ab")
        with pytest.raises(TypeError, match=r"runs\[0\] must be a \{id: score\} dict or an \(ids, scores\) pair, "
                                            r"got int"):
            fn([42])
        with pytest.raises(TypeError, match="document ids must be str or int, got float"):
            fn([{1.5: 1.0}])
        with pytest.raises(ValueError, match=r"runs\[0\]: 2 ids but 1 scores"):
            fn([(["a", "b"], [1.0])])
    with pytest.raises(ValueError, match="runs is empty"):
        fuse([], "rrf")
    for k, shown in ((-1.0, "-1"), (math.nan, "NaN"), (math.inf, "inf")):
        with pytest.raises(ValueError, match=f"k must be a finite number >= 0, got {shown}"):
            reciprocal_rank_fusion(RUNS, k=k)
    with pytest.raises(ValueError, match="method"):
        fuse(RUNS, "borda")


def test_fuse_accepts_tuples_and_numpy_weights():
    """fuse takes any sequence of runs and any sequence of weights."""
    weights = np.array([1.0, 2.0, 0.5])
    assert_fused(fuse(tuple(RUNS), "rrf", 10, weights), rrf_by_hand(RUNS, 10.0, [1.0, 2.0, 0.5]))
    assert_fused(fuse(tuple(RUNS), "weighted", weights=weights), weighted_by_hand(RUNS, [1.0, 2.0, 0.5]))


CORPUS = [
    "the boundary layer of a flat plate",
    "boundary layer transition at mach 2",
    "heat transfer in the laminar boundary layer",
    "shock wave boundary layer interaction",
    "supersonic flow past a cone",
    "flat plate heat transfer at high mach",
    "transition of the laminar layer",
]
QUERIES = ["boundary layer", "flat plate heat", "mach transition", "cone", "nothing matches"]


@pytest.mark.parametrize("with_ids", [False, True])
@pytest.mark.parametrize(
    "options",
    [dict(), dict(k=5.0, weights=[2.0, 1.0], depth=3), dict(method="weighted", weights=[1.0, 3.0], depth=4)],
    ids=["rrf", "rrf-weighted-depth", "weighted"],
)
def test_hybrid_equals_fusion_of_its_retrievers(with_ids, options):
    """HybridRetriever's result is the fusion of each retriever's top-`depth` results, cut
    at top_k, with the retrievers' ids (or positions as int64)."""
    ids = [f"doc{i}" for i in range(len(CORPUS))] if with_ids else None
    first = BM25(CORPUS, ids=ids, k1=0.9, b=0.4)
    second = BM25(CORPUS, ids=ids, k1=2.0, b=1.0, stopwords="english", stemmer="english")
    hybrid = HybridRetriever(first, second, **options)
    depth = options.get("depth", 100)
    method = options.get("method", "rrf")
    for top_k in (1, 3, 10):
        batch = hybrid.search_batch(QUERIES, top_k=top_k)
        for query, (got_ids, got_scores) in zip(QUERIES, batch):
            runs = [first.search(query, top_k=max(depth, top_k)), second.search(query, top_k=max(depth, top_k))]
            want = list(fuse(runs, method, options.get("k", 60.0), options.get("weights")).items())[:top_k]
            assert list(got_ids) == [d for d, _ in want]
            np.testing.assert_allclose(got_scores, [s for _, s in want], rtol=1e-6)
            assert got_scores.dtype == np.float32
            if want and not with_ids:
                assert got_ids.dtype == np.int64
            single_ids, single_scores = hybrid.search(query, top_k=top_k)
            assert list(single_ids) == list(got_ids)
            np.testing.assert_array_equal(single_scores, got_scores)


def test_hybrid_bad_arguments():
    """One retriever, depth <= 0, top_k <= 0, a str batch or bad weights are refused."""
    bm25 = BM25(CORPUS)
    with pytest.raises(ValueError, match="HybridRetriever needs at least two retrievers"):
        HybridRetriever(bm25)
    with pytest.raises(ValueError, match="depth must be a positive integer, got 0"):
        HybridRetriever(bm25, bm25, depth=0)
    with pytest.raises(ValueError, match="weight of run 1 is -1; weights must be finite and >= 0"):
        HybridRetriever(bm25, bm25, weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="method must be 'rrf' or 'weighted', got 'borda'"):
        HybridRetriever(bm25, bm25, method="borda")
    hybrid = HybridRetriever(bm25, bm25)
    with pytest.raises(ValueError, match="top_k must be a positive integer, got 0"):
        hybrid.search("boundary", top_k=0)
    with pytest.raises(TypeError, match="queries must be a list of str, not a single str"):
        hybrid.search_batch("boundary")
    with pytest.raises(TypeError, match="query must be a str, got NoneType"):
        hybrid.search(None)
