"""crossrank.DenseIndex: exact top-k against numpy brute force, zero-copy reads, add,
save/load, pickle and bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from crossrank import DenseIndex


def brute_force(embeddings: np.ndarray, queries: np.ndarray, metric: str, k: int):
    """(ids, scores) per query in float64: full score matrix, stable sort (ties by row)."""
    e = embeddings.astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "cosine":
        e = e / np.where((n := np.linalg.norm(e, axis=1, keepdims=True)) > 0, n, 1)
        q = q / np.where((n := np.linalg.norm(q, axis=1, keepdims=True)) > 0, n, 1)
    scores = q @ e.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1234)
    embeddings = rng.standard_normal((5000, 64)).astype(np.float32)
    queries = rng.standard_normal((300, 64)).astype(np.float32)
    return embeddings, queries


@pytest.mark.parametrize("metric", ["cosine", "dot"])
def test_equals_numpy_brute_force(data, metric):
    """Top-10 ids equal numpy's exact ranking and scores agree to float32 accuracy, for a
    matrix of queries and for each query alone (5000 rows span several GEMM blocks)."""
    embeddings, queries = data
    index = DenseIndex(embeddings, metric=metric)
    assert (len(index), index.dim, index.metric) == (5000, 64, metric)
    want_ids, want_scores = brute_force(embeddings, queries, metric, 10)
    results = index.search(queries, top_k=10)
    assert isinstance(results, list) and len(results) == len(queries)
    for (ids, scores), w_ids, w_scores in zip(results, want_ids, want_scores):
        assert ids.dtype == np.int64 and scores.dtype == np.float32
        np.testing.assert_array_equal(ids, w_ids)
        np.testing.assert_allclose(scores, w_scores, rtol=1e-5, atol=1e-5)
    for i in (0, 150, 299):
        ids, scores = index.search(queries[i], top_k=10)
        np.testing.assert_array_equal(ids, want_ids[i])
        np.testing.assert_allclose(scores, want_scores[i], rtol=1e-5, atol=1e-5)


def test_top_k_larger_than_the_index_returns_everything(data):
    """top_k beyond the row count returns every row once, fully sorted."""
    embeddings, queries = data
    small = embeddings[:37]
    ids, scores = DenseIndex(small, metric="dot").search(queries[0], top_k=1000)
    want_ids, want_scores = brute_force(small, queries[:1], "dot", 1000)
    np.testing.assert_array_equal(ids, want_ids[0])
    np.testing.assert_allclose(scores, want_scores[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", ["cosine", "dot"])
def test_identical_rows_tie_in_row_order(metric):
    """Identical rows get identical scores wherever they sit (across GEMM blocks and tile
    edges) and come back in row order."""
    rng = np.random.default_rng(5)
    embeddings = np.tile(rng.standard_normal(48).astype(np.float32), (4500, 1))
    queries = rng.standard_normal((3, 48)).astype(np.float32)
    for ids, scores in DenseIndex(embeddings, metric=metric).search(queries, top_k=4500):
        np.testing.assert_array_equal(ids, np.arange(4500))
        assert np.unique(scores).size == 1


def test_c_contiguous_float32_is_read_in_place():
    """A C-contiguous float32 array (read-only too) is used without a copy."""
    arr = np.random.default_rng(0).standard_normal((100, 16)).astype(np.float32)
    index = DenseIndex(arr)
    assert np.shares_memory(index.embeddings, arr)
    frozen = arr.copy()
    frozen.flags.writeable = False
    assert np.shares_memory(DenseIndex(frozen).embeddings, frozen)


@pytest.mark.parametrize(
    "convert",
    [
        lambda a: a.astype(np.float64),
        lambda a: np.asfortranarray(a),
        lambda a: np.repeat(a, 2, axis=1)[:, ::2],  # strided view
        lambda a: a[::-1],
        lambda a: a.tolist(),
    ],
    ids=["float64", "fortran", "strided", "reversed-view", "list"],
)
def test_other_inputs_are_copied_and_work(convert):
    """float64, Fortran-ordered, strided and list inputs are converted (copied) and give the
    same results as the float32 C array."""
    rng = np.random.default_rng(3)
    arr = rng.standard_normal((200, 24)).astype(np.float32)
    queries = rng.standard_normal((5, 24)).astype(np.float32)
    other = convert(arr)
    index = DenseIndex(other)
    assert index.embeddings.dtype == np.float32 and index.embeddings.flags.c_contiguous
    if isinstance(other, np.ndarray):
        assert not np.shares_memory(index.embeddings, other)
    np.testing.assert_array_equal(index.embeddings, np.asarray(other, dtype=np.float32))
    want_ids, want_scores = brute_force(np.asarray(other, dtype=np.float32),
                                        np.asarray(convert(queries), dtype=np.float32), "cosine", 5)
    for (ids, scores), w_ids, w_scores in zip(index.search(convert(queries), top_k=5), want_ids, want_scores):
        np.testing.assert_array_equal(ids, w_ids)
        np.testing.assert_allclose(scores, w_scores, rtol=1e-5, atol=1e-6)


def test_zero_vectors_score_zero_with_cosine():
    """A zero row scores 0 against any query, and a zero query scores 0 against every row,
    with cosine (no NaN)."""
    embeddings = np.array([[1, 0, 0], [0, 0, 0], [0, 2, 0], [1, 1, 0]], dtype=np.float32)
    ids, scores = DenseIndex(embeddings).search(np.array([1, 1, 0], dtype=np.float32), top_k=4)
    assert ids.tolist() == [3, 0, 2, 1]
    np.testing.assert_allclose(scores, [1, np.sqrt(0.5), np.sqrt(0.5), 0], rtol=1e-6)
    ids, scores = DenseIndex(embeddings).search(np.zeros(3), top_k=4)
    assert ids.tolist() == [0, 1, 2, 3] and scores.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("scale", [1e20, 1e-23])
def test_cosine_is_scale_invariant(scale):
    """Cosine scores do not depend on the vectors' magnitudes, for any finite float32.

    LIBRARY BUG (src/dense_index.rs, row_scales and the score s * qs * ds): norms are
    computed as sqrt(sum v*v) in float32 without rescaling, so squares overflow (|v| above
    ~1.8e19) or underflow (below ~1e-19). With rows of 1e20 and a query of 1e20 the scores
    are NaN (inf * 0); with rows and query of 1e-23 they are 0 instead of the cosine:
    DenseIndex(np.full((3, 4), 1e20, np.float32)).search(np.full(4, 1e20, np.float32))
    returns scores [nan, nan, nan] instead of [1, 1, 1].
    """
    base = np.array([[1, 2, 3, 4], [4, 3, 2, 1], [1, -1, 1, -1]], dtype=np.float32)
    query = np.array([1, 1, 1, 0], dtype=np.float32)
    _, want = DenseIndex(base).search(query, top_k=3)
    ids, scores = DenseIndex(base * np.float32(scale)).search(query * np.float32(scale), top_k=3)
    assert np.all(np.isfinite(scores))
    np.testing.assert_allclose(scores, want, rtol=1e-5)


def test_ids_are_returned_for_positions():
    """With ids, results name rows by id (a list of str) instead of positions."""
    rng = np.random.default_rng(7)
    embeddings = rng.standard_normal((50, 8)).astype(np.float32)
    names = [f"row{i:03d}" for i in range(50)]
    named, plain = DenseIndex(embeddings, ids=names), DenseIndex(embeddings)
    assert named.ids == names and plain.ids is None
    q = rng.standard_normal((4, 8)).astype(np.float32)
    for (ids, scores), (positions, want) in zip(named.search(q, top_k=6), plain.search(q, top_k=6)):
        assert ids == [names[p] for p in positions]
        np.testing.assert_array_equal(scores, want)


def test_add_appends_rows():
    """add() with and without ids equals an index built from all rows at once."""
    rng = np.random.default_rng(11)
    first, second = rng.standard_normal((30, 12)), rng.standard_normal((20, 12)).astype(np.float32)
    q = rng.standard_normal((6, 12)).astype(np.float32)
    everything = np.vstack([first, second]).astype(np.float32)
    names = [f"d{i}" for i in range(50)]

    grown = DenseIndex(first, ids=names[:30], metric="dot")
    grown.add(second, ids=names[30:])
    whole = DenseIndex(everything, ids=names, metric="dot")
    assert len(grown) == 50 and grown.ids == names
    np.testing.assert_array_equal(grown.embeddings, everything)
    for (a_ids, a_scores), (b_ids, b_scores) in zip(grown.search(q, 7), whole.search(q, 7)):
        assert a_ids == b_ids
        np.testing.assert_allclose(a_scores, b_scores, rtol=1e-6, atol=1e-6)

    unnamed = DenseIndex(first)
    unnamed.add(second)
    unnamed.add(second[0])  # one 1-D row
    assert len(unnamed) == 51 and unnamed.ids is None
    want_ids, _ = brute_force(np.vstack([everything, second[:1]]), q, "cosine", 7)
    for (ids, _), w in zip(unnamed.search(q, 7), want_ids):
        # The last row duplicates row 30: either may rank first among the two.
        np.testing.assert_array_equal(np.where(ids == 50, 30, ids), np.where(w == 50, 30, w))

    empty = DenseIndex(np.zeros((0, 12), dtype=np.float32))
    assert len(empty) == 0
    empty.add(second, ids=names[:20])
    assert len(empty) == 20 and empty.ids == names[:20]


def test_add_rejects_mismatches():
    """add() refuses ids on an id-less index, missing / wrong-count / duplicate ids on an
    index with ids, another dimension and non-finite values; a refused add changes nothing."""
    rng = np.random.default_rng(2)
    named = DenseIndex(rng.standard_normal((3, 4)), ids=["a", "b", "c"])
    plain = DenseIndex(rng.standard_normal((3, 4)))
    row = rng.standard_normal((1, 4))
    cases = [
        (plain, dict(embeddings=row, ids=["x"]), "this index was built without ids: add rows without ids"),
        (named, dict(embeddings=row), "this index has ids: give one id per added row"),
        (named, dict(embeddings=np.vstack([row, row]), ids=["x"]), "got 1 ids for 2 documents"),
        (named, dict(embeddings=row, ids=["a"]), 'duplicate document id "a"'),
        (named, dict(embeddings=np.vstack([row, row]), ids=["x", "x"]), 'duplicate document id "x"'),
        (named, dict(embeddings=rng.standard_normal((1, 5)), ids=["x"]), "dimension 5, the index has 4"),
        (plain, dict(embeddings=rng.standard_normal((1, 5))), "dimension 5, the index has 4"),
        (plain, dict(embeddings=np.array([[1.0, np.nan, 0, 0]])), r"row 0 holds a non-finite value \(NaN\)"),
        (named, dict(embeddings=np.array([[1.0, np.inf, 0, 0]]), ids=["x"]), r"row 0 holds a non-finite value \(inf\)"),
        (plain, dict(embeddings=np.ones((1, 4, 1))), r"must be 1-D \(one vector\) or 2-D \(n, dim\), got 3-D"),
    ]
    for index, kwargs, message in cases:
        before = (len(index), index.ids, index.embeddings.copy())
        with pytest.raises(ValueError, match=message):
            index.add(**kwargs)
        assert (len(index), index.ids) == before[:2]
        np.testing.assert_array_equal(index.embeddings, before[2])


@pytest.mark.parametrize("metric", ["cosine", "dot"])
@pytest.mark.parametrize("with_ids", [False, True])
def test_save_load_and_pickle_round_trips(tmp_path, metric, with_ids):
    """save/load and pickle keep rows, metric, ids and results bit for bit."""
    rng = np.random.default_rng(9)
    embeddings = rng.standard_normal((300, 20)).astype(np.float32)
    ids = [f"x{i}" for i in range(300)] if with_ids else None
    index = DenseIndex(embeddings, ids=ids, metric=metric)
    index.add(rng.standard_normal((5, 20)), ids=None if ids is None else [f"y{i}" for i in range(5)])
    q = rng.standard_normal((8, 20)).astype(np.float32)
    path = tmp_path / "index.dense"
    index.save(path)
    for copy in (DenseIndex.load(path), DenseIndex.load(str(path)), pickle.loads(pickle.dumps(index))):
        assert (len(copy), copy.dim, copy.metric, copy.ids) == (len(index), index.dim, index.metric, index.ids)
        np.testing.assert_array_equal(copy.embeddings, index.embeddings)
        for (a_ids, a_scores), (b_ids, b_scores) in zip(copy.search(q, 10), index.search(q, 10)):
            assert list(a_ids) == list(b_ids)
            np.testing.assert_array_equal(a_scores, b_scores)


def test_load_rejects_garbage_and_missing_files(tmp_path):
    """Not an index or a truncated one: ValueError; no file: FileNotFoundError."""
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"definitely not a dense index")
    with pytest.raises(ValueError, match="not a crossrank dense index"):
        DenseIndex.load(garbage)
    good = tmp_path / "good"
    DenseIndex(np.ones((4, 3), dtype=np.float32), ids=list("abcd")).save(good)
    data = good.read_bytes()
    for cut in (0, 8, 12, len(data) - 1):
        truncated = tmp_path / f"truncated{cut}"
        truncated.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=rf"truncated{cut}: (not a crossrank dense index|corrupt dense index)"):
            DenseIndex.load(truncated)
    with pytest.raises(FileNotFoundError, match="no dense index at .*missing.dense"):
        DenseIndex.load(tmp_path / "missing.dense")


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
@pytest.mark.parametrize(
    "embeddings, kwargs, message",
    [
        (np.array([[1.0, np.nan], [0, 1]], dtype=np.float32), {}, r"row 0 holds a non-finite value \(NaN\)"),
        (np.array([[1.0, 0], [np.inf, 1]], dtype=np.float32), {}, r"row 1 holds a non-finite value \(inf\)"),
        (np.array([[1e300, 0.0]]), {}, r"row 0 holds a non-finite value \(inf\)"),  # finite float64, inf as float32
        (np.ones((2, 3, 4), dtype=np.float32), {}, r"must be 1-D \(one vector\) or 2-D \(n, dim\), got 3-D"),
        (np.ones((2, 0), dtype=np.float32), {}, "embeddings must have at least one dimension"),
        (np.ones((2, 3), dtype=np.float32), dict(metric="euclidean"),
         'unknown metric "euclidean"; expected "cosine" or "dot"'),
        (np.ones((2, 3), dtype=np.float32), dict(ids=["a"]), "got 1 ids for 2 documents"),
        (np.ones((2, 3), dtype=np.float32), dict(ids=["a", "a"]), 'duplicate document id "a"'),
        (np.ones((2, 3), dtype=np.float32), dict(ids=["a", "b", "c"]), "got 3 ids for 2 documents"),
    ],
    ids=["nan", "inf", "overflow", "3-D", "dim-0", "metric", "too-few-ids", "dup-ids", "too-many-ids"],
)
def test_bad_embeddings(embeddings, kwargs, message):
    """Non-finite values, 3-D arrays, zero dimensions, unknown metrics and wrong ids are
    ValueErrors."""
    with pytest.raises(ValueError, match=message):
        DenseIndex(embeddings, **kwargs)


def test_empty_id_list_for_rows_is_refused():
    """ids=[] for a non-empty matrix is a wrong id count, as it is for BM25 (it was once
    taken as "no ids", an index without ids)."""
    with pytest.raises(ValueError, match="got 0 ids for 3 documents"):
        DenseIndex(np.ones((3, 2), dtype=np.float32), ids=[])


def test_bad_queries():
    """NaN/inf queries, another dimension, 3-D queries and top_k <= 0 are ValueErrors;
    searching an empty index too."""
    index = DenseIndex(np.eye(4, dtype=np.float32))
    for query, message in (
        (np.array([1.0, np.nan, 0, 0]), r"query row 0 holds a non-finite value \(NaN\)"),
        (np.array([[1.0, 0, 0, 0], [0, np.inf, 0, 0]]), r"query row 1 holds a non-finite value \(inf\)"),
        (np.array([-np.inf, 0, 0, 0], dtype=np.float32), r"query row 0 holds a non-finite value \(-inf\)"),
        (np.ones(3), "query_embeddings have dimension 3, the index has 4"),
        (np.ones((2, 5)), "query_embeddings have dimension 5, the index has 4"),
        (np.ones((1, 2, 4)), r"query_embeddings must be 1-D \(one vector\) or 2-D \(n, dim\), got 3-D"),
    ):
        with pytest.raises(ValueError, match=message):
            index.search(query)
    for top_k in (0, -1):
        with pytest.raises(ValueError, match="top_k"):
            index.search(np.ones(4), top_k=top_k)
    with pytest.raises(TypeError, match=r"query_embeddings must be a float32 array-like of shape \(n, dim\), got list"):
        index.search(["a", "b", "c", "d"])
    empty = DenseIndex(np.zeros((0, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="empty"):
        empty.search(np.ones(4))


def test_query_shapes():
    """A 1-D query gives one (ids, scores); a 2-D matrix a list, (0, d) an empty list."""
    index = DenseIndex(np.eye(3, dtype=np.float32), ids=["x", "y", "z"], metric="dot")
    ids, scores = index.search(np.array([0.0, 2.0, 1.0]), top_k=2)
    assert ids == ["y", "z"] and scores.tolist() == [2.0, 1.0]
    batch = index.search(np.array([[0.0, 2.0, 1.0]]), top_k=2)
    assert isinstance(batch, list) and len(batch) == 1 and batch[0][0] == ["y", "z"]
    assert index.search(np.zeros((0, 3), dtype=np.float32)) == []
