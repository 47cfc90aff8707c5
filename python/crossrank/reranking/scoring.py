"""The one place that scores ``(query, documents)`` with a model.

:func:`score_documents` takes a :class:`CrossEncoder` (``predict`` on (query, document)
pairs), a :class:`BiEncoder` (cosine of query and document embeddings), a
:class:`~crossrank.reranking.Reranker` or a callable ``f(query, documents) -> scores`` and
returns checked float64 scores. :class:`~crossrank.reranking.HybridReranker`'s model
signals, :class:`~crossrank.reranking.MultiStage`'s stages (through :func:`as_reranker`) and
:class:`crossrank.evaluation.RerankStage` all score through it, so they agree on batching,
dtype and checks.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np

from crossrank._core import BiEncoder, CrossEncoder
from crossrank.reranking.base import Reranker, _finite_scores, _name

Scorer = Callable[[str, Sequence[str]], Sequence[float]]


def is_scorer(model: Any) -> bool:
    """Whether :func:`score_documents` accepts ``model``."""
    return isinstance(model, (CrossEncoder, BiEncoder, Reranker)) or callable(model)


def score_documents(model: Any, query: str, documents: Sequence[str], batch_size: int = 32,
                    name: str | None = None) -> np.ndarray:
    """Scores of ``documents`` for ``query``: a float64 array, one per document, in order.

    ``model`` is a :class:`CrossEncoder` (``predict`` on the (query, document) pairs), a
    :class:`BiEncoder` (cosine of the query's and the documents' embeddings), a
    :class:`~crossrank.reranking.Reranker` (its ``score``) or a callable ``f(query,
    documents) -> scores``; ``batch_size`` goes to ``predict`` / ``encode``. The scores are
    checked: numbers (else ``TypeError``), one per document and finite (else
    ``ValueError``), the message starting with ``name`` (default: the model's name).
    No document: an empty array, the model is not called.
    """
    documents = list(documents)
    if not documents:
        return np.zeros(0)
    if isinstance(model, CrossEncoder):
        scores = model.predict([(query, d) for d in documents], batch_size=batch_size)
    elif isinstance(model, BiEncoder):
        q = model.encode([query], batch_size=batch_size)
        scores = model.similarity(q, model.encode(documents, batch_size=batch_size))[0]
    elif isinstance(model, Reranker):
        scores = model.score(query, documents)
    elif callable(model):
        scores = model(query, documents)
    else:
        raise TypeError(f"expected a CrossEncoder, BiEncoder, Reranker or callable, got {type(model).__name__}")
    return _finite_scores(scores, len(documents), _name(model) if name is None else name)


def as_scorer(model: Any, batch_size: int = 32) -> Any:
    """What the Rust core's re-rankers take as a scorer: crossrank's own CrossEncoder and
    BiEncoder as they are (the core scores with them, GIL released), a Reranker's ``score``,
    and any other model or callable through :func:`score_documents` (called back under the
    GIL; a model subclass may override ``predict`` / ``encode``)."""
    if type(model) in (CrossEncoder, BiEncoder):
        return model
    if isinstance(model, Reranker):
        return model.score
    if not is_scorer(model):
        raise TypeError(f"expected a CrossEncoder, BiEncoder, Reranker or callable, got {type(model).__name__}")
    if isinstance(model, (CrossEncoder, BiEncoder)):
        return functools.partial(score_documents, model, batch_size=batch_size)
    return model


class _ModelReranker(Reranker):
    """A CrossEncoder, BiEncoder or callable as a Reranker."""

    def __init__(self, model: Any, batch_size: int = 32, **selective: Any) -> None:
        super().__init__(**selective)
        if not is_scorer(model):
            raise TypeError(f"expected a CrossEncoder, BiEncoder, Reranker or callable, got {type(model).__name__}")
        self.model, self.batch_size = model, batch_size

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        return score_documents(self.model, query, documents, self.batch_size)

    def __repr__(self) -> str:
        return f"Reranker({self.model!r})"


def as_reranker(model: Any, **selective: Any) -> Reranker:
    """A Reranker for ``model`` (returned as is when it already is one without options)."""
    if isinstance(model, Reranker) and not selective:
        return model
    return _ModelReranker(model, **selective)
