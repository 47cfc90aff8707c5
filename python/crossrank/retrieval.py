"""First-stage retrieval: BM25, dense (bi-encoder + exact index) and their hybrid.

>>> from crossrank import BM25, BiEncoder
>>> from crossrank.retrieval import DenseRetriever, HybridRetriever
>>> bm25 = BM25(texts, ids=doc_ids)
>>> dense = DenseRetriever(BiEncoder("sentence-transformers/all-MiniLM-L6-v2"), texts, ids=doc_ids)
>>> hybrid = HybridRetriever(bm25, dense)            # reciprocal rank fusion, k=60
>>> ids, scores = hybrid.search("boundary layer transition", top_k=10)

Every retriever has ``search(query, top_k) -> (ids, scores)`` and
``search_batch(queries, top_k) -> [(ids, scores), ...]``, best first. ``ids`` are the
documents' ids when the retriever was given ``ids``, else their corpus positions.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np

from crossrank._core import BM25, BiEncoder, DenseIndex, reciprocal_rank_fusion, weighted_sum_fusion

__all__ = ["BM25", "DenseIndex", "DenseRetriever", "HybridRetriever", "fuse"]

Hits = tuple[Any, np.ndarray]


def _check_query(query: object) -> str:
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, got {type(query).__name__}")
    return query


def fuse(runs: Sequence[Any], method: Literal["rrf", "weighted"] = "rrf", k: float = 60.0,
         weights: Sequence[float] | None = None) -> dict:
    """Fuse one query's runs (``{id: score}`` dicts or ``(ids, scores)`` pairs) into
    ``{id: fused score}``, best first: reciprocal rank fusion or a weighted sum of min-max
    normalized scores."""
    weights = None if weights is None else [float(w) for w in weights]
    if method == "rrf":
        return reciprocal_rank_fusion(list(runs), k=float(k), weights=weights)
    if method == "weighted":
        return weighted_sum_fusion(list(runs), weights=weights)
    raise ValueError(f"method must be 'rrf' or 'weighted', got {method!r}")


class DenseRetriever:
    """A bi-encoder and a :class:`DenseIndex` of its corpus embeddings.

    Args:
        encoder: the :class:`BiEncoder` for documents and queries.
        corpus: document texts to embed (at construction).
        ids: one id per document (default: positions).
        metric: ``"cosine"`` (default) or ``"dot"``.
        batch_size, show_progress_bar: passed to ``encoder.encode`` for the corpus.
        query_prefix, document_prefix: prepended before encoding (e5-style models).
    """

    def __init__(
        self,
        encoder: BiEncoder,
        corpus: Sequence[str],
        ids: Sequence[str] | None = None,
        metric: Literal["cosine", "dot"] = "cosine",
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
    ) -> None:
        if not isinstance(corpus, (list, tuple)) or len(corpus) == 0:
            raise ValueError("corpus must be a non-empty list of str")
        self.encoder = encoder
        self.query_prefix = query_prefix
        texts = [document_prefix + t for t in corpus] if document_prefix else list(corpus)
        embeddings = encoder.encode(texts, batch_size=batch_size, show_progress_bar=show_progress_bar)
        self.index = DenseIndex(embeddings, ids=None if ids is None else list(ids), metric=metric)

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        return self.encoder.encode([self.query_prefix + q for q in queries])

    def search(self, query: str, top_k: int = 10) -> Hits:
        return self.search_batch([_check_query(query)], top_k)[0]

    def search_batch(self, queries: Sequence[str], top_k: int = 10,
                     show_progress_bar: bool | None = None) -> list[Hits]:
        if isinstance(queries, str):
            raise TypeError("queries must be a list of str, not a single str")
        if len(queries) == 0:
            return []
        return self.index.search(self.encode_queries(list(queries)), top_k=top_k)

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return f"DenseRetriever({self.encoder!r}, {self.index!r})"


class HybridRetriever:
    """Fuses the results of several retrievers (BM25 and dense, typically).

    Each retriever returns its top ``depth`` documents; they are fused by reciprocal rank
    fusion (``method="rrf"``: ``sum_i w_i / (k + rank_i)``) or by a weighted sum of min-max
    normalized scores (``method="weighted"``). A document one retriever did not return
    contributes nothing from it. The retrievers must name documents the same way (same
    ``ids``, or both by position).

    Args:
        *retrievers: objects with ``search_batch(queries, top_k)``.
        method: ``"rrf"`` (default) or ``"weighted"``.
        k: the RRF constant (60, as Cormack et al.).
        weights: one non-negative weight per retriever (default: equal).
        depth: documents taken from each retriever before fusion.
    """

    def __init__(
        self,
        *retrievers: Any,
        method: Literal["rrf", "weighted"] = "rrf",
        k: float = 60.0,
        weights: Sequence[float] | None = None,
        depth: int = 100,
    ) -> None:
        if len(retrievers) < 2:
            raise ValueError("HybridRetriever needs at least two retrievers")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth <= 0:
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        self.retrievers = list(retrievers)
        self.method = method
        self.k = float(k)
        self.weights = None if weights is None else [float(w) for w in weights]
        self.depth = depth
        # Checks the method, k and the weights now rather than at the first query.
        fuse([{} for _ in self.retrievers], method, self.k, self.weights)

    def search(self, query: str, top_k: int = 10) -> Hits:
        return self.search_batch([_check_query(query)], top_k)[0]

    def search_batch(self, queries: Sequence[str], top_k: int = 10,
                     show_progress_bar: bool | None = None) -> list[Hits]:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        if isinstance(queries, str):
            raise TypeError("queries must be a list of str, not a single str")
        per_retriever = [r.search_batch(list(queries), top_k=max(self.depth, top_k)) for r in self.retrievers]
        results = []
        for runs in zip(*per_retriever):
            fused = list(fuse(runs, self.method, self.k, self.weights).items())[:top_k]
            ids = [d for d, _ in fused]
            # Positions come back as an int64 array, as each retriever returns them.
            if not any(isinstance(run[0], list) for run in runs):
                ids = np.asarray(ids, dtype=np.int64)
            results.append((ids, np.asarray([s for _, s in fused], dtype=np.float32)))
        return results

    def __repr__(self) -> str:
        return (f"HybridRetriever({', '.join(map(repr, self.retrievers))}, method={self.method!r}, "
                f"k={self.k:g}, weights={self.weights}, depth={self.depth})")
