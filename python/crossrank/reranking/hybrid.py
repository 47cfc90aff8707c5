"""Hybrid re-ranking: :class:`HybridReranker` normalizes per-candidate signals (model
scores, BM25, first-stage scores, metadata rules, any callable) and fuses them into one
score; :meth:`HybridReranker.fit` learns the weights on judged queries."""

from __future__ import annotations

import time
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np

from crossrank import _core
from crossrank._core import BM25, BiEncoder, CrossEncoder, DenseIndex, check_weights, fit_weights
from crossrank.reranking.base import Ranking, Reranker, _check_query_documents, _finite_scores, _optional_count
from crossrank.reranking.rules import _Rule
from crossrank.reranking.scoring import Scorer, as_scorer

NORMALIZATIONS = ("minmax", "zscore", "sigmoid", "rank", "none")

class HybridReranker(Reranker):
    """Combines per-candidate signals into one score.

    Signals (each used when configured, named as in ``weights``):

    * ``"cross_encoder"``: a :class:`CrossEncoder`'s score.
    * ``"bm25"``: ``bm25=True`` scores against the candidate set's own statistics;
      ``bm25=<BM25 index>`` scores against that corpus' statistics (``BM25.score``).
    * ``"bi_encoder"``: cosine of query and document embeddings from a :class:`BiEncoder`.
    * ``"first_stage"``: the ``first_stage_scores`` given to ``rerank`` (by default, when
      enabled with ``first_stage=True``, the candidates' input order: earlier is better).
    * ``"metadata"``: the weighted mean of ``metadata_rules`` (:class:`Recency`,
      :class:`SourceTrust`, :class:`FieldMatch`) on each document's metadata dict.
    * any name in ``signals``: a callable ``f(query, documents) -> scores`` (an LLM judge,
      say). An exception it raises propagates; a NaN it returns is a ``ValueError``.

    Each signal is normalized per query (``normalization``: one of "minmax", "zscore",
    "sigmoid", "rank", "none", or a dict per signal) and fused by a weighted sum
    (``fusion="weighted"``) or reciprocal rank fusion (``fusion="rrf"``, constant ``k``).
    Weights default to 1 for every configured signal; they must be finite, >= 0 and not all 0.

    A re-rank runs in the Rust core (``crossrank._core.HybridReranker``) with the GIL
    released: the cross-encoder, bi-encoder and BM25 signals side by side, beside any
    Python signal (called back under the GIL), then normalization and fusion.
    """

    def __init__(
        self,
        cross_encoder: CrossEncoder | None = None,
        bm25: bool | BM25 = False,
        bi_encoder: BiEncoder | None = None,
        first_stage: bool = False,
        metadata_rules: Sequence[_Rule] = (),
        signals: Mapping[str, Scorer] | None = None,
        weights: Mapping[str, float] | None = None,
        normalization: str | Mapping[str, str] = "minmax",
        fusion: Literal["weighted", "rrf"] = "weighted",
        k: float = 60.0,
        batch_size: int = 32,
        **selective: Any,
    ) -> None:
        super().__init__(**selective)
        if cross_encoder is not None and not isinstance(cross_encoder, CrossEncoder):
            raise TypeError(f"cross_encoder must be a crossrank.CrossEncoder, got {type(cross_encoder).__name__}")
        if bi_encoder is not None and not isinstance(bi_encoder, BiEncoder):
            raise TypeError(f"bi_encoder must be a crossrank.BiEncoder, got {type(bi_encoder).__name__}")
        if not (isinstance(bm25, bool) or isinstance(bm25, BM25)):
            raise TypeError(f"bm25 must be True/False or a crossrank.BM25 index, got {type(bm25).__name__}")
        for rule in metadata_rules:
            if not isinstance(rule, _Rule):
                raise TypeError(f"metadata_rules must be Recency / SourceTrust / FieldMatch rules, got {rule!r}")
        self.cross_encoder, self.bm25, self.bi_encoder = cross_encoder, bm25, bi_encoder
        self.first_stage, self.metadata_rules = first_stage, list(metadata_rules)
        self.signals = dict(signals or {})
        for name, f in self.signals.items():
            if not callable(f):
                raise TypeError(f"signals[{name!r}] must be callable f(query, documents) -> scores")
        self.batch_size, self.fusion, self.k = batch_size, fusion, float(k)
        if fusion not in ("weighted", "rrf"):
            raise ValueError(f"fusion must be 'weighted' or 'rrf', got {fusion!r}")
        names = self.signal_names
        if not names:
            raise ValueError("no signals: give a cross_encoder, bm25, bi_encoder, first_stage, metadata_rules "
                             "or signals")
        if isinstance(normalization, str):
            normalization = {n: normalization for n in names}
        unknown = set(normalization) - set(names)
        if unknown:
            raise ValueError(f"normalization for unknown signals {sorted(unknown)}; signals: {names}")
        self.normalization = {n: normalization.get(n, "minmax") for n in names}
        for n, method in self.normalization.items():
            if method not in NORMALIZATIONS:
                raise ValueError(f"normalization of {n!r} is {method!r}; expected one of {NORMALIZATIONS}")
        self.weights = weights if weights is not None else {n: 1.0 for n in names}

    @property
    def signal_names(self) -> list[str]:
        names = []
        if self.cross_encoder is not None:
            names.append("cross_encoder")
        if self.bm25 is not False:
            names.append("bm25")
        if self.bi_encoder is not None:
            names.append("bi_encoder")
        if self.first_stage:
            names.append("first_stage")
        if self.metadata_rules:
            names.append("metadata")
        return names + [n for n in self.signals if n not in names]

    @property
    def weights(self) -> dict[str, float]:
        """``{signal: weight}``; setting it checks the weights and rebuilds the core."""
        return dict(self._weights)

    @weights.setter
    def weights(self, weights: Mapping[str, float]) -> None:
        names = self.signal_names
        unknown = set(weights) - set(names)
        if unknown:
            raise ValueError(f"weights for unknown signals {sorted(unknown)}; configured signals: {names}")
        weights = {n: float(weights.get(n, 0.0)) for n in names}
        check_weights(list(weights.items()))
        self._weights = weights
        self._core = self._build_core()

    def _build_core(self) -> _core.HybridReranker:
        """The core's re-ranker for this configuration: crossrank's own models and BM25 run
        in Rust; a model subclass (which may override ``predict`` / ``encode``) and the
        ``signals`` callables are called back; first-stage and metadata values are given
        per call."""
        models, scorers = {}, []
        if type(self.cross_encoder) is CrossEncoder:
            models["cross_encoder"] = self.cross_encoder
        elif self.cross_encoder is not None:
            scorers.append(("cross_encoder", as_scorer(self.cross_encoder, self.batch_size)))
        if type(self.bi_encoder) is BiEncoder:
            models["bi_encoder"] = self.bi_encoder
        scorers += [(name, as_scorer(f, self.batch_size)) for name, f in self.signals.items()]
        given = [n for n, on in (("bi_encoder", self._python_bi_encoder), ("first_stage", self.first_stage),
                                 ("metadata", bool(self.metadata_rules))) if on]
        return _core.HybridReranker(
            [(n, self.normalization[n], self._weights[n]) for n in self.signal_names], **models,
            bm25=self.bm25 if self.bm25 is not False else None, scorers=scorers, given=given,
            fusion=self.fusion, k=self.k, batch_size=self.batch_size)

    @property
    def _python_bi_encoder(self) -> bool:
        """A BiEncoder subclass (it may override ``encode``): its signal is computed here,
        with the candidates' embeddings when given, and handed to the core per call."""
        return self.bi_encoder is not None and type(self.bi_encoder) is not BiEncoder

    def _given(self, query: str, documents: list[str], metadata: Sequence[Mapping] | None,
               first_stage_scores: Sequence[float] | None, embeddings: np.ndarray | None) -> dict[str, list[float]]:
        """The values of the signals each call gives: a BiEncoder subclass's, first-stage
        scores and metadata rules'."""
        n = len(documents)
        given = {}
        if self._python_bi_encoder:
            q = self.bi_encoder.encode([query], batch_size=self.batch_size)
            rows = self.bi_encoder.encode(documents, batch_size=self.batch_size) if embeddings is None else embeddings
            given["bi_encoder"] = list(_finite_scores(self.bi_encoder.similarity(q, rows)[0], n,
                                                      "signal 'bi_encoder'"))
        if self.first_stage:
            given["first_stage"] = (list(-np.arange(n, dtype=np.float64)) if first_stage_scores is None else
                                    list(_finite_scores(first_stage_scores, n, "first_stage_scores")))
        if self.metadata_rules:
            if metadata is None or len(metadata) != n:
                raise ValueError(f"metadata_rules need one metadata dict per document: got "
                                 f"{'none' if metadata is None else len(metadata)} for {n} documents")
            total = sum(r.weight for r in self.metadata_rules)
            given["metadata"] = [sum(r.weight * r.score_document(query, m, i) for r in self.metadata_rules) / total
                                 for i, m in enumerate(metadata)]
        return given

    @staticmethod
    def _embeddings(embeddings: Any, n: int) -> np.ndarray | None:
        if embeddings is None:
            return None
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] != n:
            raise ValueError(f"embeddings must be a ({n}, dim) array, one row per document; got shape "
                             f"{embeddings.shape}")
        return embeddings

    def raw_signals(self, query: str, documents: Sequence[str], metadata: Sequence[Mapping] | None = None,
                    first_stage_scores: Sequence[float] | None = None,
                    embeddings: Any = None) -> dict[str, np.ndarray]:
        """Every configured signal's raw values for the candidates. ``embeddings``: the
        candidates' embeddings ``(len(documents), dim)`` when you have them (a
        :class:`DenseIndex`, a vector store), so the bi-encoder embeds only the query."""
        documents = _check_query_documents(query, documents)
        embeddings = self._embeddings(embeddings, len(documents))
        return self._core.signals(query, documents, embeddings=embeddings,
                                  given=self._given(query, documents, metadata, first_stage_scores, embeddings))

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        if not documents:
            return np.zeros(0)
        documents = _check_query_documents(query, documents)
        _, scores, _, _ = self._core.rerank(query, documents, given=self._given(query, documents, None, None, None))
        return scores

    def rerank(self, query: str, documents: Sequence[str], metadata: Sequence[Mapping] | None = None,
               top_k: int | None = None, explain: bool = False, first_stage_scores: Sequence[float] | None = None,
               return_documents: bool = False, embeddings: Any = None) -> Ranking:
        """Rank ``documents`` for ``query``; with ``explain=True`` each result holds
        ``"explanation": {signal: {"raw", "normalized", "contribution"}}``. ``embeddings``:
        the candidates' embeddings, as in :meth:`raw_signals`."""
        documents = _check_query_documents(query, documents)
        top_k = _optional_count(top_k, "top_k")
        n_head = len(documents) if self.rerank_top_n is None else min(self.rerank_top_n, len(documents))
        head = documents[:n_head]
        start = time.perf_counter()
        if not head:
            return self._ranked(documents, np.zeros(0), None, top_k, return_documents, {})
        vectors = None if embeddings is None else self._embeddings(np.asarray(embeddings)[:n_head], n_head)
        given = self._given(query, head, None if metadata is None else list(metadata)[:n_head],
                            None if first_stage_scores is None else list(first_stage_scores)[:n_head], vectors)
        raw, scores, normalized, contributions = self._core.rerank(query, head, embeddings=vectors, given=given)
        extra = None
        if explain:
            names = self.signal_names
            extra = [{"explanation": {n: {"raw": float(raw[n][i]), "normalized": float(normalized[j][i]),
                                          "contribution": float(contributions[j][i])}
                                      for j, n in enumerate(names)}} for i in range(n_head)]
        return self._ranked(documents, scores, extra, top_k, return_documents,
                            {"HybridReranker": time.perf_counter() - start})

    def fit(self, data: Any, metric: str = "ndcg@10", depth: int = 100, candidates: Mapping | None = None,
            max_rounds: int = 25, embeddings: Any = None) -> dict[str, Any]:
        """Learn the weights by coordinate ascent on ``metric`` (RankLib-style) and set them.

        ``data`` is a :class:`crossrank.datasets.Dataset` (candidates: BM25 top ``depth`` of
        its corpus unless ``candidates`` gives ``{qid: [doc_id, ...]}``) or a tuple
        ``(queries, candidates, qrels)`` with ``queries = {qid: text}``, ``candidates =
        {qid: [(doc_id, text), ...]}`` in first-stage order and ``qrels = {qid: {doc_id: rel}}``.
        Returns ``{"weights", "score", "initial_score", "rounds"}`` (training-set metric with
        the learned and with the previous weights). Metadata signals cannot be fitted this way.
        ``embeddings``: the documents' embeddings, a :class:`DenseIndex` with their ids or a
        mapping ``{doc_id: vector}``, so the bi-encoder signal embeds only the queries instead
        of every candidate of every query.
        """
        if self.metadata_rules:
            raise ValueError("fit() has no metadata for the training candidates: remove metadata_rules to fit")
        queries, cand, qrels = _training_data(data, depth, candidates)
        training = []
        lookup = None if embeddings is None else _embedding_lookup(embeddings)
        for qid, text in queries.items():
            docs = cand.get(qid, [])
            if not docs:
                continue
            vectors = None if lookup is None else lookup([d for d, _ in docs])
            raw = self.raw_signals(text, [t for _, t in docs], embeddings=vectors)
            training.append(([d for d, _ in docs], [list(map(float, raw[n])) for n in self.signal_names],
                             {d: int(r) for d, r in qrels.get(qid, {}).items()}))
        if not training:
            raise ValueError("no training query has candidates")
        names = self.signal_names
        result = fit_weights(training, metric, [self._weights[n] for n in names],
                             [self.normalization[n] for n in names],
                             "weighted" if self.fusion == "weighted" else "rrf", self.k, max_rounds)
        self.weights = dict(zip(names, result["weights"]))
        result["weights"] = dict(self.weights)
        return result

    def __repr__(self) -> str:
        return (f"HybridReranker(signals={self.signal_names}, weights={self.weights}, fusion={self.fusion!r}, "
                f"normalization={self.normalization})")


def _embedding_lookup(embeddings: Any) -> Callable[[list[str]], np.ndarray]:
    """``doc_ids -> (len(doc_ids), dim)`` rows of ``embeddings``: a DenseIndex with ids, or
    a mapping ``{doc_id: vector}``."""
    if isinstance(embeddings, DenseIndex):
        if embeddings.ids is None:
            raise ValueError("the DenseIndex given as embeddings has no ids to find the candidates by")
        table = embeddings.embeddings
        rows = {d: table[i] for i, d in enumerate(embeddings.ids)}
    elif isinstance(embeddings, Mapping):
        rows = embeddings
    else:
        raise TypeError(f"embeddings must be a crossrank.DenseIndex or a mapping {{doc_id: vector}}, "
                        f"got {type(embeddings).__name__}")

    def lookup(doc_ids: list[str]) -> np.ndarray:
        missing = [d for d in doc_ids if d not in rows]
        if missing:
            raise ValueError(f"embeddings have no row for documents {missing[:5]}")
        return np.stack([np.asarray(rows[d], dtype=np.float32) for d in doc_ids])

    return lookup


def _training_data(data: Any, depth: int, candidates: Mapping | None):
    from crossrank.datasets import Dataset

    if isinstance(data, Dataset):
        if candidates is None:
            bm25 = BM25(data.doc_texts, ids=data.doc_ids)
            qids = list(data.queries)
            hits = bm25.search_batch([data.queries[q] for q in qids], top_k=depth)
            candidates = {q: list(ids) for q, (ids, _) in zip(qids, hits)}
        cand = {q: [(d, data.text(d)) for d in docs] for q, docs in candidates.items()}
        return data.queries, cand, data.qrels
    if isinstance(data, tuple) and len(data) == 3:
        queries, cand, qrels = data
        return dict(queries), {q: list(v) for q, v in cand.items()}, qrels
    raise TypeError("data must be a crossrank.datasets.Dataset or a (queries, candidates, qrels) tuple")
