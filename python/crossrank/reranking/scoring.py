"""Models as rerankers: :func:`as_reranker` wraps a CrossEncoder, BiEncoder or callable
``f(query, documents) -> scores`` as a :class:`~crossrank.reranking.Reranker`."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from crossrank._core import BiEncoder, CrossEncoder
from crossrank.reranking.base import Reranker, _finite_scores, _name

Scorer = Callable[[str, Sequence[str]], Sequence[float]]


class _ModelReranker(Reranker):
    """A CrossEncoder, BiEncoder or callable as a Reranker."""

    def __init__(self, model: Any, batch_size: int = 32, **selective: Any) -> None:
        super().__init__(**selective)
        if not (isinstance(model, (CrossEncoder, BiEncoder, Reranker)) or callable(model)):
            raise TypeError(f"expected a CrossEncoder, BiEncoder, Reranker or callable, got {type(model).__name__}")
        self.model, self.batch_size = model, batch_size

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        if not documents:
            return np.zeros(0)
        if isinstance(self.model, CrossEncoder):
            return self.model.predict([(query, d) for d in documents], batch_size=self.batch_size).astype(np.float64)
        if isinstance(self.model, BiEncoder):
            q = self.model.encode([query])
            return self.model.similarity(q, self.model.encode(list(documents), batch_size=self.batch_size))[0]
        return _finite_scores(self.model(query, list(documents)), len(documents), _name(self.model))

    def __repr__(self) -> str:
        return f"Reranker({self.model!r})"


def as_reranker(model: Any, **selective: Any) -> Reranker:
    """A Reranker for ``model`` (returned as is when it already is one without options)."""
    if isinstance(model, Reranker) and not selective:
        return model
    return _ModelReranker(model, **selective)
