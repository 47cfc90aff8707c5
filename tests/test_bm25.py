"""crossrank.BM25: against the formula written out in Python, against bm25s (method="lucene")
on the Cranfield collection, its analyzer against the regex / Snowball / NLTK references,
round trips through save/load and pickle, and bad input."""

from __future__ import annotations

import math
import pickle
import re
from collections import Counter

import numpy as np
import pytest

from crossrank import BM25

from conftest import DATA

CRANFIELD = DATA / "cranfield"


def words(text: str) -> list[str]:
    """The analyzer without stopwords or stemming, as the documented Python equivalent."""
    return re.findall(r"[^\W_]+", text.lower())


def reference_scores(corpus: list[list[str]], query: list[str], docs: list[list[str]], k1: float, b: float):
    """Lucene BM25 of each of `docs` for `query` with `corpus`' statistics, in float64."""
    n = len(corpus)
    total = sum(len(d) for d in corpus)
    avgdl = total / n if total else 1.0
    df = Counter(t for d in corpus for t in set(d))
    out = []
    for doc in docs:
        tf = Counter(doc)
        score = 0.0
        for term in query:  # repeated query terms count each time
            if tf[term]:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                score += idf * tf[term] / (tf[term] + k1 * (1 - b + b * len(doc) / avgdl))
        out.append(score)
    return np.array(out)


CORPUS = [
    "The boundary layer of a flat plate",
    "Boundary-layer transition on a flat plate at Mach 2.5",
    "heat transfer in the laminar boundary layer; boundary layer heat",
    "",
    "Shock waves and SHOCK/boundary-layer interaction",
    "supersonic flow past a cone",
    "the the the the the the the the the the the the plate",
]
TOKENS = [words(d) for d in CORPUS]
QUERIES = [
    "boundary layer",
    "flat plate heat transfer",
    "shock shock boundary",
    "the plate",
    "cone flow at mach 2",
    "Plate, PLATE plate!",
]


def expected_ranking(scores: np.ndarray) -> list[int]:
    """Positions with a positive score, best first, ties by position."""
    return [int(i) for i in np.lexsort((np.arange(len(scores)), -scores)) if scores[i] > 0]


# --------------------------------------------------------------------------- the formula


@pytest.mark.parametrize("k1, b", [(0.9, 0.4), (1.2, 0.75), (0.0, 0.5), (2.0, 0.0), (1.5, 1.0)])
def test_search_follows_the_lucene_formula(k1, b):
    """Every query's full result is exactly the documents sharing a term, best first, with
    the Lucene BM25 score computed by hand (idf ln(1 + (N-df+.5)/(df+.5)), no (k1+1))."""
    bm25 = BM25(CORPUS, k1=k1, b=b)
    assert bm25.k1 == pytest.approx(k1) and bm25.b == pytest.approx(b)
    for query in QUERIES:
        want = reference_scores(TOKENS, words(query), TOKENS, k1, b)
        ids, scores = bm25.search(query, top_k=100)
        assert ids.dtype == np.int64 and scores.dtype == np.float32
        assert list(ids) == expected_ranking(want), query
        np.testing.assert_allclose(scores, want[ids], rtol=1e-5)


def test_repeated_query_terms_count_each_time():
    """A query term written twice contributes twice (Lucene / bm25s semantics)."""
    bm25 = BM25(CORPUS)
    _, once = bm25.search("shock", top_k=5)
    _, twice = bm25.search("shock shock", top_k=5)
    np.testing.assert_allclose(twice, 2 * once, rtol=1e-6)


def test_top_k_cuts_the_full_ranking():
    """top_k returns the head of the full ranking, never more than the matching documents."""
    bm25 = BM25(CORPUS)
    full_ids, full_scores = bm25.search("boundary layer plate", top_k=100)
    assert len(full_ids) == 5
    for k in (1, 2, 3, 5, 6, 1000):
        ids, scores = bm25.search("boundary layer plate", top_k=k)
        assert list(ids) == list(full_ids[:k])
        np.testing.assert_array_equal(scores, full_scores[:k])


def test_ties_are_ordered_by_corpus_position():
    """Identical documents get identical scores and come back in corpus order."""
    corpus = ["lift drag", "other words", "lift drag", "drag lift", "lift drag"]
    bm25 = BM25(corpus)
    ids, scores = bm25.search("lift", top_k=10)
    assert list(ids) == [0, 2, 3, 4]
    assert len(set(scores.tolist())) == 1
    ids, _ = bm25.search("lift", top_k=2)
    assert list(ids) == [0, 2]


def test_score_uses_corpus_statistics_for_any_text():
    """score() on texts outside the corpus uses the corpus' df and avgdl; a term the corpus
    never saw gets df = 0 (the largest idf); on the corpus' own texts it equals search()."""
    bm25 = BM25(CORPUS, k1=1.1, b=0.6)
    texts = [
        "hypersonic boundary layer over a cone",
        "hypersonic hypersonic",
        "a completely unrelated sentence",
        "",
        "BOUNDARY layer boundary layer boundary layer transition",
    ]
    for query in ("hypersonic boundary layer", "cone transition", "hypersonic", "zebra"):
        got = bm25.score(query, texts)
        assert got.dtype == np.float32 and got.shape == (len(texts),)
        want = reference_scores(TOKENS, words(query), [words(t) for t in texts], 1.1, 0.6)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    # df = 0 explicitly: one unseen term in a one-term document of average length.
    n = len(CORPUS)
    avgdl = sum(map(len, TOKENS)) / n
    doc = " ".join(["hypersonic"] + ["x"] * (round(avgdl) - 1))
    idf0 = math.log(1 + (n + 0.5) / 0.5)
    norm = 1.1 * (1 - 0.6 + 0.6 * round(avgdl) / avgdl)
    assert bm25.score("hypersonic", [doc])[0] == pytest.approx(idf0 / (1 + norm), rel=1e-5)
    # On the corpus itself: the same numbers as search.
    ids, scores = bm25.search("boundary layer heat", top_k=100)
    on_corpus = bm25.score("boundary layer heat", CORPUS)
    np.testing.assert_allclose(on_corpus[ids], scores, rtol=1e-6)
    assert np.count_nonzero(on_corpus) == len(ids)
    assert bm25.score("boundary", []).shape == (0,)


def test_vocabulary_length_and_empty_documents():
    """len() counts documents (empty ones too), vocabulary_size counts distinct terms."""
    bm25 = BM25(CORPUS)
    assert len(bm25) == len(CORPUS)
    assert bm25.vocabulary_size == len({t for d in TOKENS for t in d})
    empty = BM25(["", "   ", "!!"])
    assert len(empty) == 3 and empty.vocabulary_size == 0
    ids, scores = empty.search("anything")
    assert len(ids) == 0 and len(scores) == 0


@pytest.mark.parametrize("query", ["", "   ", "?!", "zebra unicorn", "_"])
def test_queries_without_known_terms_find_nothing(query):
    """An empty query or one with no corpus term gives length-0 arrays, with or without ids."""
    ids, scores = BM25(CORPUS).search(query)
    assert isinstance(ids, np.ndarray) and ids.dtype == np.int64 and ids.shape == (0,)
    assert scores.dtype == np.float32 and scores.shape == (0,)
    named_ids, named_scores = BM25(CORPUS, ids=[f"d{i}" for i in range(len(CORPUS))]).search(query)
    assert list(named_ids) == [] and named_scores.shape == (0,)


def test_ids_name_the_positions():
    """With ids, results are the ids of the positions the id-less index returns."""
    names = [f"doc-{i * 7}" for i in range(len(CORPUS))]
    plain, named = BM25(CORPUS), BM25(CORPUS, ids=names)
    assert named.ids == names and plain.ids is None
    for query in QUERIES:
        positions, scores = plain.search(query, top_k=4)
        ids, named_scores = named.search(query, top_k=4)
        assert isinstance(ids, list) and all(isinstance(i, str) for i in ids)
        assert ids == [names[p] for p in positions]
        np.testing.assert_array_equal(named_scores, scores)


def test_search_batch_equals_search():
    """search_batch gives, per query and in order, what search gives."""
    bm25 = BM25(CORPUS, ids=[str(i) for i in range(len(CORPUS))], stemmer="english")
    queries = QUERIES + ["", "nothing known"] + QUERIES[::-1] * 50  # > one 256-query chunk
    batch = bm25.search_batch(queries, top_k=3, show_progress_bar=False)
    assert len(batch) == len(queries)
    for query, (ids, scores) in zip(queries, batch):
        want_ids, want_scores = bm25.search(query, top_k=3)
        assert ids == want_ids
        np.testing.assert_array_equal(scores, want_scores)
    assert bm25.search_batch([], top_k=3) == []


def _same_index(a: BM25, b: BM25, queries: list[str]) -> None:
    assert (len(a), a.k1, a.b, a.ids, a.vocabulary_size) == (len(b), b.k1, b.b, b.ids, b.vocabulary_size)
    for query in queries:
        assert a.tokenize(query) == b.tokenize(query)
        (ia, sa), (ib, sb) = a.search(query, top_k=100), b.search(query, top_k=100)
        assert list(ia) == list(ib)
        np.testing.assert_array_equal(sa, sb)
        np.testing.assert_array_equal(a.score(query, CORPUS), b.score(query, CORPUS))


@pytest.mark.parametrize("with_ids", [False, True])
def test_save_load_and_pickle_round_trips(tmp_path, with_ids):
    """save/load and pickle keep parameters, analyzer (stopwords, stemmer), ids and scores."""
    ids = [f"id{i}" for i in range(len(CORPUS))] if with_ids else None
    bm25 = BM25(CORPUS, ids=ids, k1=1.3, b=0.55, stopwords="english", stemmer="english")
    queries = QUERIES + ["the layers of plates", "waves"]
    path = tmp_path / "index.bm25"
    bm25.save(path)
    _same_index(bm25, BM25.load(path), queries)
    _same_index(bm25, BM25.load(str(path)), queries)
    _same_index(bm25, pickle.loads(pickle.dumps(bm25)), queries)
    assert BM25.load(path).tokenize("The running plates") == ["run", "plate"]


def test_load_rejects_garbage_and_missing_files(tmp_path):
    """A file that is not an index, or a truncated one, is a ValueError; no file is a
    FileNotFoundError."""
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"this is not a BM25 index at all")
    with pytest.raises(ValueError, match="not a crossrank BM25 index"):
        BM25.load(garbage)
    good = tmp_path / "good"
    BM25(CORPUS, ids=[str(i) for i in range(len(CORPUS))]).save(good)
    data = good.read_bytes()
    for cut in (8, 20, len(data) // 2, len(data) - 1):
        truncated = tmp_path / f"truncated{cut}"
        truncated.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=rf"truncated{cut}: corrupt BM25 index"):
            BM25.load(truncated)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty: not a crossrank BM25 index \(bad header\)"):
        BM25.load(empty)
    with pytest.raises(FileNotFoundError, match="no BM25 index at .*missing.bm25"):
        BM25.load(tmp_path / "missing.bm25")


# --------------------------------------------------------------------------- the analyzer


def test_tokenize_splits_lowercases_and_keeps_digits():
    """Runs of letters/digits (Unicode), lowercased; '_' and punctuation split."""
    bm25 = BM25(["x"])
    text = "The Flow-fields of Mach 2.5; ÉCOLE snake_case x²  Ünïcödé\ttab\nnew"
    assert bm25.tokenize(text) == words(text)
    assert bm25.tokenize("") == [] and bm25.tokenize("--- ...") == []


def test_stopwords_are_dropped_before_stemming_and_case_insensitively():
    """A custom stopword list is lowercased and compared before stemming."""
    bm25 = BM25(["x"], stopwords=["Running", "THE"], stemmer="english")
    assert bm25.tokenize("The running runs RUNNING Runner") == ["run", "runner"]
    assert BM25(["x"], stopwords=[]).tokenize("the a") == ["the", "a"]


@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        (dict(stemmer="klingon"), ValueError, "available: .*english"),
        (dict(stopwords="klingon"), ValueError, "available: .*english"),
        (dict(stopwords=[1, 2]), TypeError, "stopwords"),
        (dict(stopwords=3), TypeError, "stopwords"),
        (dict(k1=-0.1), ValueError, "k1"),
        (dict(k1=float("nan")), ValueError, "k1"),
        (dict(b=1.5), ValueError, "b must be"),
        (dict(b=-0.1), ValueError, "b must be"),
        (dict(ids=["a", "b"]), ValueError, "ids"),
        (dict(ids=["a", "a", "b", "c", "d", "e", "f"]), ValueError, "duplicate"),
        (dict(ids=[]), ValueError, "ids"),
        (dict(ids=[1, 2, 3, 4, 5, 6, 7]), TypeError, "ids"),
        (dict(ids="abcdefg"), TypeError, "ids"),
    ],
)
def test_bad_constructor_arguments(kwargs, exc, message):
    """Unknown languages (the message lists the available ones), out-of-range parameters and
    wrong ids are refused."""
    with pytest.raises(exc, match=message):
        BM25(CORPUS, **kwargs)


@pytest.mark.parametrize(
    "corpus, exc, message",
    [([], ValueError, "the corpus is empty: BM25 needs at least one document"),
     ("a single string", TypeError, "corpus must be a list, got a single str"),
     (None, TypeError, "corpus is None; expected a list"),
     (["ok", 3], TypeError, r"corpus\[1\] must be str, got int"),
     (["ok", None], TypeError, r"corpus\[1\] is None; expected str")],
)
def test_bad_corpus(corpus, exc, message):
    """An empty corpus is a ValueError; a str, None or non-str documents are TypeErrors."""
    with pytest.raises(exc, match=message):
        BM25(corpus)


def test_bad_search_arguments():
    """top_k <= 0 is a ValueError; a non-str query (or a str given as a batch) a TypeError."""
    bm25 = BM25(CORPUS)
    for top_k in (0, -1, -100):
        with pytest.raises(ValueError, match="top_k"):
            bm25.search("plate", top_k=top_k)
        with pytest.raises(ValueError, match="top_k"):
            bm25.search_batch(["plate"], top_k=top_k)
    for query, message in ((None, "query is None; expected str"), (3, "query must be str, got int"),
                           (b"plate", "query must be str, got bytes"), (["plate"], "query must be str, got list")):
        with pytest.raises(TypeError, match=message):
            bm25.search(query)
        with pytest.raises(TypeError, match=message):
            bm25.score(query, ["plate"])
    with pytest.raises(TypeError, match="queries must be a list, got a single str"):
        bm25.search_batch("plate")
    with pytest.raises(TypeError, match=r"queries\[1\] is None; expected str"):
        bm25.search_batch(["plate", None])
    with pytest.raises(TypeError, match="documents must be a list, got a single str"):
        bm25.score("plate", "plate")
    with pytest.raises(TypeError, match="query is None; expected str"):
        bm25.tokenize(None)


def test_huge_k1_never_repeats_a_document():
    """A legal but extreme k1 (finite, >= 0) must not return a document twice.

    LIBRARY BUG (src/bm25.rs, Bm25::search): a document is recorded as "touched" when its
    accumulator is still exactly 0.0 before adding a term's contribution. When k1 * norm
    overflows to inf, a contribution is 0.0, so a document matching two query terms is
    pushed twice: BM25(["a b c d e f g h", "a", "b"], k1=3e38).search("a b") returns
    positions [1, 2, 0, 0] instead of [1, 2, 0].
    """
    ids, _ = BM25(["a b c d e f g h", "a", "b"], k1=3e38).search("a b", top_k=10)
    assert sorted(ids.tolist()) == [0, 1, 2]


# --------------------------------------------------------------------------- Cranfield


@pytest.fixture(scope="module")
def cranfield():
    from crossrank.datasets import load_beir

    return load_beir(CRANFIELD)


def test_tokenize_equals_the_regex_on_cranfield(cranfield):
    """Without stopwords or stemming, tokenize is re.findall(r"[^\\W_]+", text.lower())."""
    bm25 = BM25(["x"])
    for text in cranfield.doc_texts + list(cranfield.queries.values()):
        assert bm25.tokenize(text) == words(text)


def test_stemmer_equals_snowball_on_cranfield(cranfield):
    """stemmer="english" is Snowball's English (Porter2) stemmer of each word, as the
    snowballstemmer package (2.2, the classic algorithm) computes it."""
    import snowballstemmer

    stemmer = snowballstemmer.stemmer("english")
    stems: dict[str, str] = {}

    def stem(word: str) -> str:
        if word not in stems:
            stems[word] = stemmer.stemWord(word)
        return stems[word]

    bm25 = BM25(["x"], stemmer="english")
    for text in cranfield.doc_texts + list(cranfield.queries.values()):
        assert bm25.tokenize(text) == [stem(w) for w in words(text)]


def test_english_stopwords_are_nltks_on_cranfield(cranfield):
    """stopwords="english" drops exactly NLTK's English list (bm25s ships it as
    STOPWORDS_EN_PLUS), compared before stemming."""
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    nltk = set(STOPWORDS_EN_PLUS)
    bm25 = BM25(["x"], stopwords="english")
    assert all(bm25.tokenize(w) == [] for w in nltk if words(w) == [w])
    for text in cranfield.doc_texts + list(cranfield.queries.values()):
        assert bm25.tokenize(text) == [w for w in words(text) if w not in nltk]


@pytest.mark.parametrize("analyzer", [{}, dict(stopwords="english", stemmer="english")], ids=["plain", "stop+stem"])
def test_equals_bm25s_lucene_on_cranfield(cranfield, analyzer):
    """Top-10 of every judged Cranfield query equals bm25s (method="lucene", same tokens):
    same documents except among scores tied within 1e-6 at the cut, scores within 1e-4
    relative; score() on corpus texts equals bm25s' scores too."""
    import bm25s

    bm25 = BM25(cranfield.doc_texts, k1=0.9, b=0.4, **analyzer)
    tokens = [bm25.tokenize(d) for d in cranfield.doc_texts]
    ref = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
    ref.index(tokens, show_progress=False)
    sample = np.arange(0, len(tokens), 7)
    checked = 0
    for query in cranfield.queries.values():
        ids, scores = bm25.search(query, top_k=10)
        known = [t for t in bm25.tokenize(query) if t in ref.vocab_dict and t != ""]
        if not known:
            assert len(ids) == 0
            continue
        full = np.asarray(ref.get_scores(known), dtype=np.float64)
        matching = int(np.count_nonzero(full > 0))
        assert len(ids) == min(10, matching)
        # Each returned document has bm25s' score, and the list is sorted best first.
        np.testing.assert_allclose(scores, full[ids], rtol=1e-4)
        assert np.all(np.diff(scores) <= 0)
        # Nothing scoring clearly above the last returned document is missing.
        last = float(full[ids[-1]])
        above = set(np.flatnonzero(full > last * (1 + 1e-6)).tolist())
        assert above <= set(ids.tolist())
        # The reference top-10 scores, tie-insensitive.
        np.testing.assert_allclose(scores, np.sort(full)[::-1][: len(ids)], rtol=1e-4)
        got = bm25.score(query, [cranfield.doc_texts[i] for i in sample])
        np.testing.assert_allclose(got, full[sample], rtol=1e-4, atol=1e-6)
        checked += 1
    assert checked >= 200


def test_search_batch_on_cranfield(cranfield):
    """search_batch over all judged queries equals search per query, ids mapped."""
    bm25 = BM25(cranfield.doc_texts, ids=cranfield.doc_ids, stopwords="english", stemmer="english")
    queries = list(cranfield.queries.values())
    for query, (ids, scores) in zip(queries, bm25.search_batch(queries, top_k=20)):
        want_ids, want_scores = bm25.search(query, top_k=20)
        assert ids == want_ids
        np.testing.assert_array_equal(scores, want_scores)
    positions, _ = BM25(cranfield.doc_texts, stopwords="english", stemmer="english").search(queries[0], top_k=20)
    assert bm25.search(queries[0], top_k=20)[0] == [cranfield.doc_ids[p] for p in positions]
