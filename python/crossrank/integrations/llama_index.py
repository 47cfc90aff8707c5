"""LlamaIndex adapter: crossrank models as a node postprocessor and as an embedding model.

    pip install 'crossrank[llama-index]'

>>> from crossrank.integrations.llama_index import CrossRankEmbedding, CrossRankRerank
>>> index = VectorStoreIndex(nodes, embed_model=CrossRankEmbedding("path/to/all-MiniLM-L6-v2"))
>>> engine = index.as_query_engine(similarity_top_k=20,
...                                node_postprocessors=[CrossRankRerank(model="path/to/cross-encoder", top_n=5)])

Both classes follow llama-index-core's own components so they slot in wherever those do:
:class:`CrossRankRerank` is a drop-in for ``SentenceTransformerRerank`` (same fields, the
same ``CBEventType.RERANKING`` callback event, plus the ``ReRankStartEvent`` /
``ReRankEndEvent`` instrumentation events the integration rerankers fire), and
:class:`CrossRankEmbedding` is a ``BaseEmbedding`` like ``HuggingFaceEmbedding``.

LlamaIndex is imported when this module is (``import crossrank`` never imports it); a
missing install raises an ImportError naming the ``crossrank[llama-index]`` extra.
"""

from __future__ import annotations

import math
from os import PathLike
from typing import Any, List, Optional, Sequence, Union

from crossrank._core import BiEncoder, CrossEncoder
from crossrank.integrations._common import TRUNCATED, arank, rank, require, resolve_model

require("llama_index.core", "llama-index", "LlamaIndex")

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding  # noqa: E402
from llama_index.core.bridge.pydantic import Field, PrivateAttr, field_validator  # noqa: E402
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload  # noqa: E402
from llama_index.core.instrumentation import get_dispatcher  # noqa: E402
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent  # noqa: E402
from llama_index.core.postprocessor.types import BaseNodePostprocessor  # noqa: E402
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle  # noqa: E402

__all__ = ["CrossRankEmbedding", "CrossRankRerank"]

# Events go through this module's dispatcher, as in llama-index's own rerankers: handlers
# attached to the root dispatcher (``get_dispatcher()``) see them through propagation.
dispatcher = get_dispatcher(__name__)

RETRIEVAL_SCORE_KEY = "retrieval_score"


def _model_name(model: Any) -> str:
    """The name events and callbacks report: the path or id of a CrossEncoder, else the
    reranker's class (a HybridReranker's repr lists weights, too long for a label)."""
    if isinstance(model, CrossEncoder):
        return str(model.model_name_or_path)
    return type(model).__name__


def _set_hidden_metadata(node: Any, key: str, value: Any) -> None:
    """``node.metadata[key] = value``, kept out of the text embedders and LLMs see."""
    node.metadata[key] = value
    for excluded in (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys):
        if key not in excluded:
            excluded.append(key)


class CrossRankRerank(BaseNodePostprocessor):
    """Re-ranks retrieved nodes with a crossrank model; a drop-in for LlamaIndex's
    ``SentenceTransformerRerank`` that runs on crossrank's Rust engine.

    Args:
        model: a :class:`crossrank.CrossEncoder`, :class:`crossrank.BiEncoder` or any
            crossrank reranker (:class:`crossrank.HybridReranker`, :class:`crossrank.MultiStage`,
            ...), or a model id / local path, loaded as a CrossEncoder.
        top_n: how many nodes to return (at most; fewer when fewer nodes come in or the
            threshold drops some).
        keep_retrieval_score: store each node's incoming (retriever) score in
            ``node.node.metadata["retrieval_score"]``, as ``SentenceTransformerRerank`` does.
        score_threshold: drop nodes whose re-ranking score is below it (kept: ``>=``).
        model_name: the label events and callbacks report (default: the CrossEncoder's
            path, or the reranker's class name).

    Each returned node is a new ``NodeWithScore`` around the same ``node`` with ``score``
    the model's score as a Python ``float``, best first (ties keep retrieval order). For a
    CrossEncoder, ``node.node.metadata["truncated"]`` says whether the model read the node's
    text only in part (kept out of the embedding and LLM text, as the retrieval score). The
    input list and its ``NodeWithScore`` objects are left as they are, so the same
    retrieved nodes can be re-ranked again (or by another model) with the same result.
    The text scored is ``node.node.get_content(metadata_mode=MetadataMode.EMBED)``: the
    text plus the metadata the embedding saw, as ``SentenceTransformerRerank`` scores it.

    Edge cases, chosen to match llama-index's rerankers:

    * ``query_bundle=None`` (``postprocess_nodes(nodes)`` without a query): ``ValueError``,
      after the ``ReRankStartEvent`` (fired first, as the integration rerankers do).
    * no nodes: ``[]`` without calling the model or opening the ``RERANKING`` callback
      event (as ``SentenceTransformerRerank``); the ``ReRankEndEvent`` still fires with no
      nodes so that instrumentation handlers see every start closed.
    * an empty query string: scored like any other query (the model reads
      ``[CLS] [SEP] text [SEP]``); LlamaIndex's ``QueryBundle`` allows it and
      ``SentenceTransformerRerank`` passes it to the model unchanged.
    * a node with empty content: scored like any other node (the model reads the query
      alone), not dropped, as ``SentenceTransformerRerank`` does; a ``score_threshold`` is
      the way to drop whatever scores low.
    * ``keep_retrieval_score=True`` also lists ``"retrieval_score"`` in the node's
      ``excluded_embed_metadata_keys`` and ``excluded_llm_metadata_keys`` (a deliberate
      difference from ``SentenceTransformerRerank``, which leaves it in): the stored number
      must not become part of the text a later reranker scores or the LLM reads.
    * a reranker with ``rerank_top_n``: nodes it did not re-score come after the re-scored
      ones, in retrieval order, with its lowest re-scored score; nodes its own
      ``score_threshold`` dropped are not returned.
    """

    model: Any = Field(exclude=True, description="The crossrank CrossEncoder, BiEncoder or reranker.")
    model_name: str = Field(description="Model label reported to events and callbacks.")
    top_n: int = Field(default=2, description="Number of nodes to return sorted by score.")
    keep_retrieval_score: bool = Field(
        default=False, description="Whether to keep the retrieval score in metadata."
    )
    score_threshold: Optional[float] = Field(
        default=None, description="Drop nodes whose re-ranking score is below this."
    )

    def __init__(
        self,
        model: Union[str, PathLike, CrossEncoder, BiEncoder, Any],
        top_n: int = 2,
        keep_retrieval_score: bool = False,
        score_threshold: Optional[float] = None,
        model_name: Optional[str] = None,
        callback_manager: Optional[CallbackManager] = None,
    ) -> None:
        # Resolved here rather than in a field validator: a path is loaded once, and the
        # checks need the loaded model (its number of labels).
        resolved = resolve_model(model)
        if isinstance(resolved, CrossEncoder) and resolved.num_labels != 1:
            raise ValueError(f"a CrossEncoder with {resolved.num_labels} labels gives no single relevance "
                             "score; use a one-label model or wrap it in a reranker")
        kwargs: dict[str, Any] = {}
        if callback_manager is not None:
            kwargs["callback_manager"] = callback_manager
        super().__init__(
            model=resolved,
            model_name=model_name if model_name is not None else _model_name(resolved),
            top_n=top_n,
            keep_retrieval_score=keep_retrieval_score,
            score_threshold=score_threshold,
            **kwargs,
        )

    @field_validator("top_n", mode="before")
    @classmethod
    def _check_top_n(cls, value: Any) -> int:
        # Strict: pydantic's lax int would accept True or "3" and silently return 1 or 3 nodes.
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"top_n must be a positive integer, got {value!r}")
        return value

    @field_validator("score_threshold", mode="before")
    @classmethod
    def _check_threshold(cls, value: Any) -> Optional[float]:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"score_threshold must be a finite number or None, got {value!r}")
        return float(value)

    @classmethod
    def class_name(cls) -> str:
        return "CrossRankRerank"

    # --- the steps sync and async share ---------------------------------------------------

    def _start(self, nodes: List[NodeWithScore], query_bundle: Optional[QueryBundle]) -> QueryBundle:
        """Fires ReRankStartEvent (before any check, as llama-index's integration rerankers
        do) and returns the query bundle, or raises for a missing one."""
        dispatcher.event(ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=self.top_n,
                                          model_name=self.model_name))
        if query_bundle is None:
            raise ValueError("Missing query bundle in extra info.")
        return query_bundle

    def _payload(self, nodes: List[NodeWithScore], query_bundle: QueryBundle) -> dict:
        return {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: self.model_name,
            EventPayload.QUERY_STR: query_bundle.query_str,
            EventPayload.TOP_K: self.top_n,
        }

    @staticmethod
    def _texts(nodes: List[NodeWithScore]) -> List[str]:
        return [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]

    def _select(self, nodes: List[NodeWithScore],
                ranking: Sequence[tuple[int, float, Optional[bool]]]) -> List[NodeWithScore]:
        """New NodeWithScore objects in ``ranking``'s order (best first), thresholded and cut
        to ``top_n``; the retrieval scores go to metadata when asked, and whether a
        CrossEncoder cut the node's text always."""
        if self.keep_retrieval_score:
            for n in nodes:
                _set_hidden_metadata(n.node, RETRIEVAL_SCORE_KEY, n.score)
        for i, _, truncated in ranking:
            if truncated is not None:
                _set_hidden_metadata(nodes[i].node, TRUNCATED, truncated)
        kept = [(i, s) for i, s, _ in ranking if self.score_threshold is None or s >= self.score_threshold]
        return [NodeWithScore(node=nodes[i].node, score=float(s)) for i, s in kept[: self.top_n]]

    def _finish(self, new_nodes: List[NodeWithScore]) -> List[NodeWithScore]:
        dispatcher.event(ReRankEndEvent(nodes=new_nodes))
        return new_nodes

    # --- BaseNodePostprocessor --------------------------------------------------------------

    def _postprocess_nodes(
        self,
        nodes: List[NodeWithScore],
        query_bundle: Optional[QueryBundle] = None,
    ) -> List[NodeWithScore]:
        query_bundle = self._start(nodes, query_bundle)
        if len(nodes) == 0:
            return self._finish([])
        texts = self._texts(nodes)
        with self.callback_manager.event(CBEventType.RERANKING, payload=self._payload(nodes, query_bundle)) as event:
            new_nodes = self._select(nodes, rank(self.model, query_bundle.query_str, texts))
            event.on_end(payload={EventPayload.NODES: new_nodes})
        return self._finish(new_nodes)

    @dispatcher.span
    async def _apostprocess_nodes(
        self,
        nodes: List[NodeWithScore],
        query_bundle: Optional[QueryBundle] = None,
    ) -> List[NodeWithScore]:
        """As :meth:`_postprocess_nodes`, with the model scoring on the event loop's
        executor (it releases the GIL) instead of blocking the loop."""
        query_bundle = self._start(nodes, query_bundle)
        if len(nodes) == 0:
            return self._finish([])
        texts = self._texts(nodes)
        with self.callback_manager.event(CBEventType.RERANKING, payload=self._payload(nodes, query_bundle)) as event:
            new_nodes = self._select(nodes, await arank(self.model, query_bundle.query_str, texts))
            event.on_end(payload={EventPayload.NODES: new_nodes})
        return self._finish(new_nodes)


class CrossRankEmbedding(BaseEmbedding):
    """A :class:`crossrank.BiEncoder` as a LlamaIndex embedding model (for
    ``VectorStoreIndex(..., embed_model=...)`` or ``Settings.embed_model``).

    Args:
        model: a :class:`crossrank.BiEncoder`, or a model id / local path loaded as one.
        normalize: L2-normalize the embeddings (default, as ``HuggingFaceEmbedding``), so
            that dot product and cosine agree whatever the vector store uses. ``False``
            leaves it to the model (sentence-transformers models with a ``Normalize``
            module still normalize).
        embed_batch_size: texts per ``encode`` call. Default 32 rather than LlamaIndex's 10:
            the model runs locally, and larger batches amortize padding and thread start-up.
        model_name: the label (default: the path or id; ``"crossrank.BiEncoder"`` for an
            instance, which does not know its path).

    Queries and texts are embedded the same way (no instruction prefix); embeddings are
    lists of Python floats. The async methods run ``BiEncoder.aencode`` on the event
    loop's executor.
    """

    normalize: bool = Field(default=True, description="Whether to L2-normalize the embeddings.")
    _model: BiEncoder = PrivateAttr()

    def __init__(
        self,
        model: Union[str, PathLike, BiEncoder],
        normalize: bool = True,
        embed_batch_size: int = 32,
        model_name: Optional[str] = None,
        callback_manager: Optional[CallbackManager] = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(model, (str, PathLike)):
            encoder = BiEncoder(str(model))
            name = str(model)
        elif isinstance(model, BiEncoder):
            encoder, name = model, "crossrank.BiEncoder"
        else:
            raise TypeError(f"model must be a crossrank BiEncoder or a model id / path, got {type(model).__name__}")
        super().__init__(
            model_name=model_name if model_name is not None else name,
            normalize=normalize,
            embed_batch_size=embed_batch_size,
            callback_manager=callback_manager,
            **kwargs,
        )
        self._model = encoder

    @classmethod
    def class_name(cls) -> str:
        return "CrossRankEmbedding"

    def _encode_kwargs(self) -> dict[str, Any]:
        # None, not False: False cannot switch off a model's own Normalize module anyway,
        # and None says "the model's default" in BiEncoder.encode.
        return {"batch_size": self.embed_batch_size, "normalize_embeddings": True if self.normalize else None}

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._get_text_embeddings([query])[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: List[str]) -> List[Embedding]:
        if not texts:
            return []
        return self._model.encode(list(texts), **self._encode_kwargs()).tolist()

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._aget_text_embeddings([query]))[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aget_text_embeddings([text]))[0]

    async def _aget_text_embeddings(self, texts: List[str]) -> List[Embedding]:
        # One aencode per batch: the base class would gather one task per text.
        if not texts:
            return []
        return (await self._model.aencode(list(texts), **self._encode_kwargs())).tolist()
