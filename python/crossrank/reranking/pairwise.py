"""Pairwise re-ranking: :class:`PairwiseReranker` orders documents by comparing them two
at a time with a duo cross-encoder or any ``f(query, a, b) -> P(a > b)`` (all pairs, or a
merge sort with O(n log n) comparisons)."""

from __future__ import annotations

from typing import Any, Callable, Literal, Sequence

import numpy as np

from crossrank._core import CrossEncoder, aggregate_preferences, sort_by_preference
from crossrank.reranking.base import Reranker, _label, _name

Comparator = Callable[[str, str, str], float]

class PairwiseReranker(Reranker):
    """Re-ranks by comparing documents two at a time.

    ``comparator`` gives P(a is more relevant to the query than b): a duo cross-encoder
    (a :class:`CrossEncoder` whose model reads ``[CLS] query [SEP] a [SEP] b [SEP]``, see
    :meth:`CrossEncoder.compare`) or any callable ``f(query, a, b) -> float`` in [0, 1]
    (an LLM judge, say).

    ``method="allpairs"`` (duoBERT) asks about both orders of every pair, n (n - 1)
    comparisons, and scores each document by ``aggregation``: ``"sum"`` of its
    probabilities of beating each other document, or ``"copeland"``: wins minus losses,
    where a beats b when P(a > b) > P(b > a). ``method="sort"`` (pairwise ranking
    prompting) sorts with a merge sort, O(n log n) decisions; with ``both_orders=True``
    (default) each decision asks about (a, b) and (b, a) and averages them to cancel the
    comparator's position bias, two comparisons per decision. Its scores are ``n - position``.

    ``rerank`` returns a :class:`Ranking` with ``comparisons`` (comparator evaluations).
    Pairwise re-ranking is quadratic or n log n model calls: use it on a short list, e.g. as
    the last stage of :class:`MultiStage` or with ``rerank_top_n``.
    """

    def __init__(self, comparator: CrossEncoder | Comparator, method: Literal["allpairs", "sort"] = "allpairs",
                 aggregation: Literal["sum", "copeland"] = "sum", both_orders: bool = True, batch_size: int = 32,
                 **selective: Any) -> None:
        super().__init__(**selective)
        if not (isinstance(comparator, CrossEncoder) or callable(comparator)):
            raise TypeError(f"comparator must be a CrossEncoder or a callable f(query, a, b) -> float, "
                            f"got {type(comparator).__name__}")
        if method not in ("allpairs", "sort"):
            raise ValueError(f'unknown method {method!r}; expected "allpairs" or "sort"')
        if aggregation not in ("sum", "copeland"):
            raise ValueError(f'unknown aggregation {aggregation!r}; expected "sum" or "copeland"')
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.comparator, self.method, self.aggregation = comparator, method, aggregation
        self.both_orders, self.batch_size = bool(both_orders), batch_size

    def _preferences(self, query: str, documents: list[str], pairs: list[tuple[int, int]]) -> np.ndarray:
        """P(documents[a] > documents[b]) for each (a, b) in ``pairs``, checked."""
        if not pairs:
            return np.zeros(0)
        texts = [(documents[a], documents[b]) for a, b in pairs]
        if isinstance(self.comparator, CrossEncoder):
            return self.comparator.compare(query, texts, batch_size=self.batch_size)
        out = np.empty(len(pairs))
        for k, (a, b) in enumerate(texts):
            p = self.comparator(query, a, b)
            if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
                raise TypeError(f"comparator {_name(self.comparator)} must return a float, got {type(p).__name__}")
            if not 0.0 <= p <= 1.0:  # also refuses NaN
                raise ValueError(f"comparator {_name(self.comparator)} returned {p} for documents "
                                 f"{pairs[k][0]} and {pairs[k][1]}; expected a probability in [0, 1]")
            out[k] = p
        return out

    def _scores(self, query: str, documents: list[str]) -> tuple[np.ndarray, int]:
        n = len(documents)
        if self.method == "allpairs":
            pairs = [(a, b) for a in range(n) for b in range(n) if a != b]
            matrix = np.zeros((n, n))
            for (a, b), p in zip(pairs, self._preferences(query, documents, pairs)):
                matrix[a, b] = p
            return aggregate_preferences(matrix, self.aggregation), len(pairs)

        calls = 0

        def before(a: int, b: int) -> bool:
            nonlocal calls
            if not self.both_orders:
                calls += 1
                return bool(self._preferences(query, documents, [(a, b)])[0] > 0.5)
            p_ab, p_ba = self._preferences(query, documents, [(a, b), (b, a)])
            calls += 2
            return bool((p_ab + 1.0 - p_ba) / 2 > 0.5)

        order, _ = sort_by_preference(n, before)
        scores = np.empty(n)
        scores[order] = np.arange(n, 0, -1, dtype=np.float64)
        return scores, calls

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        return self._scores(query, list(documents))[0]

    def _score_head(self, query: str, head: list[str]) -> tuple[np.ndarray, dict[str, Any]]:
        scores, comparisons = self._scores(query, head)
        return scores, {"comparisons": comparisons}

    def __repr__(self) -> str:
        return (f"PairwiseReranker({_label(self.comparator)}, method={self.method!r}, "
                f"aggregation={self.aggregation!r})")
