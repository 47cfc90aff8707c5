"""crossrank.integrations.langchain: the LangChain adapter, with real models and a real
LangChain vector store (no mocks of crossrank)."""

from __future__ import annotations

import asyncio
import copy
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# LangChain's own ContextualCompressionRetriever (langchain-classic, the `langchain.retrievers` of LangChain 1.x).
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.cross_encoders import BaseCrossEncoder
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore

import crossrank
from crossrank.integrations.langchain import CrossRankCrossEncoder, CrossRankEmbeddings, CrossRankReranker

ROOT = Path(__file__).resolve().parent.parent
QUERIES = [
    "what are the effects of heat transfer on boundary layer flow",
    "what similarity laws must be obeyed when constructing aeroelastic models of heated high speed aircraft .",
    "how does the slipstream of a propeller change the lift of a wing",
]


@pytest.fixture(scope="module")
def cross_encoder(ce_dir) -> crossrank.CrossEncoder:
    return crossrank.CrossEncoder(ce_dir)


@pytest.fixture(scope="module")
def bi_encoder(minilm_dir) -> crossrank.BiEncoder:
    return crossrank.BiEncoder(minilm_dir)


@pytest.fixture(scope="module")
def store(cranfield, minilm_dir) -> InMemoryVectorStore:
    """The first 200 Cranfield abstracts, embedded through the adapter."""
    _, corpus = cranfield
    vector_store = InMemoryVectorStore(CrossRankEmbeddings(minilm_dir))
    vector_store.add_documents([Document(page_content=d["text"], id=d["_id"], metadata={"id": d["_id"]})
                                for d in corpus[:200]])
    return vector_store


@pytest.fixture(scope="module")
def documents(cranfield) -> list[Document]:
    """Twelve abstracts with ids and nested metadata (to catch shared, mutated dicts)."""
    _, corpus = cranfield
    return [Document(page_content=d["text"], id=f"doc-{d['_id']}",
                     metadata={"id": d["_id"], "source": {"collection": "cranfield", "tags": ["aero"]}})
            for d in corpus[200:212]]


def expected_ranking(cross_encoder: crossrank.CrossEncoder, query: str,
                     docs: list[Document]) -> list[tuple[int, float]]:
    """(position, score) best first, computed from CrossEncoder.predict alone; equal scores
    keep their input order (a stable sort)."""
    scores = cross_encoder.predict([(query, d.page_content) for d in docs])
    return sorted(((i, float(s)) for i, s in enumerate(scores)), key=lambda p: -p[1])


def assert_scored_copies(result: list[Document], docs: list[Document], expected: list[tuple[int, float]]) -> None:
    """``result`` is the documents at ``expected``'s positions, in that order, each a copy with
    the expected Python-float relevance_score and otherwise unchanged."""
    assert len(result) == len(expected)
    for doc, (i, score) in zip(result, expected):
        original = docs[i]
        assert doc.page_content == original.page_content
        assert doc.id == original.id
        assert type(doc.metadata["relevance_score"]) is float
        assert doc.metadata["relevance_score"] == pytest.approx(score, abs=1e-6)
        # Whether the model cut the document: said by CrossEncoders, not by other rerankers.
        assert type(doc.metadata.get("truncated", False)) is bool
        added = ("relevance_score", "truncated")
        assert {k: v for k, v in doc.metadata.items() if k not in added} == original.metadata
        assert not any(k in original.metadata for k in added)
        assert doc is not original and doc.metadata is not original.metadata


def test_reranker_says_which_documents_were_truncated(ce_dir, documents):
    """metadata["truncated"]: whether the cross-encoder read the document only in part."""
    short = crossrank.CrossEncoder(ce_dir, max_length=96)
    docs = documents + [Document(page_content="flutter", id="tiny")]
    result = CrossRankReranker(model=short, top_n=len(docs)).compress_documents(docs, QUERIES[0])
    details = {r["corpus_id"]: r for r in short.rank(QUERIES[0], [d.page_content for d in docs],
                                                     return_details=True)}
    by_id = {d.id: i for i, d in enumerate(docs)}
    flags = {d.id: d.metadata["truncated"] for d in result}
    assert flags == {d.id: details[by_id[d.id]]["truncated"] for d in docs}
    assert flags["tiny"] is False and any(flags.values())


# --- end to end -------------------------------------------------------------------------------


def test_vector_store_then_reranker_end_to_end(store, cross_encoder):
    retriever = store.as_retriever(search_kwargs={"k": 20})
    reranker = CrossRankReranker(model=cross_encoder, top_n=5)
    compression = ContextualCompressionRetriever(base_compressor=reranker, base_retriever=retriever)
    reordered = 0
    for query in QUERIES:
        retrieved = retriever.invoke(query)
        assert len(retrieved) == 20
        expected = expected_ranking(cross_encoder, query, retrieved)[:5]

        result = compression.invoke(query)
        assert [d.id for d in result] == [retrieved[i].id for i, _ in expected]
        assert_scored_copies(result, retrieved, expected)
        assert [d.metadata["id"] for d in result] == [d.id for d in result]
        reordered += [d.id for d in result] != [d.id for d in retrieved[:5]]

        # The async path of the same pipeline gives the same documents and scores.
        aresult = asyncio.run(compression.ainvoke(query))
        assert [(d.id, d.metadata) for d in aresult] == [(d.id, d.metadata) for d in result]

    # The cross-encoder actually changed the retriever's order (else the test proves little).
    assert reordered > 0
    # Nothing leaked back into the index: retrieving again gives documents without scores.
    assert all("relevance_score" not in d.metadata for d in retriever.invoke(QUERIES[0]))


# --- CrossRankReranker ---------------------------------------------------------------------


def test_reranker_returns_top_n_copies_and_leaves_input_alone(cross_encoder, documents):
    before = copy.deepcopy(documents)
    query = QUERIES[0]
    result = CrossRankReranker(cross_encoder, top_n=4).compress_documents(documents, query)
    assert_scored_copies(list(result), documents, expected_ranking(cross_encoder, query, documents)[:4])
    assert documents == before
    # Nested metadata is copied too: changing the result's leaves the input's alone.
    result[0].metadata["source"]["tags"].append("changed")
    assert documents == before


def test_acompress_equals_compress(cross_encoder, documents):
    reranker = CrossRankReranker(model=cross_encoder, top_n=5)
    for query in QUERIES:
        sync = reranker.compress_documents(documents, query)
        asynchronous = asyncio.run(reranker.acompress_documents(documents, query))
        assert [(d.id, d.page_content, d.metadata) for d in asynchronous] == \
               [(d.id, d.page_content, d.metadata) for d in sync]


def test_score_threshold_drops_documents(cross_encoder, documents):
    query = QUERIES[1]
    expected = expected_ranking(cross_encoder, query, documents)
    scores = [s for _, s in expected]
    threshold = scores[5]  # an actual score: a document scoring exactly the threshold is kept
    above = [(i, s) for i, s in expected if s >= threshold]
    assert len(above) == 6

    result = CrossRankReranker(cross_encoder, top_n=len(documents), score_threshold=threshold) \
        .compress_documents(documents, query)
    assert_scored_copies(list(result), documents, above)
    # top_n still caps what passes the threshold.
    capped = CrossRankReranker(cross_encoder, top_n=2, score_threshold=threshold).compress_documents(documents, query)
    assert_scored_copies(list(capped), documents, above[:2])
    # A threshold above every score leaves nothing.
    assert CrossRankReranker(cross_encoder, score_threshold=max(scores) + 1).compress_documents(documents, query) == []


def test_top_n_larger_than_the_documents_returns_all_reordered(cross_encoder, documents):
    docs = documents[:4]
    result = CrossRankReranker(cross_encoder, top_n=50).compress_documents(docs, QUERIES[0])
    expected = expected_ranking(cross_encoder, QUERIES[0], docs)
    assert_scored_copies(list(result), docs, expected)
    assert [i for i, _ in expected] != [0, 1, 2, 3]


def test_hybrid_reranker_as_model(documents):
    hybrid = crossrank.HybridReranker(bm25=True)
    texts = [d.page_content for d in documents]
    for query in QUERIES:
        ranking = hybrid.rerank(query, texts)
        result = CrossRankReranker(hybrid, top_n=3).compress_documents(documents, query)
        assert_scored_copies(list(result), documents, [(r["corpus_id"], r["score"]) for r in ranking[:3]])
    # BM25 (minmax-normalized over the candidates) puts a document sharing the most query
    # terms first, at 1.0.
    assert result[0].metadata["relevance_score"] == 1.0


def test_multistage_and_model_path_as_model(cross_encoder, bi_encoder, ce_dir, documents):
    query = QUERIES[0]
    # A path is loaded as a CrossEncoder: same scores as the fixture model.
    by_path = CrossRankReranker(str(ce_dir), top_n=3)
    assert isinstance(by_path.model, crossrank.CrossEncoder)
    assert_scored_copies(list(by_path.compress_documents(documents, query)), documents,
                         expected_ranking(cross_encoder, query, documents)[:3])
    # A cascade: bi-encoder keeps 6, the cross-encoder orders those.
    cascade = crossrank.MultiStage([(bi_encoder, 6), (cross_encoder, 6)])
    ranking = cascade.rerank(query, [d.page_content for d in documents])
    result = CrossRankReranker(cascade, top_n=3).compress_documents(documents, query)
    assert [d.id for d in result] == [documents[r["corpus_id"]].id for r in ranking[:3]]
    assert all(type(d.metadata["relevance_score"]) is float for d in result)


def test_empty_document_list_returns_empty_without_scoring():
    calls: list[int] = []

    def counting_signal(query: str, texts: list[str]) -> list[float]:
        calls.append(len(texts))
        return [float(len(t)) for t in texts]

    # A real crossrank reranker whose only signal records each call.
    reranker = CrossRankReranker(crossrank.HybridReranker(signals={"length": counting_signal}), top_n=2)
    assert reranker.compress_documents([], "query") == []
    assert asyncio.run(reranker.acompress_documents([], "query")) == []
    assert calls == []
    result = reranker.compress_documents([Document("a"), Document("abc"), Document("ab")], "query")
    assert calls == [3] and [d.page_content for d in result] == ["abc", "ab"]


def test_empty_query_is_scored_normally(cross_encoder, documents):
    result = CrossRankReranker(cross_encoder, top_n=3).compress_documents(documents, "")
    assert_scored_copies(list(result), documents, expected_ranking(cross_encoder, "", documents)[:3])


def test_empty_page_content_is_scored_normally(cross_encoder, documents):
    docs = [*documents[:3], Document(page_content="", id="empty", metadata={"id": "empty"})]
    query = QUERIES[2]
    result = CrossRankReranker(cross_encoder, top_n=len(docs)).compress_documents(docs, query)
    assert_scored_copies(list(result), docs, expected_ranking(cross_encoder, query, docs))
    empty = next(d for d in result if d.id == "empty")
    assert empty.metadata["relevance_score"] == pytest.approx(float(cross_encoder.predict((query, ""))), abs=1e-6)


@pytest.mark.parametrize("top_n", [0, -1, True, 2.5, "3", None])
def test_bad_top_n_raises_value_error(cross_encoder, top_n):
    with pytest.raises(ValueError, match="top_n must be a positive integer"):
        CrossRankReranker(cross_encoder, top_n=top_n)


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), "0.5", True])
def test_bad_score_threshold_raises_value_error(cross_encoder, threshold):
    with pytest.raises(ValueError, match="score_threshold must be a finite number"):
        CrossRankReranker(cross_encoder, score_threshold=threshold)


def test_bad_settings_after_construction_and_unknown_options(cross_encoder):
    reranker = CrossRankReranker(cross_encoder)
    with pytest.raises(ValueError, match="top_n"):
        reranker.top_n = 0
    assert reranker.top_n == 3
    with pytest.raises(ValueError, match="top_k"):
        CrossRankReranker(cross_encoder, top_k=5)  # LangChain's name is top_n


@pytest.mark.parametrize("model", [42, None, object(), lambda q, docs: [0.0] * len(docs)])
def test_bad_model_raises_type_error(model):
    with pytest.raises(TypeError, match="model must be a crossrank"):
        CrossRankReranker(model=model)


def test_reranker_is_a_langchain_document_compressor(cross_encoder):
    assert isinstance(CrossRankReranker(cross_encoder), BaseDocumentCompressor)


# --- CrossRankCrossEncoder -----------------------------------------------------------------


def test_cross_encoder_score_equals_predict(cross_encoder, ce_dir, documents):
    pairs = [(q, d.page_content) for q in QUERIES for d in documents[:4]] + [("", "x"), ("x", ""), ("", "")]
    wrapper = CrossRankCrossEncoder(cross_encoder)
    assert isinstance(wrapper, BaseCrossEncoder)
    scores = wrapper.score(pairs)
    assert all(type(s) is float for s in scores)
    np.testing.assert_allclose(scores, cross_encoder.predict(pairs), rtol=0, atol=1e-6)
    assert wrapper.score([]) == []
    # Lists as pairs (LangChain's own tests pass [query, text]) and a path as the model.
    np.testing.assert_allclose(CrossRankCrossEncoder(model=str(ce_dir), batch_size=2).score([list(p) for p in pairs]),
                               scores, rtol=0, atol=1e-6)


def test_cross_encoder_refuses_wrong_models(cross_encoder, bi_encoder, ce_multilabel_dir):
    with pytest.raises(TypeError, match="crossrank.CrossEncoder"):
        CrossRankCrossEncoder(bi_encoder)
    with pytest.raises(ValueError, match="3 labels"):
        CrossRankCrossEncoder(crossrank.CrossEncoder(ce_multilabel_dir))
    with pytest.raises(ValueError, match="batch_size"):
        CrossRankCrossEncoder(cross_encoder, batch_size=0)


# --- CrossRankEmbeddings -------------------------------------------------------------------


def test_embeddings_equal_bi_encoder(bi_encoder, minilm_dir, documents):
    texts = [d.page_content for d in documents] + [""]
    embeddings = CrossRankEmbeddings(minilm_dir)
    assert isinstance(embeddings, Embeddings)
    vectors = embeddings.embed_documents(texts)
    assert isinstance(vectors, list) and all(isinstance(v, list) for v in vectors)
    assert all(type(x) is float for v in vectors for x in v)
    np.testing.assert_allclose(vectors, bi_encoder.encode(texts, normalize_embeddings=True), rtol=0, atol=1e-6)

    query = embeddings.embed_query(QUERIES[0])
    assert isinstance(query, list) and all(type(x) is float for x in query)
    np.testing.assert_allclose(query, bi_encoder.encode([QUERIES[0]], normalize_embeddings=True)[0], rtol=0, atol=1e-6)
    assert embeddings.embed_documents([]) == []

    # Async: the same vectors, through BiEncoder.aencode.
    np.testing.assert_allclose(asyncio.run(embeddings.aembed_documents(texts)), vectors, rtol=0, atol=1e-6)
    np.testing.assert_allclose(asyncio.run(embeddings.aembed_query(QUERIES[0])), query, rtol=0, atol=1e-6)
    assert asyncio.run(embeddings.aembed_documents([])) == []

    # Batch size changes only how the texts are grouped.
    small_batches = CrossRankEmbeddings(model=bi_encoder, batch_size=3).embed_documents(texts)
    np.testing.assert_allclose(small_batches, vectors, rtol=0, atol=1e-5)


def test_embeddings_normalize_and_bad_arguments(bi_encoder, cross_encoder):
    texts = ["boundary layer", "heat transfer in slip flow"]
    raw = CrossRankEmbeddings(bi_encoder, normalize_embeddings=False).embed_documents(texts)
    np.testing.assert_allclose(raw, bi_encoder.encode(texts, normalize_embeddings=False), rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(CrossRankEmbeddings(bi_encoder).embed_documents(texts), axis=1), 1.0,
                               atol=1e-5)
    with pytest.raises(TypeError, match="crossrank.BiEncoder"):
        CrossRankEmbeddings(cross_encoder)
    with pytest.raises(ValueError, match="batch_size"):
        CrossRankEmbeddings(bi_encoder, batch_size=0)


# --- packaging -----------------------------------------------------------------------------


def test_missing_langchain_core_names_the_extra():
    code = (
        "import sys\n"
        "sys.modules['langchain_core'] = None  # makes `import langchain_core` raise ImportError\n"
        "import crossrank\n"
        "assert 'crossrank.integrations.langchain' not in sys.modules\n"
        "try:\n"
        "    import crossrank.integrations.langchain\n"
        "except ImportError as e:\n"
        "    print('ImportError:', e)\n"
        "else:\n"
        "    raise SystemExit('imported without langchain_core')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "crossrank[langchain]" in out.stdout


def test_example_runs(cranfield):
    out = subprocess.run([sys.executable, "examples/langchain_rerank.py", "--limit", "100"], check=True,
                         cwd=ROOT, capture_output=True, text=True)
    assert "indexed 100 documents; retrieved 20" in out.stdout
    scored = re.findall(r"^\s+\d\. doc\s+\d+\s+relevance_score=(\d\.\d{6})", out.stdout, flags=re.M)
    assert len(scored) == 5
    assert [float(s) for s in scored] == sorted((float(s) for s in scored), reverse=True)
