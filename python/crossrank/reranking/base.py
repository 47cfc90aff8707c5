"""What every reranker shares: the :class:`Ranking` result list, the :class:`Reranker` base
class (ranking, the selective options ``rerank_top_n`` / ``score_threshold`` / ``min_keep``,
the callable and async protocols) and the argument checks the other modules reuse."""

from __future__ import annotations

import asyncio
import functools
import math
import time
from typing import Any, Iterable, Sequence

import numpy as np

from crossrank._core import BiEncoder, CrossEncoder


class Ranking(list):
    """A list of result dicts, best first, with ``timings``: seconds per stage, and for
    :class:`PairwiseReranker` ``comparisons``: how many times the comparator was asked."""

    timings: dict[str, float]
    comparisons: int | None = None

    def __init__(self, items: Iterable[dict] = (), timings: dict[str, float] | None = None) -> None:
        super().__init__(items)
        self.timings = dict(timings or {})


def _check_query_documents(query: Any, documents: Any) -> list[str]:
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, got {type(query).__name__}")
    if isinstance(documents, str) or not isinstance(documents, Sequence):
        raise TypeError(f"documents must be a list of str, got {type(documents).__name__}")
    for i, d in enumerate(documents):
        if not isinstance(d, str):
            raise TypeError(f"documents[{i}] must be a str, got {type(d).__name__}")
    return list(documents)


def _optional_count(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer or None, got {value!r}")
    return int(value)


def _finite_scores(scores: Any, n: int, who: str) -> np.ndarray:
    """``scores`` as a float64 array of shape ``(n,)``; a ``TypeError`` / ``ValueError``
    naming ``who`` when they are not numbers, not one per document, or not finite."""
    try:
        array = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{who} must return numbers, got {type(scores).__name__}") from e
    if array.shape != (n,):
        raise ValueError(f"{who} returned scores of shape {array.shape} for {n} documents")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f"{who} returned a non-finite score ({array[bad[0]]}) for document {int(bad[0])}")
    return array


def _name(model: Any) -> str:
    return getattr(model, "__name__", type(model).__name__)


def _label(model: Any) -> str:
    """A short name for a stage or comparator in timings and reprs (the wrapped model's
    for a model wrapped as a Reranker)."""
    inner = getattr(model, "model", model)
    return type(inner).__name__ if not callable(inner) or isinstance(inner, (CrossEncoder, BiEncoder, Reranker)) \
        else _name(inner)


class Reranker:
    """Base class: subclasses implement ``score(query, documents) -> np.ndarray``; this class
    adds ranking, the selective options and the callable protocol."""

    def __init__(self, rerank_top_n: int | None = None, score_threshold: float | None = None,
                 min_keep: int = 0) -> None:
        self.rerank_top_n = _optional_count(rerank_top_n, "rerank_top_n")
        if score_threshold is not None and not math.isfinite(score_threshold):
            raise ValueError(f"score_threshold must be a finite number or None, got {score_threshold!r}")
        self.score_threshold = score_threshold
        self.min_keep = _optional_count(min_keep, "min_keep") or 0

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, query: str, documents: Sequence[str]) -> np.ndarray:
        return self.score(query, documents)

    async def arerank(self, query: str, documents: Sequence[str], top_k: int | None = None,
                      **kwargs: Any) -> Ranking:
        """``rerank`` on the running event loop's default executor: the loop keeps serving
        while the models score (they release the GIL)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(self.rerank, query, documents, top_k=top_k, **kwargs))

    async def ascore(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """``score`` on the running event loop's default executor."""
        return await asyncio.get_running_loop().run_in_executor(None, self.score, query, documents)

    def _finish(self, head: list[dict], tail: Sequence[int], documents: list[str], top_k: int | None,
                return_documents: bool, timings: dict[str, float], **tail_fields: Any) -> Ranking:
        """``head``: the re-scored results, best first; ``tail``: positions of candidates
        that were not scored (beyond ``rerank_top_n``), appended in input order with
        ``score`` None. The threshold applies to the head (keeping at least ``min_keep``);
        then the list is cut to ``top_k``."""
        if self.score_threshold is not None:
            kept = [r for r in head if r["score"] >= self.score_threshold]
            head = kept if len(kept) >= self.min_keep else head[: self.min_keep]
        results = head + [{"corpus_id": i, "score": None, **tail_fields} for i in tail]
        if top_k is not None:
            results = results[:top_k]
        if return_documents:
            for r in results:
                r["text"] = documents[r["corpus_id"]]
        return Ranking(results, timings)

    def _ranked(self, documents: list[str], scored: np.ndarray, extra: list[dict] | None,
                top_k: int | None, return_documents: bool, timings: dict[str, float]) -> Ranking:
        order = sorted(range(len(scored)), key=lambda i: (-scored[i], i))
        head = [{"corpus_id": i, "score": float(scored[i]), **(extra[i] if extra is not None else {})} for i in order]
        return self._finish(head, range(len(scored), len(documents)), documents, top_k, return_documents, timings)

    def rerank(self, query: str, documents: Sequence[str], top_k: int | None = None,
               return_documents: bool = False) -> Ranking:
        documents = _check_query_documents(query, documents)
        top_k = _optional_count(top_k, "top_k")
        head = documents if self.rerank_top_n is None else documents[: self.rerank_top_n]
        start = time.perf_counter()
        scores, info = self._score_head(query, head) if head else (np.zeros(0), {})
        ranking = self._ranked(documents, _finite_scores(scores, len(head), type(self).__name__), None, top_k,
                               return_documents, {type(self).__name__: time.perf_counter() - start})
        for name, value in info.items():
            setattr(ranking, name, value)
        return ranking

    def _score_head(self, query: str, head: list[str]) -> tuple[np.ndarray, dict[str, Any]]:
        """Scores of the documents to re-rank, and attributes to set on the Ranking."""
        return self.score(query, head), {}
