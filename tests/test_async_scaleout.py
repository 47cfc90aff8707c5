"""Async scoring keeps an event loop serving, and rerankers travel to other processes:
pickled into a ProcessPoolExecutor and into Ray Data's map_batches (local Ray)."""

from __future__ import annotations

import asyncio
import importlib.util
import multiprocessing
import pickle
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import crossrank
from crossrank import HybridReranker, MultiStage, PairwiseReranker

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def workload(cranfield):
    queries, corpus = cranfield
    bm25 = crossrank.BM25([d["text"] for d in corpus])
    out = []
    for q in queries[:4]:
        ids, _ = bm25.search(q["text"], top_k=60)
        out.append((q["text"], [corpus[int(i)]["text"] for i in ids]))
    return out


def test_heartbeat_keeps_ticking_during_four_concurrent_aranks(ce_dir, workload):
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=256)
    want = [ce.rank(q, docs) for q, docs in workload]

    async def main():
        ticks: list[float] = []
        finished: list[float] = []
        stop = asyncio.Event()

        async def heartbeat():
            while not stop.is_set():
                ticks.append(time.perf_counter())
                await asyncio.sleep(0.001)

        async def one(q, docs):
            result = await ce.arank(q, docs)
            finished.append(time.perf_counter())
            return result

        beat = asyncio.create_task(heartbeat())
        await asyncio.sleep(0)  # let the heartbeat start
        start = time.perf_counter()
        results = await asyncio.gather(*(one(q, docs) for q, docs in workload))
        stop.set()
        await beat
        return results, ticks, start, finished

    results, ticks, start, finished = asyncio.run(main())
    assert results == want
    # The loop ran while all four were scoring: ticks between the start and the first
    # completion (a call holding the GIL, or running on the loop's thread, allows none).
    during = [t for t in ticks if start < t < min(finished)]
    assert len(during) >= 3, f"{len(during)} heartbeats while scoring"


def test_async_variants_equal_sync(ce_dir, minilm_dir, workload):
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=256)
    bi = crossrank.BiEncoder(str(minilm_dir))
    q, docs = workload[0]
    hybrid = HybridReranker(cross_encoder=ce, bm25=True)

    async def main():
        return await asyncio.gather(ce.apredict([(q, d) for d in docs[:8]], batch_size=4),
                                    bi.aencode(docs[:8]), hybrid.arerank(q, docs[:10], top_k=3),
                                    hybrid.ascore(q, docs[:10]))

    predicted, encoded, reranked, scored = asyncio.run(main())
    np.testing.assert_array_equal(predicted, ce.predict([(q, d) for d in docs[:8]], batch_size=4))
    np.testing.assert_array_equal(encoded, bi.encode(docs[:8]))
    assert reranked == hybrid.rerank(q, docs[:10], top_k=3)
    np.testing.assert_array_equal(scored, hybrid.score(q, docs[:10]))
    with pytest.raises(RuntimeError, match="event loop"):
        ce.apredict([(q, docs[0])])  # outside a running loop, as asyncio itself says


def _rerank_in_worker(payload: bytes, query: str, documents: list[str]):
    reranker = pickle.loads(payload)
    return reranker.rerank(query, documents)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_rerankers_pickle_into_worker_processes(ce_dir, minilm_dir, workload, start_method):
    """With "fork" the child inherits a process whose thread pool has already run (the
    models above scored in it): crossrank builds a new pool in the child instead of waiting
    forever on threads that fork did not copy."""
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=256)
    bi = crossrank.BiEncoder(str(minilm_dir))
    rerankers = [HybridReranker(cross_encoder=ce, bm25=True, bi_encoder=bi, rerank_top_n=20),
                 MultiStage([(bi, 20), (ce, 5)]),
                 PairwiseReranker(ce, method="sort", rerank_top_n=6)]
    q, docs = workload[1]
    docs = docs[:30]
    warm = ce.predict([(q, d) for d in docs[:4]])  # the parent's pool has run before the fork
    assert np.isfinite(warm).all()
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context(start_method)) as pool:
        remote = [pool.submit(_rerank_in_worker, pickle.dumps(r), q, docs).result() for r in rerankers]
    for reranker, got in zip(rerankers, remote):
        local = reranker.rerank(q, docs)
        assert [r["corpus_id"] for r in got] == [r["corpus_id"] for r in local]
        assert [r["score"] for r in got] == pytest.approx([r["score"] for r in local], abs=1e-6)


def test_ray_data_map_batches_scores_like_local(ce_dir):
    """Ray Data in local mode runs the example's UDF with the pickled model in two actors."""
    spec = importlib.util.spec_from_file_location("ray_batch_rerank", ROOT / "examples" / "ray_batch_rerank.py")
    example = importlib.util.module_from_spec(spec)
    sys.modules["ray_batch_rerank"] = example
    spec.loader.exec_module(example)
    # The workers cannot import examples/ as a module: ship the UDF class by value.
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(example)
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=256)
    rows = example.candidates(ROOT / "data" / "cranfield", n_queries=4, top_k=15)
    scored = example.rerank_with_ray(ce, rows, actors=2, batch_size=16)
    assert len(scored) == len(rows) == 60
    local = ce.predict([(r["query"], r["document"]) for r in rows])
    by_key = {(r["qid"], r["doc_id"]): r["score"] for r in scored}
    got = [by_key[(r["qid"], r["doc_id"])] for r in rows]
    np.testing.assert_allclose(got, local, atol=1e-6)
