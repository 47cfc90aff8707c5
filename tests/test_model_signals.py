"""crossrank._core.ModelSignals, the Rust side of HybridReranker: each signal equals the
model called on its own (computed independently here), precomputed embeddings replace
re-encoding, and bad input is refused with a message naming it."""

from __future__ import annotations

import numpy as np
import pytest

import crossrank
from crossrank._core import ModelSignals


@pytest.fixture(scope="module")
def candidates(cranfield):
    queries, corpus = cranfield
    return queries[0]["text"], [d["text"] for d in corpus[:40]]


def test_every_signal_equals_its_model_alone(ce, be, candidates):
    query, docs = candidates
    signals = ModelSignals(cross_encoder=ce, bi_encoder=be, bm25=True, batch_size=8)
    assert signals.names == ["cross_encoder", "bm25", "bi_encoder"]
    got = signals.compute(query, docs)
    assert list(got) == signals.names
    assert all(v.dtype == np.float64 and v.shape == (len(docs),) for v in got.values())
    np.testing.assert_allclose(got["cross_encoder"], ce.predict([(query, d) for d in docs]), atol=1e-6)
    np.testing.assert_allclose(got["bm25"], crossrank.BM25(docs).score(query, docs), atol=1e-6)
    want = be.similarity(be.encode([query]), be.encode(docs))[0]
    np.testing.assert_allclose(got["bi_encoder"], want, atol=1e-6)


def test_a_corpus_index_gives_its_statistics(candidates, cranfield):
    query, docs = candidates
    index = crossrank.BM25([d["text"] for d in cranfield[1]])
    got = ModelSignals(bm25=index).compute(query, docs)
    np.testing.assert_allclose(got["bm25"], index.score(query, docs), atol=1e-6)
    # The candidate set's own statistics differ from the corpus'.
    assert np.abs(got["bm25"] - crossrank.BM25(docs).score(query, docs)).max() > 1e-3


def test_pickles_as_its_models_and_scores_the_same(ce, be, candidates, cranfield):
    """An instance ships to multiprocessing / Ray workers as its constructor arguments; the
    models inside pickle once (pickle memoizes them), however many holders they have."""
    import pickle

    query, docs = candidates
    index = crossrank.BM25([d["text"] for d in cranfield[1]])
    signals = ModelSignals(cross_encoder=ce, bi_encoder=be, bm25=index, batch_size=8)
    copy = pickle.loads(pickle.dumps(signals))
    assert copy.names == signals.names
    want, got = signals.compute(query, docs), copy.compute(query, docs)
    for name in signals.names:
        np.testing.assert_allclose(got[name], want[name], atol=1e-6)
    both = pickle.loads(pickle.dumps([ce, signals]))
    assert len(pickle.dumps([ce, signals])) < len(pickle.dumps(ce)) + len(pickle.dumps(signals))
    assert both[1].names == signals.names


def test_given_embeddings_replace_encoding(be, candidates):
    query, docs = candidates
    embeddings = be.encode(docs)
    signals = ModelSignals(bi_encoder=be)
    np.testing.assert_allclose(signals.compute(query, docs, embeddings=embeddings)["bi_encoder"],
                               signals.compute(query, docs)["bi_encoder"], atol=1e-6)
    # They are used as given: other vectors give other similarities.
    shuffled = signals.compute(query, docs, embeddings=embeddings[::-1].copy())["bi_encoder"]
    np.testing.assert_allclose(shuffled, signals.compute(query, docs)["bi_encoder"][::-1], atol=1e-6)


def test_bad_input_is_named(be, candidates):
    query, docs = candidates
    with pytest.raises(ValueError, match="embeddings hold 384 values for 40 documents of dimension 384"):
        ModelSignals(bi_encoder=be).compute(query, docs, embeddings=np.zeros((1, 384), np.float32))
    with pytest.raises(TypeError, match="bm25 must be True/False or a crossrank.BM25 index, got str"):
        ModelSignals(bm25="yes")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        ModelSignals(bm25=True, batch_size=0)
    assert ModelSignals().compute(query, docs) == {}
    assert ModelSignals(bm25=False).names == []


def test_hybrid_reranker_takes_the_candidates_embeddings(ce, be, candidates):
    query, docs = candidates
    hybrid = crossrank.HybridReranker(cross_encoder=ce, bi_encoder=be, bm25=True)
    plain = hybrid.rerank(query, docs, explain=True)
    given = hybrid.rerank(query, docs, explain=True, embeddings=be.encode(docs))
    assert [r["corpus_id"] for r in given] == [r["corpus_id"] for r in plain]
    np.testing.assert_allclose([r["score"] for r in given], [r["score"] for r in plain], atol=1e-6)
    # The signals are the models' own, computed independently here.
    first = min(plain, key=lambda r: r["corpus_id"])["explanation"]
    assert abs(first["cross_encoder"]["raw"] - float(ce.predict([(query, docs[0])])[0])) < 1e-6
    with pytest.raises(ValueError, match=r"embeddings must be a \(40, dim\) array, one row per document"):
        hybrid.rerank(query, docs, embeddings=np.zeros((3, 384), np.float32))


class RecordingBiEncoder(crossrank.BiEncoder):
    """Records how many texts each encode call embeds (a subclass takes the Python path)."""

    calls: list[int]

    def encode(self, sentences, *args, **kwargs):
        self.calls.append(len(sentences))
        return super().encode(sentences, *args, **kwargs)


def test_fit_with_a_dense_index_embeds_only_the_queries(minilm_dir, be, cranfield):
    queries, corpus = cranfield
    docs = {d["_id"]: d["text"] for d in corpus[:60]}
    ids = list(docs)
    qs = {q["_id"]: q["text"] for q in queries[:4]}
    candidates = {qid: [(d, docs[d]) for d in ids[i * 10:i * 10 + 30]] for i, qid in enumerate(qs)}
    qrels = {qid: {cands[0][0]: 1, cands[5][0]: 2} for qid, cands in candidates.items()}
    index = crossrank.DenseIndex(be.encode([docs[d] for d in ids]), ids=ids)

    recording = RecordingBiEncoder(str(minilm_dir))
    recording.calls = []
    fitted = crossrank.HybridReranker(bi_encoder=recording, bm25=True)
    with_index = fitted.fit((qs, candidates, qrels), embeddings=index, max_rounds=3)
    assert recording.calls == [1] * len(qs), "with embeddings, only each query is embedded"

    recording.calls = []
    reference = crossrank.HybridReranker(bi_encoder=recording, bm25=True)
    without = reference.fit((qs, candidates, qrels), max_rounds=3)
    assert sorted(recording.calls) == sorted([1, 30] * len(qs))
    assert with_index["weights"] == pytest.approx(without["weights"], abs=1e-9)
    assert with_index["score"] == pytest.approx(without["score"], abs=1e-12)

    as_mapping = {d: index.embeddings[i] for i, d in enumerate(ids)}
    mapped = crossrank.HybridReranker(bi_encoder=be, bm25=True).fit((qs, candidates, qrels), embeddings=as_mapping,
                                                                    max_rounds=3)
    assert mapped["weights"] == pytest.approx(without["weights"], abs=1e-6)
    with pytest.raises(ValueError, match="embeddings have no row for documents"):
        crossrank.HybridReranker(bi_encoder=be).fit((qs, candidates, qrels), embeddings={ids[0]: as_mapping[ids[0]]})
    with pytest.raises(TypeError, match="embeddings must be a crossrank.DenseIndex or a mapping"):
        crossrank.HybridReranker(bi_encoder=be).fit((qs, candidates, qrels), embeddings=[1, 2])
