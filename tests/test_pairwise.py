"""PairwiseReranker: a known comparator's total order is recovered by all-pairs (sum and
Copeland) and by sorting, with the comparison counts each method promises; a duo
cross-encoder's P(a > b) equals PyTorch on the same input, including truncation."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import crossrank
from crossrank import PairwiseReranker
from crossrank.reranking import MultiStage, aggregate_preferences, sort_by_preference


def merge_sort_bound(n: int) -> int:
    """Worst-case comparisons of top-down merge sort."""
    if n <= 1:
        return 0
    c = math.ceil(math.log2(n))
    return n * c - 2**c + 1


class Known:
    """A comparator that knows each document's relevance (its number) and counts calls."""

    def __init__(self, noise: float = 0.0):
        self.calls, self.noise = 0, noise

    def __call__(self, query: str, a: str, b: str) -> float:
        self.calls += 1
        ra, rb = int(a.split()[-1]), int(b.split()[-1])
        return 0.5 if ra == rb else (1.0 - self.noise if ra > rb else self.noise)


def documents(n: int, seed: int) -> list[str]:
    relevance = list(range(n))
    random.Random(seed).shuffle(relevance)
    return [f"document {r}" for r in relevance]


def true_order(docs: list[str]) -> list[int]:
    return sorted(range(len(docs)), key=lambda i: -int(docs[i].split()[-1]))


@pytest.mark.parametrize("aggregation", ["sum", "copeland"])
def test_allpairs_recovers_the_order_with_n_times_n_minus_1_comparisons(aggregation):
    docs = documents(12, seed=1)
    known = Known(noise=0.1)
    ranking = PairwiseReranker(known, method="allpairs", aggregation=aggregation).rerank("q", docs)
    assert [r["corpus_id"] for r in ranking] == true_order(docs)
    assert ranking.comparisons == known.calls == 12 * 11
    assert all(isinstance(r["score"], float) for r in ranking)
    # sum: a document beating k others with p = 0.9 and losing to the rest with p = 0.1.
    top = ranking[0]["score"]
    assert top == pytest.approx(11 * 0.9 if aggregation == "sum" else 11.0)


@pytest.mark.parametrize("n", [1, 2, 7, 16, 33])
@pytest.mark.parametrize("both_orders", [True, False])
def test_sort_recovers_the_order_within_n_log_n(n, both_orders):
    docs = documents(n, seed=n)
    known = Known()
    ranking = PairwiseReranker(known, method="sort", both_orders=both_orders).rerank("q", docs)
    assert [r["corpus_id"] for r in ranking] == true_order(docs)
    per_decision = 2 if both_orders else 1
    assert ranking.comparisons == known.calls
    assert ranking.comparisons <= per_decision * merge_sort_bound(n)
    if n > 2:
        assert ranking.comparisons < n * (n - 1), "fewer than all pairs"
    assert [r["score"] for r in ranking] == [float(n - k) for k in range(n)]


def test_both_orders_cancels_a_position_bias():
    """A comparator that leans towards whichever document comes first (+0.3) inverts
    close calls; asking both orders and averaging removes the lean."""
    def biased(query, a, b):
        ra, rb = int(a.split()[-1]), int(b.split()[-1])
        return min(1.0, 0.5 + 0.1 * np.sign(ra - rb) + 0.3)

    docs = documents(9, seed=3)
    fair = PairwiseReranker(biased, method="sort", both_orders=True).rerank("q", docs)
    assert [r["corpus_id"] for r in fair] == true_order(docs)
    lean = PairwiseReranker(biased, method="sort", both_orders=False).rerank("q", docs)
    assert [r["corpus_id"] for r in lean] != true_order(docs)


def test_aggregation_equals_numpy():
    rng = np.random.default_rng(0)
    p = rng.random((9, 9))
    np.fill_diagonal(p, 0.0)
    off = ~np.eye(9, dtype=bool)
    np.testing.assert_allclose(aggregate_preferences(p, "sum"), (p * off).sum(1), rtol=1e-12)
    want = np.where(off, np.sign(p - p.T), 0).sum(1)
    np.testing.assert_array_equal(aggregate_preferences(p, "copeland"), want)
    with pytest.raises(ValueError, match="square"):
        aggregate_preferences(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="probability"):
        aggregate_preferences(np.array([[0.0, 1.5], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="aggregation"):
        aggregate_preferences(p, "borda")


def test_sort_by_preference_is_stable_and_checks_its_comparator():
    order, count = sort_by_preference(6, lambda a, b: False)  # all ties: input order
    assert order == list(range(6)) and count <= merge_sort_bound(6)
    with pytest.raises(TypeError, match="bool"):
        sort_by_preference(3, lambda a, b: "yes")
    def no_preference(a, b):
        raise KeyError(f"no preference for {a} and {b}")

    with pytest.raises(KeyError, match="no preference for"):  # the comparator's own error, unchanged
        sort_by_preference(3, no_preference)
    with pytest.raises(ValueError, match="n must be >= 0, got -1"):
        sort_by_preference(-1, lambda a, b: True)


def test_selective_and_as_a_multistage_stage():
    docs = documents(10, seed=5)
    known = Known()
    ranking = PairwiseReranker(known, rerank_top_n=4).rerank("q", docs)
    assert ranking.comparisons == 4 * 3
    assert [r["corpus_id"] for r in ranking[:4]] == true_order(docs[:4])
    assert [r["corpus_id"] for r in ranking[4:]] == list(range(4, 10))
    assert all(r["score"] is None for r in ranking[4:])
    # First stage: length (all equal) keeps input order; the pairwise stage sorts the top 5.
    cascade = MultiStage([(lambda q, d: [0.0] * len(d), 10), (PairwiseReranker(Known(), method="sort"), 5)])
    got = [r["corpus_id"] for r in cascade.rerank("q", docs)]
    assert got[:5] == true_order(docs[:5]) and got[5:] == list(range(5, 10))


@pytest.mark.parametrize("bad, error, match", [
    (lambda q, a, b: float("nan"), ValueError, "probability"),
    (lambda q, a, b: 1.5, ValueError, "probability"),
    (lambda q, a, b: "0.5", TypeError, "float"),
    (lambda q, a, b: None, TypeError, "float"),
])
def test_bad_comparators(bad, error, match):
    for method in ("allpairs", "sort"):
        with pytest.raises(error, match=match):
            PairwiseReranker(bad, method=method).rerank("q", ["a", "b", "c"])


def test_bad_arguments():
    def raises(q, a, b):
        raise RuntimeError("judge is down")

    with pytest.raises(RuntimeError, match="judge is down"):
        PairwiseReranker(raises).rerank("q", ["a", "b"])
    with pytest.raises(TypeError, match="comparator"):
        PairwiseReranker(42)
    with pytest.raises(ValueError, match="method"):
        PairwiseReranker(Known(), method="bubble")
    with pytest.raises(ValueError, match="aggregation"):
        PairwiseReranker(Known(), aggregation="borda")
    with pytest.raises(ValueError, match="batch_size"):
        PairwiseReranker(Known(), batch_size=0)
    assert PairwiseReranker(Known()).rerank("q", []) == []
    assert PairwiseReranker(Known()).rerank("q", ["only one"])[0]["corpus_id"] == 0


# --- a duo cross-encoder --------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf(ce_dir):
    tok = AutoTokenizer.from_pretrained(str(ce_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(ce_dir)).eval()
    return tok, model


def torch_probability(model, ids, type_ids):
    with torch.no_grad():
        logit = model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([type_ids]),
                      attention_mask=torch.ones(1, len(ids), dtype=torch.long)).logits[0, 0]
    return float(torch.sigmoid(logit))


def test_compare_equals_torch_on_the_duo_input(ce_dir, hf, cranfield):
    tok, model = hf
    queries, corpus = cranfield
    query = queries[0]["text"]
    texts = [d["text"][:200] for d in corpus[:4]]
    pairs = [(a, b) for a in texts for b in texts if a != b]
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=256)
    got = ce.compare(query, pairs)
    for (a, b), p in zip(pairs, got):
        enc = tok(query, f"{a} [SEP] {b}")  # short: no truncation
        assert enc["input_ids"].count(tok.sep_token_id) == 3
        assert p == pytest.approx(torch_probability(model, enc["input_ids"], enc["token_type_ids"]), abs=1e-5)
    assert got.dtype == np.float64 and ((got > 0) & (got < 1)).all()


def test_compare_truncates_both_documents_longest_first(ce_dir, hf, cranfield):
    tok, model = hf
    queries, corpus = cranfield
    query = queries[1]["text"]
    long_a = " ".join(d["text"] for d in corpus[:3])
    short_b, long_b = corpus[5]["text"][:80], " ".join(d["text"] for d in corpus[3:6])
    max_length = 96
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=max_length)
    q = tok.encode(query, add_special_tokens=False)[: max_length // 2]
    budget = max_length - 4 - len(q)
    for a, b in [(long_a, long_b), (long_a, short_b), (short_b, long_a)]:
        ta, tb = tok.encode(a, add_special_tokens=False), tok.encode(b, add_special_tokens=False)
        # tokenizers' LongestFirst: cut only the longer one if that suffices, else both to
        # half, the longer (b on a tie) keeping the odd token.
        if len(ta) + len(tb) > budget:
            short, long = sorted((len(ta), len(tb)))
            keep_short, keep_long = (short, budget - short) if short <= budget // 2 else \
                (budget // 2, budget - budget // 2)
            keep_a, keep_b = (keep_long, keep_short) if len(ta) > len(tb) else (keep_short, keep_long)
            ta, tb = ta[:keep_a], tb[:keep_b]
        ids = [tok.cls_token_id, *q, tok.sep_token_id, *ta, tok.sep_token_id, *tb, tok.sep_token_id]
        type_ids = [0] * (len(q) + 2) + [1] * (len(ta) + len(tb) + 2)
        assert len(ids) == max_length
        want = torch_probability(model, ids, type_ids)
        assert ce.compare(query, [(a, b)])[0] == pytest.approx(want, abs=1e-5)


def test_pairwise_reranker_with_a_duo_cross_encoder(ce_dir, cranfield):
    queries, corpus = cranfield
    query, docs = queries[2]["text"], [d["text"][:300] for d in corpus[10:15]]
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=256)
    ranking = PairwiseReranker(ce, method="allpairs").rerank(query, docs)
    pairs = [(a, b) for a in range(5) for b in range(5) if a != b]
    p = ce.compare(query, [(docs[a], docs[b]) for a, b in pairs])
    want = np.zeros(5)
    for (a, _), v in zip(pairs, p):
        want[a] += v
    assert ranking.comparisons == 20
    assert [r["corpus_id"] for r in ranking] == sorted(range(5), key=lambda i: (-want[i], i))
    assert [r["score"] for r in ranking] == pytest.approx(sorted(want, reverse=True), abs=1e-9)
    sorted_ranking = PairwiseReranker(ce, method="sort").rerank(query, docs)
    assert sorted_ranking.comparisons <= 2 * merge_sort_bound(5)


def test_compare_refuses_bad_input(ce_dir, ce_multilabel_dir):
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=64)
    with pytest.raises(TypeError, match=r"pairs must be a list of \(a, b\) document pairs, got a single pair"):
        ce.compare("q", ("a", "b"))
    with pytest.raises(TypeError, match="query must be str, got int"):
        ce.compare(3, [("a", "b")])
    with pytest.raises(ValueError, match="labels"):
        crossrank.CrossEncoder(str(ce_multilabel_dir)).compare("q", [("a", "b")])
    assert ce.compare("q", []).shape == (0,)
    assert np.isfinite(ce.compare("word " * 300, [("a " * 100, "b " * 100)])).all()
