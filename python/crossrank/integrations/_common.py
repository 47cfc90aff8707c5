"""What the framework adapters share: turning the user's ``model`` argument into a
reranker, scoring texts with it (sync and async), and the import error for a missing extra."""

from __future__ import annotations

import importlib
from os import PathLike
from typing import Any, Sequence

from crossrank._core import BiEncoder, CrossEncoder
from crossrank.reranking import Reranker, as_reranker


def require(module: str, extra: str, framework: str) -> Any:
    """Import ``module`` or raise an ImportError that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"crossrank's {framework} adapter needs {framework}: "
                          f"pip install 'crossrank[{extra}]'") from e


def resolve_model(model: Any) -> Any:
    """A CrossEncoder, BiEncoder or Reranker (HybridReranker, MultiStage, PairwiseReranker,
    ...) is used as is; a str or path is loaded as a CrossEncoder (local directory or hub
    id)."""
    if isinstance(model, (str, PathLike)):
        return CrossEncoder(model)
    if isinstance(model, (CrossEncoder, BiEncoder, Reranker)):
        return model
    raise TypeError("model must be a crossrank CrossEncoder, BiEncoder or reranker (HybridReranker, "
                    f"MultiStage, ...), or a model id / path, got {type(model).__name__}")


TRUNCATED = "truncated"
"""The metadata key that says whether the model read a document only in part (its pair
with the query was longer than the model's ``max_length``)."""


def rank(model: Any, query: str, texts: Sequence[str]) -> list[tuple[int, float, bool | None]]:
    """``(position, score, truncated)`` for every text, best first, scores as Python floats;
    ``truncated`` says whether a CrossEncoder cut the text's pair (None for other models).
    Texts a reranker did not re-score (beyond its ``rerank_top_n``) come last in their order
    with the lowest re-scored score, so they sort below; texts a ``score_threshold`` on the
    reranker dropped are left out."""
    if not texts:
        return []
    if isinstance(model, CrossEncoder) and model.num_labels == 1:
        ranked = model.rank(query, list(texts), return_details=True)
        return [(int(r["corpus_id"]), float(r["score"]), bool(r["truncated"])) for r in ranked]
    ranking = as_reranker(model).rerank(query, list(texts))
    scored = [float(r["score"]) for r in ranking if r["score"] is not None]
    floor = min(scored) if scored else 0.0
    return [(int(r["corpus_id"]), float(r["score"]) if r["score"] is not None else floor, None) for r in ranking]


async def arank(model: Any, query: str, texts: Sequence[str]) -> list[tuple[int, float, bool | None]]:
    """:func:`rank` off the event loop (the model releases the GIL while it scores)."""
    import asyncio

    return await asyncio.get_running_loop().run_in_executor(None, rank, model, query, list(texts))
