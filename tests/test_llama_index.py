"""crossrank.integrations.llama_index against llama-index-core itself: a VectorStoreIndex over
Cranfield embedded by CrossRankEmbedding, its retriever and query engine re-ranked by
CrossRankRerank, checked against scores computed directly with CrossEncoder.predict; the
events llama-index's rerankers fire; the async paths; the lazy import and the example."""

from __future__ import annotations

import asyncio
import math
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core import Settings, VectorStoreIndex
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload, LlamaDebugHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.llms import MockLLM
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

import crossrank
from crossrank.integrations.llama_index import CrossRankEmbedding, CrossRankRerank

ROOT = Path(__file__).resolve().parent.parent
N_DOCS = 200
K = 20


# --- fixtures and the independent reference -----------------------------------------------


@pytest.fixture(scope="module")
def bi(minilm_dir) -> crossrank.BiEncoder:
    return crossrank.BiEncoder(str(minilm_dir))


@pytest.fixture(scope="module")
def index(cranfield, minilm_dir) -> VectorStoreIndex:
    """The first 200 Cranfield abstracts; their id stays in the metadata the embedding and
    the reranker see (MetadataMode.EMBED), so a reranker scoring bare text would differ."""
    _, corpus = cranfield
    nodes = [TextNode(text=d["text"], id_=d["_id"], metadata={"id": d["_id"]}) for d in corpus[:N_DOCS]]
    return VectorStoreIndex(nodes, embed_model=CrossRankEmbedding(minilm_dir))


@pytest.fixture(scope="module")
def queries(cranfield) -> list[str]:
    qs, _ = cranfield
    return [qs[i]["text"] for i in (0, 3, 10)]


@pytest.fixture(scope="module")
def retrieved(index, queries) -> list[NodeWithScore]:
    """Fresh retriever output for the first query (the docstore gives new node objects
    on each retrieval, so tests that write metadata do not leak into each other)."""
    return index.as_retriever(similarity_top_k=K).retrieve(queries[0])


def fresh(index: VectorStoreIndex, query: str) -> list[NodeWithScore]:
    return index.as_retriever(similarity_top_k=K).retrieve(query)


def embed_text(n: NodeWithScore) -> str:
    return n.node.get_content(metadata_mode=MetadataMode.EMBED)


def expected_top(ce: crossrank.CrossEncoder, query: str, nodes: list[NodeWithScore],
                 top_n: int) -> list[tuple[str, float]]:
    """(node id, score) of the best ``top_n`` by CrossEncoder.predict, ties in input order."""
    scores = ce.predict([(query, embed_text(n)) for n in nodes])
    order = sorted(range(len(nodes)), key=lambda i: (-float(scores[i]), i))
    return [(nodes[i].node.node_id, float(scores[i])) for i in order[:top_n]]


def assert_matches(got: list[NodeWithScore], want: list[tuple[str, float]]) -> None:
    assert [n.node.node_id for n in got] == [i for i, _ in want]
    for n, (_, score) in zip(got, want):
        assert type(n.score) is float
        assert n.score == pytest.approx(score, abs=1e-6)


# --- end to end ----------------------------------------------------------------------------


def test_retriever_then_rerank_is_the_cross_encoder_top_n(index, queries, ce):
    rr = CrossRankRerank(model=ce, top_n=5)
    for query in queries:
        nodes = fresh(index, query)
        assert len(nodes) == K
        assert all(embed_text(n).startswith("id: ") for n in nodes)  # metadata is in what is scored
        retrieval_scores = [n.score for n in nodes]
        out = rr.postprocess_nodes(nodes, query_str=query)
        assert_matches(out, expected_top(ce, query, nodes, 5))
        assert [n.score for n in nodes] == retrieval_scores  # the input list is not modified
        assert all(o is not n for o in out for n in nodes)
        # Re-ranking really re-orders this retrieval (else the test could not tell).
        assert [n.node.node_id for n in out] != [n.node.node_id for n in nodes[:5]]


def test_query_engine_source_nodes_are_the_reranked_nodes(index, queries, ce, ce_dir):
    # A model path works as well as a loaded CrossEncoder (max_length as the fixture's).
    assert ce.max_length == crossrank.CrossEncoder(str(ce_dir)).max_length
    rr = CrossRankRerank(model=str(ce_dir), top_n=4)
    assert rr.model_name == str(ce_dir)
    engine = index.as_query_engine(similarity_top_k=K, node_postprocessors=[rr], llm=MockLLM())
    for query in queries[:2]:
        response = engine.query(query)
        assert_matches(response.source_nodes, expected_top(ce, query, fresh(index, query), 4))
        assert isinstance(response.response, str) and response.response
    # Nothing fell back to LlamaIndex's default (OpenAI) LLM or embedding model.
    assert Settings._llm is None and Settings._embed_model is None


def test_async_query_engine(index, queries, ce):
    engine = index.as_query_engine(similarity_top_k=K, node_postprocessors=[CrossRankRerank(model=ce, top_n=3)],
                                   llm=MockLLM())
    response = asyncio.run(engine.aquery(queries[1]))
    assert_matches(response.source_nodes, expected_top(ce, queries[1], fresh(index, queries[1]), 3))


def test_metadata_mode_embed_is_what_is_scored(ce):
    """Metadata excluded from the embedding is excluded from the reranker's text too."""
    nodes = [NodeWithScore(node=TextNode(text=t, metadata={"year": "1962", "source": "internal memo"},
                                         excluded_embed_metadata_keys=["source"]), score=0.1)
             for t in ("supersonic flow over a wedge", "heat conduction in slabs", "flutter of panels")]
    query = "panel flutter at supersonic speeds"
    out = CrossRankRerank(model=ce, top_n=3).postprocess_nodes(nodes, query_str=query)
    assert "internal memo" not in embed_text(nodes[0]) and "1962" in embed_text(nodes[0])
    assert_matches(out, expected_top(ce, query, nodes, 3))
    # Scoring the full text (with "source") would have given other scores.
    all_text = {id(n.node): float(s) for n, s in zip(nodes, ce.predict(
        [(query, n.node.get_content(metadata_mode=MetadataMode.ALL)) for n in nodes]))}
    assert all(abs(o.score - all_text[id(o.node)]) > 1e-4 for o in out)


# --- options -------------------------------------------------------------------------------


def test_keep_retrieval_score(index, queries, ce):
    nodes = fresh(index, queries[0])
    before = {n.node.node_id: n.score for n in nodes}
    rr = CrossRankRerank(model=ce, top_n=5, keep_retrieval_score=True)
    out = rr.postprocess_nodes(nodes, query_str=queries[0])
    assert_matches(out, expected_top(ce, queries[0], nodes, 5))
    for n in nodes:  # every candidate's node keeps its retriever score, as SentenceTransformerRerank does
        assert n.node.metadata["retrieval_score"] == before[n.node.node_id]
        assert "retrieval_score" not in embed_text(n)
        assert "retrieval_score" not in n.node.get_content(metadata_mode=MetadataMode.LLM)
    for n in out:
        assert n.node.metadata["retrieval_score"] != n.score
    # Running it again (or chaining another reranker) scores the same text.
    assert [(n.node.node_id, n.score) for n in rr.postprocess_nodes(nodes, query_str=queries[0])] == \
        [(n.node.node_id, n.score) for n in out]
    # Off by default: no metadata written.
    plain = fresh(index, queries[0])
    CrossRankRerank(model=ce, top_n=5).postprocess_nodes(plain, query_str=queries[0])
    assert all("retrieval_score" not in n.node.metadata for n in plain)


def test_truncated_in_metadata(index, queries, ce_dir):
    """node.metadata["truncated"]: whether the cross-encoder read the node's text only in part;
    kept out of the text embedders and LLMs see."""
    short = crossrank.CrossEncoder(str(ce_dir), max_length=160)
    retrieved = fresh(index, queries[0])
    out = CrossRankRerank(model=short, top_n=K).postprocess_nodes(retrieved, query_str=queries[0])
    texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in retrieved]
    details = short.rank(queries[0], texts, return_details=True)
    expected = {retrieved[r["corpus_id"]].node.node_id: r["truncated"] for r in details}
    assert {n.node.node_id: n.node.metadata["truncated"] for n in out} == expected
    assert any(expected.values())
    for n in out:
        assert "truncated" not in embed_text(n)
        assert "truncated" not in n.node.get_content(metadata_mode=MetadataMode.LLM)


def test_score_threshold_drops_nodes(retrieved, queries, ce):
    ranked = expected_top(ce, queries[0], retrieved, K)
    threshold = float(np.median([s for _, s in ranked]))
    out = CrossRankRerank(model=ce, top_n=K, score_threshold=threshold).postprocess_nodes(retrieved,
                                                                                           query_str=queries[0])
    want = [(i, s) for i, s in ranked if s >= threshold]
    assert 0 < len(want) < K
    assert_matches(out, want)
    # The threshold applies before the cut to top_n.
    out3 = CrossRankRerank(model=ce, top_n=3, score_threshold=threshold).postprocess_nodes(retrieved,
                                                                                            query_str=queries[0])
    assert_matches(out3, want[:3])
    # The threshold keeps scores equal to it.
    fifth = ranked[4][1]
    at = CrossRankRerank(model=ce, top_n=K, score_threshold=fifth).postprocess_nodes(retrieved, query_str=queries[0])
    assert_matches(at, [(i, s) for i, s in ranked if s >= fifth])
    assert at[-1].score == fifth
    # Above every score: nothing is returned.
    none = CrossRankRerank(model=ce, top_n=K, score_threshold=ranked[0][1] + 1.0)
    assert none.postprocess_nodes(retrieved, query_str=queries[0]) == []


def test_top_n_larger_than_the_candidates_returns_them_all(retrieved, queries, ce):
    out = CrossRankRerank(model=ce, top_n=50).postprocess_nodes(retrieved, query_str=queries[0])
    assert len(out) == K
    assert_matches(out, expected_top(ce, queries[0], retrieved, K))
    assert sorted(n.node.node_id for n in out) == sorted(n.node.node_id for n in retrieved)


def test_default_top_n_is_two_as_sentence_transformer_rerank(retrieved, queries, ce):
    rr = CrossRankRerank(model=ce)
    assert rr.top_n == 2 and rr.keep_retrieval_score is False and rr.score_threshold is None
    assert_matches(rr.postprocess_nodes(retrieved, query_str=queries[0]), expected_top(ce, queries[0], retrieved, 2))


def test_hybrid_reranker_with_bm25_as_model(retrieved, queries, ce):
    hr = crossrank.HybridReranker(cross_encoder=ce, bm25=True, weights={"cross_encoder": 0.5, "bm25": 0.5})
    rr = CrossRankRerank(model=hr, top_n=6)
    assert rr.model is hr and rr.model_name == "HybridReranker"
    out = rr.postprocess_nodes(retrieved, query_str=queries[0])
    ranking = hr.rerank(queries[0], [embed_text(n) for n in retrieved], top_k=6)
    assert_matches(out, [(retrieved[r["corpus_id"]].node.node_id, r["score"]) for r in ranking])
    # BM25 changes the order the cross-encoder alone gives.
    assert [n.node.node_id for n in out] != [i for i, _ in expected_top(ce, queries[0], retrieved, 6)]


def test_multistage_as_model(retrieved, queries, ce, bi):
    ms = crossrank.MultiStage([(bi, 10), (ce, 4)])
    out = CrossRankRerank(model=ms, top_n=4).postprocess_nodes(retrieved, query_str=queries[0])
    ranking = ms.rerank(queries[0], [embed_text(n) for n in retrieved], top_k=4)
    assert [n.node.node_id for n in out] == [retrieved[r["corpus_id"]].node.node_id for r in ranking]
    # The last stage's scores: the cross-encoder's on the bi-encoder's best 10.
    assert [n.score for n in out] == pytest.approx([float(r["score"]) for r in ranking], abs=1e-6)
    top10 = sorted(range(K), key=lambda i: -float(bi.similarity(bi.encode([queries[0]]),
                                                                 bi.encode([embed_text(retrieved[i])]))[0, 0]))[:10]
    assert {n.node.node_id for n in out} <= {retrieved[i].node.node_id for i in top10}


def test_bad_arguments(ce, ce_multilabel_dir, tmp_path):
    for top_n in (0, -1, True, 2.5, "3", None):
        with pytest.raises(ValueError, match="top_n"):
            CrossRankRerank(model=ce, top_n=top_n)
    for threshold in (float("nan"), float("inf"), "0.5"):
        with pytest.raises(ValueError, match="score_threshold"):
            CrossRankRerank(model=ce, score_threshold=threshold)
    for model in (42, None, ["a model"], lambda q, d: [0.0] * len(d)):
        with pytest.raises(TypeError, match="model must be"):
            CrossRankRerank(model=model)
    with pytest.raises(ValueError, match="3 labels"):
        CrossRankRerank(model=str(ce_multilabel_dir))
    with pytest.raises(FileNotFoundError, match=r"no-such-model\" does not exist \(and it is not a valid hub id\)"):
        CrossRankRerank(model=str(tmp_path / "no-such-model"))


def test_missing_query_bundle_raises(retrieved, ce):
    rr = CrossRankRerank(model=ce)
    with pytest.raises(ValueError, match="query bundle"):
        rr.postprocess_nodes(retrieved)
    with pytest.raises(ValueError, match="query bundle"):
        asyncio.run(rr.apostprocess_nodes(retrieved))


# --- edge cases ----------------------------------------------------------------------------


class CountingScorer:
    """A plain-Python first stage for crossrank's MultiStage, counting how often it runs."""

    def __init__(self, ce: crossrank.CrossEncoder) -> None:
        self.ce, self.calls = ce, 0

    def __call__(self, query: str, documents: list[str]) -> Any:
        self.calls += 1
        return self.ce.predict([(query, d) for d in documents])


def test_empty_node_list_returns_empty_without_calling_the_model(ce):
    scorer = CountingScorer(ce)
    debug = LlamaDebugHandler()
    rr = CrossRankRerank(model=crossrank.MultiStage([(scorer, 100)]), callback_manager=CallbackManager([debug]))
    assert rr.postprocess_nodes([], query_str="boundary layers") == []
    assert asyncio.run(rr.apostprocess_nodes([], query_str="boundary layers")) == []
    assert scorer.calls == 0
    assert debug.get_event_pairs(CBEventType.RERANKING) == []  # no RERANKING event, as SentenceTransformerRerank
    one = [NodeWithScore(node=TextNode(text="laminar boundary layers"), score=1.0)]
    assert len(rr.postprocess_nodes(one, query_str="boundary layers")) == 1 and scorer.calls == 1


def test_empty_query_is_scored(retrieved, ce):
    out = CrossRankRerank(model=ce, top_n=K).postprocess_nodes(retrieved, query_bundle=QueryBundle(query_str=""))
    assert_matches(out, expected_top(ce, "", retrieved, K))


def test_empty_content_node_is_scored_not_dropped(retrieved, queries, ce):
    empty = NodeWithScore(node=TextNode(text="", id_="empty"), score=0.9)
    assert embed_text(empty) == ""
    nodes = [empty] + list(retrieved[:5])
    out = CrossRankRerank(model=ce, top_n=len(nodes)).postprocess_nodes(nodes, query_str=queries[0])
    assert_matches(out, expected_top(ce, queries[0], nodes, len(nodes)))
    got = {n.node.node_id: n.score for n in out}
    assert got["empty"] == pytest.approx(float(ce.predict((queries[0], ""))), abs=1e-6)


# --- instrumentation -----------------------------------------------------------------------


class Collector(BaseEventHandler):
    events: list = []

    @classmethod
    def class_name(cls) -> str:
        return "Collector"

    def handle(self, event: Any, **kwargs: Any) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def collector():
    root = get_dispatcher()
    handler = Collector()
    root.add_event_handler(handler)
    yield handler
    root.event_handlers = [h for h in root.event_handlers if h is not handler]


def test_rerank_events_and_callback(collector, retrieved, queries, ce):
    debug = LlamaDebugHandler()
    rr = CrossRankRerank(model=ce, top_n=3, callback_manager=CallbackManager([debug]))
    out = rr.postprocess_nodes(retrieved, query_str=queries[0])

    (start,), (end,) = collector.of(ReRankStartEvent), collector.of(ReRankEndEvent)
    assert start.query.query_str == queries[0] and start.top_n == 3 and start.model_name == rr.model_name
    assert start.nodes == retrieved
    assert [n.node.node_id for n in end.nodes] == [n.node.node_id for n in out]
    assert collector.events.index(start) < collector.events.index(end)

    (pair,) = debug.get_event_pairs(CBEventType.RERANKING)
    payload = pair[0].payload
    assert payload[EventPayload.TOP_K] == 3 and payload[EventPayload.QUERY_STR] == queries[0]
    assert payload[EventPayload.MODEL_NAME] == rr.model_name and payload[EventPayload.NODES] == retrieved
    assert pair[1].payload[EventPayload.NODES] == out


def test_events_on_async_empty_and_missing_query(collector, retrieved, queries, ce):
    debug = LlamaDebugHandler()
    rr = CrossRankRerank(model=ce, top_n=2, callback_manager=CallbackManager([debug]))
    out = asyncio.run(rr.apostprocess_nodes(retrieved, query_str=queries[0]))
    assert len(collector.of(ReRankStartEvent)) == 1 and collector.of(ReRankEndEvent)[0].nodes == out
    assert len(debug.get_event_pairs(CBEventType.RERANKING)) == 1

    # No nodes: the start is closed by an end with no nodes.
    rr.postprocess_nodes([], query_str=queries[0])
    assert len(collector.of(ReRankStartEvent)) == 2 and collector.of(ReRankEndEvent)[-1].nodes == []

    # No query: the start fires (query None), then ValueError; no end, no callback event.
    with pytest.raises(ValueError, match="Missing query bundle"):
        rr.postprocess_nodes(retrieved)
    starts, ends = collector.of(ReRankStartEvent), collector.of(ReRankEndEvent)
    assert len(starts) == 3 and starts[-1].query is None and len(ends) == 2
    assert len(debug.get_event_pairs(CBEventType.RERANKING)) == 1


def test_query_engine_fires_the_events(collector, index, queries, ce):
    engine = index.as_query_engine(similarity_top_k=K, node_postprocessors=[CrossRankRerank(model=ce, top_n=3)],
                                   llm=MockLLM())
    response = engine.query(queries[2])
    (start,), (end,) = collector.of(ReRankStartEvent), collector.of(ReRankEndEvent)
    assert len(start.nodes) == K and start.query.query_str == queries[2]
    assert [n.node.node_id for n in end.nodes] == [n.node.node_id for n in response.source_nodes]


# --- async ---------------------------------------------------------------------------------


def test_async_rerank_equals_sync(index, queries, ce):
    hr = crossrank.HybridReranker(cross_encoder=ce, bm25=True)
    for model in (ce, hr):
        rr = CrossRankRerank(model=model, top_n=7, keep_retrieval_score=True)
        for query in queries:
            sync = rr.postprocess_nodes(fresh(index, query), query_str=query)
            nodes = fresh(index, query)
            got = asyncio.run(rr.apostprocess_nodes(nodes, query_str=query))
            assert [(n.node.node_id, n.score) for n in got] == [(n.node.node_id, n.score) for n in sync]
            assert all(type(n.score) is float for n in got)
            assert all("retrieval_score" in n.node.metadata for n in nodes)


def test_async_reranks_run_concurrently(retrieved, queries, ce):
    rr = CrossRankRerank(model=ce, top_n=5)

    async def many():
        return await asyncio.gather(*[rr.apostprocess_nodes(retrieved, query_str=q) for q in queries])

    for q, got in zip(queries, asyncio.run(many())):
        assert_matches(got, expected_top(ce, q, retrieved, 5))


def test_async_rerank_does_not_block_the_event_loop(cranfield, queries, ce):
    """The loop keeps running other tasks while the model scores (on the executor)."""
    _, corpus = cranfield
    nodes = [NodeWithScore(node=TextNode(text=d["text"]), score=0.0) for d in corpus[:N_DOCS]]
    rr = CrossRankRerank(model=ce, top_n=3)

    async def run():
        ticks, done = 0, False

        async def ticker():
            nonlocal ticks
            while not done:
                await asyncio.sleep(0.001)
                ticks += 1

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        out = await rr.apostprocess_nodes(nodes, query_str=queries[0])
        done = True
        await task
        return out, ticks

    out, ticks = asyncio.run(run())
    assert ticks >= 10
    assert_matches(out, expected_top(ce, queries[0], nodes, 3))


# --- embeddings ----------------------------------------------------------------------------


def test_embedding_equals_bi_encoder(minilm_dir, bi, cranfield):
    qs, corpus = cranfield
    texts = [d["text"] for d in corpus[:45]] + [""]
    emb = CrossRankEmbedding(minilm_dir)
    assert emb.model_name == str(minilm_dir) and emb.normalize is True
    want = bi.encode(texts, normalize_embeddings=True)

    batch = emb.get_text_embedding_batch(texts)  # 46 texts: two batches of embed_batch_size=32
    assert isinstance(batch, list) and len(batch) == len(texts)
    assert all(isinstance(v, list) and type(v[0]) is float for v in batch)
    np.testing.assert_allclose(np.array(batch), want, atol=1e-6)
    np.testing.assert_allclose(emb.get_text_embedding(texts[3]), want[3], atol=1e-6)
    q = qs[0]["text"]
    query_vec = emb.get_query_embedding(q)
    assert type(query_vec[0]) is float and math.isclose(float(np.linalg.norm(query_vec)), 1.0, abs_tol=1e-5)
    np.testing.assert_allclose(query_vec, bi.encode([q], normalize_embeddings=True)[0], atol=1e-6)
    assert emb._get_text_embeddings([]) == []


def test_embedding_async_equals_sync(minilm_dir, bi, cranfield):
    qs, corpus = cranfield
    texts = [d["text"] for d in corpus[:40]]
    emb = CrossRankEmbedding(bi, embed_batch_size=16, model_name="minilm")
    assert emb.model_name == "minilm"

    async def run():
        return (await emb.aget_query_embedding(qs[1]["text"]), await emb.aget_text_embedding(texts[0]),
                await emb.aget_text_embedding_batch(texts))

    aq, at, abatch = asyncio.run(run())
    assert aq == emb.get_query_embedding(qs[1]["text"])
    assert at == emb.get_text_embedding(texts[0])
    assert abatch == emb.get_text_embedding_batch(texts)
    assert all(type(v[0]) is float for v in abatch)
    np.testing.assert_allclose(np.array(abatch), bi.encode(texts, normalize_embeddings=True), atol=1e-6)


def test_embedding_normalize():
    """With a model that has no Normalize module: unit vectors by default, the model's raw
    embeddings with normalize=False."""
    import fixtures

    path = fixtures.ensure_tinybert()
    raw = crossrank.BiEncoder(str(path))
    texts = ["wing flutter at transonic speeds", "laminar boundary layer"]
    assert np.linalg.norm(raw.encode(texts[0])) > 2.0
    normalized = CrossRankEmbedding(path).get_text_embedding_batch(texts)
    np.testing.assert_allclose(normalized, raw.encode(texts, normalize_embeddings=True), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(normalized, axis=1), 1.0, atol=1e-5)
    plain = CrossRankEmbedding(path, normalize=False)
    np.testing.assert_allclose(plain.get_text_embedding_batch(texts), raw.encode(texts), atol=1e-5)
    np.testing.assert_allclose(asyncio.run(plain.aget_query_embedding(texts[1])), raw.encode(texts[1]), atol=1e-5)


def test_embedding_bad_model():
    with pytest.raises(TypeError, match="BiEncoder"):
        CrossRankEmbedding(42)


def test_index_retrieval_is_cosine_of_crossrank_embeddings(index, queries, bi, cranfield):
    """The index retrieves by the BiEncoder's embeddings: its top 20 and scores are an
    exact dense search over the same texts."""
    nodes = fresh(index, queries[0])
    _, corpus = cranfield
    docs = [TextNode(text=d["text"], metadata={"id": d["_id"]}) for d in corpus[:N_DOCS]]
    matrix = bi.encode([d.get_content(metadata_mode=MetadataMode.EMBED) for d in docs], normalize_embeddings=True)
    ids, scores = crossrank.DenseIndex(matrix, ids=[d["_id"] for d in corpus[:N_DOCS]]).search(
        bi.encode([queries[0]], normalize_embeddings=True)[0], top_k=K)
    assert [n.node.node_id for n in nodes] == list(ids)
    np.testing.assert_allclose([n.score for n in nodes], scores, atol=1e-5)


def test_components_pickle(ce, minilm_dir, retrieved, queries):
    """Pickled, as LlamaIndex's multiprocessing paths and Ray workers do."""
    rr = pickle.loads(pickle.dumps(CrossRankRerank(model=ce, top_n=3)))
    assert_matches(rr.postprocess_nodes(retrieved, query_str=queries[0]), expected_top(ce, queries[0], retrieved, 3))
    emb = CrossRankEmbedding(minilm_dir)
    assert pickle.loads(pickle.dumps(emb)).get_text_embedding("wing") == emb.get_text_embedding("wing")
    assert CrossRankRerank.class_name() == "CrossRankRerank" and rr.to_dict()["class_name"] == "CrossRankRerank"
    assert "model" not in rr.to_dict() and rr.to_dict()["top_n"] == 3


# --- packaging -----------------------------------------------------------------------------


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_import_crossrank_does_not_import_llama_index():
    result = run_python("import sys, crossrank, crossrank.integrations\n"
                        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'llama_index'))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_missing_llama_index_raises_import_error_naming_the_extra():
    code = ("import sys\n"
            "sys.modules['llama_index'] = None\n"
            "sys.modules['llama_index.core'] = None\n"
            "import crossrank\n"
            "print(crossrank.CrossEncoder.__name__)\n"
            "try:\n"
            "    import crossrank.integrations.llama_index\n"
            "except ImportError as e:\n"
            "    print('ImportError:', e)\n"
            "else:\n"
            "    sys.exit('imported without llama_index')\n")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "CrossEncoder"
    assert lines[1].startswith("ImportError:") and "crossrank[llama-index]" in lines[1]


def test_example_runs(cranfield):
    result = subprocess.run([sys.executable, "examples/llama_index_rerank.py", "--limit", "100"], check=True,
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = result.stdout
    assert "indexed 100 documents; retrieved 20" in out
    rows = re.findall(r"^\s+(\d)\. doc\s+(\d+)\s+score=([0-9.]+)\s+retrieval=([0-9.]+)", out, re.M)
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4, 5]
    scores = [float(r[2]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    first_100 = {d["_id"] for d in cranfield[1][:100]}
    assert {r[1] for r in rows} <= first_100
