"""LangChain adapter (``pip install 'crossrank[langchain]'``): crossrank models behind
LangChain's own interfaces, so they drop into existing chains and retrievers.

* :class:`CrossRankReranker`: a ``BaseDocumentCompressor`` (for
  ``ContextualCompressionRetriever`` or any chain that post-processes retrieved documents)
  over a :class:`~crossrank.CrossEncoder` or any crossrank reranker (``HybridReranker``,
  ``MultiStage``, ...).
* :class:`CrossRankCrossEncoder`: LangChain's ``BaseCrossEncoder`` (``score(text_pairs)``),
  for code written against that interface, e.g. LangChain's ``CrossEncoderReranker``.
* :class:`CrossRankEmbeddings`: LangChain's ``Embeddings`` over a :class:`~crossrank.BiEncoder`,
  for vector stores.

>>> from langchain_core.vectorstores import InMemoryVectorStore
>>> from crossrank.integrations.langchain import CrossRankEmbeddings, CrossRankReranker
>>> store = InMemoryVectorStore(CrossRankEmbeddings("sentence-transformers/all-MiniLM-L6-v2"))
>>> reranker = CrossRankReranker(model="cross-encoder/ms-marco-MiniLM-L6-v2", top_n=5)
>>> reranker.compress_documents(store.as_retriever(search_kwargs={"k": 50}).invoke(q), q)

langchain-core is imported here, when this module is imported (never by ``import
crossrank``); without it the import fails with an ImportError naming the extra.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from numbers import Integral, Real
from os import PathLike
from typing import Any, Sequence

from crossrank._core import BiEncoder, CrossEncoder
from crossrank.integrations._common import TRUNCATED, arank, rank, require, resolve_model
from crossrank.reranking import Reranker

require("langchain_core", "langchain", "LangChain")

from langchain_core.callbacks import Callbacks  # noqa: E402
from langchain_core.documents import BaseDocumentCompressor, Document  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from pydantic import BaseModel, ConfigDict, field_validator  # noqa: E402

try:
    from langchain_core.cross_encoders import BaseCrossEncoder
except ImportError:  # pragma: no cover - langchain-core releases without the interface

    class BaseCrossEncoder(ABC):  # type: ignore[no-redef]
        """Stand-in for LangChain's ``BaseCrossEncoder`` where langchain-core lacks
        ``langchain_core.cross_encoders`` (the interface then lives in ``langchain`` /
        ``langchain_community``): the same one-method protocol, so duck-typed callers work."""

        @abstractmethod
        def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
            """One score per ``(query, text)`` pair."""

__all__ = ["CrossRankCrossEncoder", "CrossRankEmbeddings", "CrossRankReranker"]

RELEVANCE_SCORE = "relevance_score"
"""The metadata key LangChain's rerankers (Cohere, FlashRank, Jina, ...) put the score under."""


_UNSET: Any = object()


def _positive_int(value: Any, name: str) -> int:
    # Checked before pydantic's coercion, which would accept True, 2.0 or "3".
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class _ModelFirst:
    """Lets ``model`` be passed positionally, ``CrossRankEmbeddings("path/to/model")``, as
    well as by keyword (pydantic models take keywords only)."""

    def __init__(self, model: Any = _UNSET, /, **data: Any) -> None:
        if model is not _UNSET:
            if "model" in data:
                raise TypeError("model given both positionally and by keyword")
            data["model"] = model
        super().__init__(**data)


def _with_score(document: Document, score: float, truncated: bool | None) -> Document:
    """A copy of ``document`` (same type, id and page_content) whose metadata is a deep copy
    of the original plus the score (and whether the model cut it), so neither the caller's
    Document nor its nested metadata is shared with, or changed by, the result (as Cohere's
    reranker copies)."""
    metadata = copy.deepcopy(document.metadata)
    metadata[RELEVANCE_SCORE] = score
    if truncated is not None:
        metadata[TRUNCATED] = truncated
    return document.model_copy(update={"metadata": metadata})


class CrossRankReranker(_ModelFirst, BaseDocumentCompressor):
    """Re-ranks retrieved documents with a crossrank model and keeps the best ``top_n``.

    The documents' ``page_content`` is scored against the query by ``model``; the result
    is the ``top_n`` best, best first (equal scores keep their retrieval order), each a
    copy of its input Document (same ``page_content``, ``id`` and metadata) with
    ``metadata["relevance_score"]`` set to the score as a Python ``float`` and, for a
    CrossEncoder, ``metadata["truncated"]``: whether the model read the document only in part
    (its pair was longer than ``max_length``). The input Documents are never modified.
    ``callbacks`` are accepted for the interface and not used: scoring is one model call,
    not a LangChain run (as LangChain's ``CrossEncoderReranker``).

    Edge cases, as LangChain's own rerankers behave:

    * no documents: ``[]``, without calling the model (as ``CohereRerank``, which skips
      the API call);
    * an empty query, or documents with empty ``page_content``: scored like any other text
      (no error, no filtering; ``CrossEncoderReranker`` scores whatever it is given);
    * ``score_threshold``: documents scoring below it are dropped after ranking, so fewer
      than ``top_n`` (possibly none) come back (as ``FlashrankRerank``);
    * ``top_n`` larger than the number of documents: all of them, re-ordered.

    Args:
        model: a :class:`crossrank.CrossEncoder`, any crossrank reranker
            (:class:`~crossrank.HybridReranker`, :class:`~crossrank.MultiStage`,
            :class:`~crossrank.PairwiseReranker`, ...), a :class:`crossrank.BiEncoder`
            (cosine scores), or a model id / local path, loaded as a CrossEncoder. A
            reranker's own options apply first (its ``score_threshold`` drops documents;
            candidates beyond its ``rerank_top_n`` rank last with its lowest score).
        top_n: how many documents to return (a positive int).
        score_threshold: drop documents scoring below it (a finite number), or ``None``.
            The scale is the model's: sigmoid probabilities for most cross-encoders, fused
            normalized scores for a HybridReranker.

    Raises:
        ValueError: a ``top_n`` that is not a positive int, a non-finite ``score_threshold``
            (pydantic's ``ValidationError``, a ``ValueError``).
        TypeError: a ``model`` that is none of the above.
    """

    model: CrossEncoder | BiEncoder | Reranker
    top_n: int = 3
    score_threshold: float | None = None

    # The models are Rust / plain Python objects (arbitrary types); extra="forbid" catches
    # misspelt options; validate_assignment re-checks a changed top_n or model.
    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", validate_assignment=True)

    @field_validator("model", mode="before")
    @classmethod
    def _resolve_model(cls, value: Any) -> Any:
        return resolve_model(value)

    @field_validator("top_n", mode="before")
    @classmethod
    def _check_top_n(cls, value: Any) -> int:
        return _positive_int(value, "top_n")

    @field_validator("score_threshold", mode="before")
    @classmethod
    def _check_score_threshold(cls, value: Any) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise ValueError(f"score_threshold must be a finite number or None, got {value!r}")
        return float(value)

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """The best ``top_n`` of ``documents`` for ``query``, best first, with their scores in
        ``metadata["relevance_score"]``."""
        documents = list(documents)
        if not documents:
            return []
        return self._select(documents, rank(self.model, query, [d.page_content for d in documents]))

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """:meth:`compress_documents` with the scoring on the event loop's default executor
        (crossrank releases the GIL while it scores, so the loop keeps serving)."""
        documents = list(documents)
        if not documents:
            return []
        return self._select(documents, await arank(self.model, query, [d.page_content for d in documents]))

    def _select(self, documents: list[Document], ranking: list[tuple[int, float, bool | None]]) -> list[Document]:
        # ranking is best first, so thresholding then cutting equals cutting then thresholding.
        if self.score_threshold is not None:
            ranking = [r for r in ranking if r[1] >= self.score_threshold]
        return [_with_score(documents[i], float(s), cut) for i, s, cut in ranking[: self.top_n]]


class CrossRankCrossEncoder(_ModelFirst, BaseModel, BaseCrossEncoder):
    """LangChain's cross-encoder interface (``langchain_core.cross_encoders.BaseCrossEncoder``:
    ``score(text_pairs) -> list[float]``) over a :class:`crossrank.CrossEncoder`, so it can
    replace ``HuggingFaceCrossEncoder`` wherever that interface is expected (LangChain's
    ``CrossEncoderReranker`` among them). Where langchain-core lacks that module, this
    class implements the same one-method protocol on a local stand-in base.

    Scores are ``CrossEncoder.predict`` on the pairs, as Python floats in input order; an
    empty list gives ``[]`` without calling the model. For a two-label model (relevant /
    not relevant, e.g. bert-multilingual-passage-reranking-msmarco) the second label's
    score is returned, as ``HuggingFaceCrossEncoder`` does; a model with more labels has no
    single relevance score and is refused.

    Args:
        model: a :class:`crossrank.CrossEncoder`, or a model id / local path to load as one.
        batch_size: pairs per forward pass.

    Raises:
        TypeError: ``model`` is not a CrossEncoder, id or path.
        ValueError: a model with more than two labels, or a bad ``batch_size``.
    """

    model: CrossEncoder
    batch_size: int = 32

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", validate_assignment=True)

    @field_validator("model", mode="before")
    @classmethod
    def _resolve_model(cls, value: Any) -> CrossEncoder:
        if isinstance(value, (str, PathLike)):
            value = resolve_model(value)
        if not isinstance(value, CrossEncoder):
            raise TypeError(f"model must be a crossrank.CrossEncoder or a model id / path, got {type(value).__name__}")
        if value.num_labels > 2:
            raise ValueError(f"model has {value.num_labels} labels; a relevance score needs a one- or two-label "
                             "cross-encoder")
        return value

    @field_validator("batch_size", mode="before")
    @classmethod
    def _check_batch_size(cls, value: Any) -> int:
        return _positive_int(value, "batch_size")

    def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
        """One relevance score per ``(query, text)`` pair, in order."""
        pairs = [tuple(pair) for pair in text_pairs]
        if not pairs:
            return []
        scores = self.model.predict(pairs, batch_size=self.batch_size)
        if scores.ndim == 2:  # two labels: the "relevant" one
            scores = scores[:, 1]
        return [float(s) for s in scores]


class CrossRankEmbeddings(_ModelFirst, BaseModel, Embeddings):
    """LangChain ``Embeddings`` over a :class:`crossrank.BiEncoder` (same vectors as
    ``HuggingFaceEmbeddings`` over sentence-transformers), for vector stores.

    Vectors are lists of Python floats. Queries and documents are embedded alike (the
    symmetric models crossrank loads have no query prompt). The async methods run
    ``BiEncoder.aencode`` on the event loop's default executor instead of LangChain's
    default thread hop through the sync methods.

    Args:
        model: a :class:`crossrank.BiEncoder`, or a model id / local path to load as one.
        normalize_embeddings: L2-normalize every vector (default True, so that dot product,
            cosine and Euclidean distance rank alike in any vector store). ``False`` leaves
            them as the model produces them (a model with a ``Normalize`` module, such as
            all-MiniLM-L6-v2, still normalizes).
        batch_size: texts per forward pass.

    Raises:
        TypeError: ``model`` is not a BiEncoder, id or path.
        ValueError: a bad ``batch_size``.
    """

    model: BiEncoder
    normalize_embeddings: bool = True
    batch_size: int = 32

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", validate_assignment=True)

    @field_validator("model", mode="before")
    @classmethod
    def _load_model(cls, value: Any) -> BiEncoder:
        # Not resolve_model: that loads a str as a CrossEncoder.
        if isinstance(value, (str, PathLike)):
            return BiEncoder(value)
        if not isinstance(value, BiEncoder):
            raise TypeError(f"model must be a crossrank.BiEncoder or a model id / path, got {type(value).__name__}")
        return value

    @field_validator("batch_size", mode="before")
    @classmethod
    def _check_batch_size(cls, value: Any) -> int:
        return _positive_int(value, "batch_size")

    def _options(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "normalize_embeddings": self.normalize_embeddings}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order."""
        texts = list(texts)
        if not texts:
            return []
        return self.model.encode(texts, **self._options()).tolist()

    def embed_query(self, text: str) -> list[float]:
        """The query's vector (embedded as a document is)."""
        return self.model.encode([text], **self._options())[0].tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """:meth:`embed_documents` on the event loop's default executor."""
        texts = list(texts)
        if not texts:
            return []
        return (await self.model.aencode(texts, **self._options())).tolist()

    async def aembed_query(self, text: str) -> list[float]:
        """:meth:`embed_query` on the event loop's default executor."""
        return (await self.model.aencode([text], **self._options()))[0].tolist()
