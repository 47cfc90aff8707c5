"""Training examples from judgments: positives are exactly the judged-relevant documents,
hard negatives come from the first stage's top and are never judged relevant, splits are
seeded and disjoint, and bad examples are refused."""

from __future__ import annotations

import pytest

import crossrank
from crossrank.datasets import Dataset, load_beir
from crossrank.training_data import check_pairs, mine_examples, split_queries

from conftest import DATA


@pytest.fixture(scope="module")
def cranfield_data() -> Dataset:
    return load_beir(DATA / "cranfield")


def test_split_is_seeded_disjoint_and_complete(cranfield_data):
    train, test = split_queries(cranfield_data, n_train=150, seed=0)
    again, _ = split_queries(cranfield_data, n_train=150, seed=0)
    other, _ = split_queries(cranfield_data, n_train=150, seed=1)
    assert len(train.queries) == 150 and len(test.queries) == 75
    assert not set(train.queries) & set(test.queries)
    assert set(train.queries) | set(test.queries) == set(cranfield_data.queries)
    assert list(train.queries) == list(again.queries) and set(other.queries) != set(train.queries)
    with pytest.raises(ValueError, match="n_train"):
        split_queries(cranfield_data, n_train=225)


@pytest.mark.parametrize("method", ["bm25", "dense", None])
def test_positives_are_the_judged_relevant_and_negatives_are_not(cranfield_data, minilm_dir, method):
    train, _ = split_queries(cranfield_data, n_train=40, seed=0)
    bi = crossrank.BiEncoder(str(minilm_dir)) if method == "dense" else None
    examples = mine_examples(train, hard_negatives=method, negatives_per_query=5, depth=20, bi_encoder=bi)
    assert len(examples) + examples.skipped_queries == 40
    bm25 = crossrank.BM25(train.doc_texts, ids=train.doc_ids)
    for qid, query in train.queries.items():
        if query not in examples.queries:
            continue
        k = examples.queries.index(query)
        relevant = {train.text(d) for d, rel in train.qrels[qid].items() if rel >= 1 and train.text(d).strip()}
        assert "" not in examples.negatives[k], "empty documents are left out"
        assert set(examples.positives[k]) == relevant
        assert len(examples.negatives[k]) == 5 and not set(examples.negatives[k]) & relevant
        if method == "bm25":  # hard: from BM25's top 20
            top = {train.text(d) for d in bm25.search(query, top_k=20)[0]}
            assert set(examples.negatives[k]) <= top
    pairs = examples.pairs()
    assert sum(label for *_, label in pairs) == sum(map(len, examples.positives))
    assert all(len(neg) == 5 for _, _, neg in examples.groups())
    assert mine_examples(train, hard_negatives=method, negatives_per_query=5, depth=20,
                         bi_encoder=bi).negatives == examples.negatives, "seeded"


def test_retrieved_positives_are_the_judged_relevant_in_the_first_stage_top(cranfield_data):
    train, _ = split_queries(cranfield_data, n_train=40, seed=0)
    examples = mine_examples(train, negatives_per_query=5, depth=20, positives="retrieved")
    judged = mine_examples(train, negatives_per_query=5, depth=20)
    bm25 = crossrank.BM25(train.doc_texts, ids=train.doc_ids)
    fewer = 0
    for qid, query in train.queries.items():
        top = bm25.search(query, top_k=20)[0]
        expected = {train.text(d) for d in top if train.qrels[qid].get(d, 0) >= 1 and train.text(d).strip()}
        if not expected:
            assert query not in examples.queries, "no retrieved positive: the query is skipped"
            continue
        k = examples.queries.index(query)
        assert set(examples.positives[k]) == expected
        assert set(examples.negatives[k]) <= {train.text(d) for d in top} and not set(examples.negatives[k]) & expected
        fewer += len(expected) < len(judged.positives[judged.queries.index(query)])
    assert fewer > 0, "BM25's top 20 misses some judged documents, which 'retrieved' leaves out"
    assert examples.skipped_queries == 40 - len(examples)
    with pytest.raises(ValueError, match="first stage"):
        mine_examples(train, hard_negatives=None, positives="retrieved")
    with pytest.raises(ValueError, match="positives"):
        mine_examples(train, positives="all")


def test_groups_draw_negatives_per_positive_and_cap_positives(cranfield_data):
    train, _ = split_queries(cranfield_data, n_train=30, seed=0)
    examples = mine_examples(train, negatives_per_query=12, depth=50)
    full = examples.groups()
    assert len(full) == sum(map(len, examples.positives)) and all(len(neg) == 12 for *_, neg in full)
    drawn = examples.groups(negatives_per_group=3, max_positives=4, seed=1)
    assert drawn == examples.groups(negatives_per_group=3, max_positives=4, seed=1), "seeded"
    assert len(drawn) == sum(min(len(p), 4) for p in examples.positives)
    by_query: dict[str, list] = {}
    for q, p, neg in drawn:
        k = examples.queries.index(q)
        assert p in examples.positives[k] and len(neg) == 3 and set(neg) <= set(examples.negatives[k])
        by_query.setdefault(q, []).append(tuple(neg))
    assert any(len(set(negs)) > 1 for negs in by_query.values()), "each positive gets its own draw"
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="negatives_per_group"):
            examples.groups(negatives_per_group=bad)
    with pytest.raises(ValueError, match="max_positives"):
        examples.groups(max_positives=0)


def test_queries_without_positives_are_skipped_or_refused(cranfield_data):
    train, _ = split_queries(cranfield_data, n_train=10, seed=0)
    qid = next(iter(train.qrels))
    train.qrels[qid] = {d: 0 for d in train.qrels[qid]}
    assert mine_examples(train).skipped_queries == 1
    nothing = Dataset("none", train.doc_ids, train.doc_texts, train.queries, {q: {} for q in train.queries})
    with pytest.raises(ValueError, match="no positives"):
        mine_examples(nothing)
    with pytest.raises(ValueError, match="bi_encoder"):
        mine_examples(train, hard_negatives="dense")
    with pytest.raises(ValueError, match="hard_negatives"):
        mine_examples(train, hard_negatives="random")
    with pytest.raises(ValueError, match="negatives_per_query"):
        mine_examples(train, negatives_per_query=-1)


def test_check_pairs_refuses_bad_examples():
    assert check_pairs([("q", "d", 1), ("q", "e", 0.0)]) == [("q", "d", 1.0), ("q", "e", 0.0)]
    with pytest.raises(ValueError, match="outside"):
        check_pairs([("q", "d", 1.5)])
    with pytest.raises(ValueError, match="outside"):
        check_pairs([("q", "d", float("nan"))])
    with pytest.raises(ValueError, match="empty document"):
        check_pairs([("q", " ", 1.0)])
    with pytest.raises(ValueError, match="empty query"):
        check_pairs([("", "d", 1.0)])
    with pytest.raises(ValueError, match="no positive"):
        check_pairs([("q", "d", 0.0)])
    with pytest.raises(ValueError, match="no training examples"):
        check_pairs([])
    with pytest.raises(TypeError, match=r"example 0 must be a \(query, document, label\) triple, got \('q', 'd'\)"):
        check_pairs([("q", "d")])
