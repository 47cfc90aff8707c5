"""Pairwise re-ranking: :class:`PairwiseReranker` orders documents by comparing them two
at a time with a duo cross-encoder or any ``f(query, a, b) -> P(a > b)`` (all pairs, or a
merge sort with O(n log n) comparisons)."""

from __future__ import annotations

import functools
from typing import Any, Callable, Literal, Sequence

import numpy as np

from crossrank import _core
from crossrank._core import CrossEncoder
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
    the last stage of :class:`MultiStage` or with ``rerank_top_n``. It runs in the Rust core
    with the GIL released; a Python comparator is called back under the GIL.
    """

    def __init__(self, comparator: CrossEncoder | Comparator, method: Literal["allpairs", "sort"] = "allpairs",
                 aggregation: Literal["sum", "copeland"] = "sum", both_orders: bool = True, batch_size: int = 32,
                 **selective: Any) -> None:
        super().__init__(**selective)
        self.comparator, self.method, self.aggregation = comparator, method, aggregation
        self.both_orders, self.batch_size = bool(both_orders), batch_size
        # A CrossEncoder subclass may override ``compare``: it is asked through Python.
        core_comparator = comparator if type(comparator) is CrossEncoder or not isinstance(comparator, CrossEncoder) \
            else functools.partial(_compare_one, comparator, batch_size)
        self._core = _core.PairwiseReranker(core_comparator, method, aggregation, self.both_orders, batch_size,
                                            _name(comparator))

    def _scores(self, query: str, documents: list[str]) -> tuple[np.ndarray, int]:
        return self._core.scores(query, documents)

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        return self._scores(query, list(documents))[0]

    def _score_head(self, query: str, head: list[str]) -> tuple[np.ndarray, dict[str, Any]]:
        scores, comparisons = self._scores(query, head)
        return scores, {"comparisons": comparisons}

    def __repr__(self) -> str:
        return (f"PairwiseReranker({_label(self.comparator)}, method={self.method!r}, "
                f"aggregation={self.aggregation!r})")


def _compare_one(model: CrossEncoder, batch_size: int, query: str, a: str, b: str) -> float:
    """A duo model's P(a > b) through its (possibly overridden) ``compare``."""
    return float(model.compare(query, [(a, b)], batch_size=batch_size)[0])
