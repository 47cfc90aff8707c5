"""CrossEncoder(cache_size=N): an LRU of scores keyed by the model and the pair; hits and
misses counted, scores equal to uncached ones, eviction at the bound, safe from 8 threads,
and never a score from another model."""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import crossrank

MAX_LENGTH = 96
# A cached score was computed in another batch than the uncached call's; the CPU engine's
# GEMM blocking differs with the batch's size, by a few ulps.
ATOL = 1e-6


def assert_same(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=0, atol=ATOL)


@pytest.fixture(scope="module")
def uncached(ce_dir):
    return crossrank.CrossEncoder(str(ce_dir), max_length=MAX_LENGTH)


@pytest.fixture(scope="module")
def pairs(cranfield_pairs):
    return cranfield_pairs[:60]


def test_hits_misses_and_equal_scores(ce_dir, uncached, pairs):
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=MAX_LENGTH, cache_size=1000)
    assert ce.cache_info() == {"hits": 0, "misses": 0, "maxsize": 1000, "currsize": 0}
    expected = uncached.predict(pairs)
    assert_same(ce.predict(pairs[:40]), expected[:40])
    assert ce.cache_info() == {"hits": 0, "misses": 40, "maxsize": 1000, "currsize": 40}
    # 30 seen, 20 new; the scores equal the uncached model's.
    assert_same(ce.predict(pairs[10:60]), expected[10:60])
    assert ce.cache_info() == {"hits": 30, "misses": 60, "maxsize": 1000, "currsize": 60}
    # Cached logits serve other activations and rank().
    assert_same(ce.predict(pairs, activation_fn="identity"),
                                  uncached.predict(pairs, activation_fn="identity"))
    query = pairs[0][0]
    docs = [d for q, d in pairs if q == query]
    cached, plain = ce.rank(query, docs), uncached.rank(query, docs)
    assert [r["corpus_id"] for r in cached] == [r["corpus_id"] for r in plain]
    assert_same([r["score"] for r in cached], [r["score"] for r in plain])
    assert ce.cache_info()["misses"] == 60
    ce.cache_clear()
    assert ce.cache_info() == {"hits": 0, "misses": 0, "maxsize": 1000, "currsize": 0}


def test_eviction_at_the_bound(ce_dir, uncached, pairs):
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=MAX_LENGTH, cache_size=10)
    ce.predict(pairs[:25])
    assert ce.cache_info()["currsize"] == 10
    # The 10 most recent are kept; the first is gone.
    ce.predict(pairs[15:25])
    assert ce.cache_info()["hits"] == 10
    ce.predict(pairs[:1])
    info = ce.cache_info()
    assert (info["hits"], info["misses"], info["currsize"]) == (10, 26, 10)
    assert_same(ce.predict(pairs[:25]), uncached.predict(pairs[:25]))


def test_eight_threads(ce_dir, uncached, pairs):
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=MAX_LENGTH, cache_size=50)
    expected = uncached.predict(pairs)
    chunks = [pairs[i % 6 * 10: i % 6 * 10 + 20] for i in range(32)]

    def score(i):
        return i, ce.predict(chunks[i])

    with ThreadPoolExecutor(8) as pool:
        for i, scores in pool.map(score, range(32)):
            start = i % 6 * 10
            assert_same(scores, expected[start:start + len(chunks[i])])
    info = ce.cache_info()
    assert info["hits"] + info["misses"] == sum(len(c) for c in chunks)
    assert info["currsize"] <= 50 and info["hits"] > 0


def test_another_model_never_answers_from_the_cache(ce_dir, pairs):
    a = crossrank.CrossEncoder(str(ce_dir), max_length=MAX_LENGTH, cache_size=100)
    b = crossrank.CrossEncoder(str(ce_dir), max_length=32, cache_size=100)
    sa, sb = a.predict(pairs), b.predict(pairs)
    assert b.cache_info()["hits"] == 0
    assert not np.allclose(sa, sb, atol=1e-4)
    # Long-document options are part of the key.
    windows = crossrank.CrossEncoder(str(ce_dir), max_length=MAX_LENGTH, long_document="max", stride=16,
                                     cache_size=100)
    assert_same(windows.predict(pairs), crossrank.CrossEncoder(
        str(ce_dir), max_length=MAX_LENGTH, long_document="max", stride=16).predict(pairs))


def test_no_cache_by_default_and_pickling(ce_dir, uncached):
    assert uncached.cache_info() is None
    uncached.cache_clear()  # a no-op
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=MAX_LENGTH, cache_size=7)
    again = pickle.loads(pickle.dumps(ce))
    assert again.cache_info() == {"hits": 0, "misses": 0, "maxsize": 7, "currsize": 0}
    assert crossrank.CrossEncoder(str(ce_dir), cache_size=0).cache_info() is None


@pytest.mark.parametrize("value, error, message", [
    (-1, ValueError, r"cache_size must be >= 0, got -1"),
    ("100", TypeError, r"cache_size must be an int or None, got str"),
    (1.5, TypeError, r"cache_size must be an int or None, got float"),
    (True, TypeError, r"cache_size must be an int or None, got bool"),
])
def test_bad_cache_size(ce_dir, value, error, message):
    with pytest.raises(error, match=message):
        crossrank.CrossEncoder(str(ce_dir), cache_size=value)
