"""Pseudo-queries from the corpus itself (`crossrank.training_data.pseudo_queries`): title ->
body and inverse cloze, with mined hard negatives; deterministic for a seed, never the
source document among its own negatives."""

from __future__ import annotations

import json

import pytest

from crossrank.datasets import Dataset, load_beir
from crossrank.pseudo_queries import split_sentences
from crossrank.training_data import TrainingExamples, pseudo_queries

from conftest import DATA


@pytest.fixture(scope="module")
def cranfield_data() -> Dataset:
    return load_beir(DATA / "cranfield")


def _tiny(tmp_path, title_field: bool = True) -> Dataset:
    docs = [
        {"_id": "a", "title": "wing lift in a slipstream",
         "text": "wing lift in a slipstream . The propeller raises the lift of the wing. Tests ran at three speeds."},
        {"_id": "b", "title": "heat transfer at the nose",
         "text": "The nose of a blunt body heats up. Heat transfer was measured in a shock tube."},
        {"_id": "c", "title": "boundary layer on a flat plate",
         "text": "A boundary layer grows along the plate. Transition happens near the trailing edge."},
        {"_id": "d", "title": "", "text": "Untitled note about lift and wings and propellers in flight."},
        # A duplicate of b under another id: never a negative of b's queries.
        {"_id": "e", "title": "heat transfer at the nose",
         "text": "The nose of a blunt body heats up. Heat transfer was measured in a shock tube."},
    ]
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "1", "text": "lift"}) + "\n")
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n1\ta\t1\n")
    return load_beir(tmp_path, title_field=title_field)


def test_sentences():
    assert split_sentences("One two. Three four!  Five?\nSix") == ["One two.", "Three four!", "Five?", "Six"]
    assert split_sentences("  ") == []


def test_title_queries_have_the_body_without_the_title(tmp_path):
    data = _tiny(tmp_path)
    assert data.titles["a"] == "wing lift in a slipstream" and "d" not in data.titles
    ex = pseudo_queries(data, kinds=["title"], negatives_per_query=2)
    assert isinstance(ex, TrainingExamples)
    by_query = dict(zip(ex.queries, ex.positives))
    # a's text repeats its title as its first sentence: both copies are gone from the positive.
    assert by_query["wing lift in a slipstream"] == [". The propeller raises the lift of the wing. "
                                                     "Tests ran at three speeds."]
    assert by_query["boundary layer on a flat plate"] == [
        "A boundary layer grows along the plate. Transition happens near the trailing edge."]
    assert all("heat transfer at the nose" not in p[0].lower() for p in ex.positives)
    # The untitled document makes no title query.
    assert len(ex.queries) == 4


def test_title_only_needs_titles_and_reads_them_without_title_field(tmp_path):
    with_titles = pseudo_queries(_tiny(tmp_path), kinds=["title"])
    (tmp_path / "raw").mkdir()
    for name in ("corpus.jsonl", "queries.jsonl", "qrels.tsv"):
        (tmp_path / "raw" / name).write_text((tmp_path / name).read_text())
    without = pseudo_queries(_tiny(tmp_path / "raw", title_field=False), kinds=["title"])
    assert without.queries == with_titles.queries and without.positives == with_titles.positives
    plain = Dataset("plain", ["x"], ["some text here"], {}, {})
    with pytest.raises(ValueError, match="has no document titles"):
        pseudo_queries(plain, kinds=["title"])


def test_inverse_cloze_removes_the_sentence(tmp_path):
    data = _tiny(tmp_path)
    ex = pseudo_queries(data, kinds=["inverse_cloze"], sentences_per_document=2, seed=3)
    assert ex.queries
    for query, (positive,) in zip(ex.queries, ex.positives):
        assert query not in positive
        # The rest keeps the title (when there is one) and every other sentence.
        source = next(d for d in data.doc_ids if query in data.text(d))
        title = data.titles.get(source, "")
        assert positive.startswith(title)
    # Two distinct sentences of a at most.
    from_a = [q for q in ex.queries if q in data.text("a")]
    assert len(from_a) == len(set(from_a)) <= 2


def test_negatives_never_hold_the_source_or_its_duplicates(cranfield_data, tmp_path):
    data = _tiny(tmp_path)
    ex = pseudo_queries(data, negatives_per_query=4)
    for query, (positive,), negatives in zip(ex.queries, ex.positives, ex.negatives):
        source_texts = {data.text(d) for d in data.doc_ids if query in data.text(d) or positive in data.text(d)}
        assert not source_texts & set(negatives), query
        assert positive not in negatives
    big = pseudo_queries(cranfield_data, max_documents=150, negatives_per_query=4, depth=30, seed=0)
    for query, (positive,), negatives in zip(big.queries, big.positives, big.negatives):
        assert len(negatives) == 4 and positive not in negatives
        # A document quoting the whole query is a copy of the source, not a negative.
        assert all(" ".join(query.lower().split()) not in " ".join(n.lower().split()) for n in negatives)


def test_deterministic_for_a_seed(cranfield_data):
    a = pseudo_queries(cranfield_data, max_documents=80, seed=1)
    b = pseudo_queries(cranfield_data, max_documents=80, seed=1)
    c = pseudo_queries(cranfield_data, max_documents=80, seed=2)
    assert (a.queries, a.positives, a.negatives) == (b.queries, b.positives, b.negatives)
    assert a.queries != c.queries
    # Both kinds on Cranfield: every sampled document has a title and sentences.
    assert len(a.queries) > 80 and len(a.groups(negatives_per_group=2)) == len(a.queries)


@pytest.mark.parametrize("kwargs, message", [
    ({"kinds": ["question"]}, "kinds must be"),
    ({"kinds": []}, "kinds must be"),
    ({"sentences_per_document": 0}, "sentences_per_document must be"),
    ({"negatives_per_query": True}, "negatives_per_query must be"),
    ({"max_documents": 0}, "max_documents must be"),
    ({"hard_negatives": "random"}, "hard_negatives must be"),
    ({"hard_negatives": "dense"}, "needs bi_encoder"),
    ({"min_query_words": 500}, "no pseudo-query"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pseudo_queries(_tiny(tmp_path), **kwargs)


def test_dense_negatives(tmp_path, minilm_dir):
    import crossrank

    data = _tiny(tmp_path)
    ex = pseudo_queries(data, kinds=["title"], hard_negatives="dense", bi_encoder=crossrank.BiEncoder(str(minilm_dir)),
                        negatives_per_query=3)
    assert len(ex.queries) == 4
    for query, negatives in zip(ex.queries, ex.negatives):
        assert negatives and all(query not in n for n in negatives)
