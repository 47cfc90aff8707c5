"""Re-ranking strategies that compose: hybrid signals, multi-stage cascades, selective
re-ranking, and calibration.

>>> from crossrank import CrossEncoder, BM25
>>> from crossrank.reranking import HybridReranker, MultiStage, Recency
>>> hr = HybridReranker(cross_encoder=ce, bm25=True, weights={"cross_encoder": .6, "bm25": .2, "metadata": .2},
...                     normalization="minmax", metadata_rules=[Recency("date", half_life_days=30)])
>>> hr.rerank(query, documents, metadata=[{"date": "2026-11-01"}, ...], top_k=5, explain=True)
>>> MultiStage([(bi_encoder, 100), (ce, 20)]).rerank(query, documents)

Every reranker here has ``rerank(query, documents, top_k=None, ...) -> Ranking``: a list of
``{"corpus_id": int, "score": float, ...}`` best first (``corpus_id`` is the document's
position in ``documents``), and takes the selective options ``rerank_top_n`` (score only
the first N candidates, keep the rest in their order below them), ``score_threshold``
(drop re-scored documents below it) and ``min_keep`` (never return fewer than this many,
threshold or not). Any reranker is also a callable ``f(query, documents) -> scores``, so it
plugs into :class:`crossrank.evaluation.RerankStage` and into other rerankers.

The numeric parts (normalization, fusion, coordinate ascent, calibration) run in the Rust
core; this module composes models and Python callables around them.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np

from crossrank._core import (BM25, BiEncoder, Calibrator, CrossEncoder, aggregate_preferences, combine_signals,
                             expected_calibration_error, fit_weights, sort_by_preference, suggest_threshold)

__all__ = [
    "Reranker", "Ranking", "as_reranker", "HybridReranker", "MultiStage", "PairwiseReranker", "Recency",
    "SourceTrust", "FieldMatch",
    "Calibrator", "suggest_threshold", "expected_calibration_error",
]

Scorer = Callable[[str, Sequence[str]], Sequence[float]]
NORMALIZATIONS = ("minmax", "zscore", "sigmoid", "rank", "none")


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
    try:
        array = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{who} must return numbers, got {type(scores).__name__}") from e
    if array.shape != (n,):
        raise ValueError(f"{who} returned {array.shape} scores for {n} documents")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f"{who} returned a non-finite score ({array[bad[0]]}) for document {int(bad[0])}")
    return array


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


def _name(model: Any) -> str:
    return getattr(model, "__name__", type(model).__name__)


def as_reranker(model: Any, **selective: Any) -> Reranker:
    """A Reranker for ``model`` (returned as is when it already is one without options)."""
    if isinstance(model, Reranker) and not selective:
        return model
    return _ModelReranker(model, **selective)


# --- metadata rules ------------------------------------------------------------------------

_MISSING = object()


@dataclass
class _Rule:
    field: str
    missing: float | Literal["error"] = "error"
    weight: float = 1.0

    def score_document(self, query: str, metadata: Mapping[str, Any], i: int) -> float:
        """This rule's value in [0, 1] for document i's metadata."""
        raw = metadata.get(self.field, _MISSING) if isinstance(metadata, Mapping) else _MISSING
        if raw is _MISSING or raw is None:
            if self.missing == "error":
                raise ValueError(f"{type(self).__name__}: document {i} has no metadata field {self.field!r} "
                                 f"(pass missing=<value> to score such documents)")
            return float(self.missing)
        return self.evaluate(query, raw, i)

    def evaluate(self, query: str, raw: Any, i: int) -> float:
        raise NotImplementedError


def _as_datetime(raw: Any, field_name: str, i: int) -> datetime:
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, date):
        value = datetime(raw.year, raw.month, raw.day)
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = datetime.fromtimestamp(float(raw), tz=timezone.utc)
    elif isinstance(raw, str):
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"document {i}: {field_name}={raw!r} is not an ISO date") from None
    else:
        raise TypeError(f"document {i}: {field_name} must be a date, datetime, ISO string or timestamp")
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


@dataclass
class Recency(_Rule):
    """``0.5 ** (age_days / half_life_days)``: 1 for a document dated now, 0.5 one half-life
    ago. Dates: ``datetime``/``date``, ISO strings or Unix timestamps; ``now`` defaults to
    the current time. Future dates count as age 0."""

    half_life_days: float = 30.0
    now: datetime | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.half_life_days, (int, float)) and self.half_life_days > 0):
            raise ValueError(f"half_life_days must be a positive number, got {self.half_life_days!r}")

    def evaluate(self, query: str, raw: Any, i: int) -> float:
        now = _as_datetime(self.now, "now", -1) if self.now is not None else datetime.now(timezone.utc)
        age = max(0.0, (now - _as_datetime(raw, self.field, i)).total_seconds() / 86400)
        return 0.5 ** (age / self.half_life_days)


@dataclass
class SourceTrust(_Rule):
    """``trust[metadata[field]]``, or ``default`` for sources not in the map."""

    trust: Mapping[str, float] = field(default_factory=dict)
    default: float = 0.0

    def evaluate(self, query: str, raw: Any, i: int) -> float:
        return float(self.trust.get(raw, self.default))


@dataclass
class FieldMatch(_Rule):
    """1.0 when the field matches, else 0.0: equal to ``value`` when one is given, otherwise
    when the field's text (or any item of a list) occurs in the query, case-insensitively."""

    value: Any = None

    def evaluate(self, query: str, raw: Any, i: int) -> float:
        if self.value is not None:
            return float(raw == self.value)
        items = raw if isinstance(raw, (list, tuple, set)) else [raw]
        q = query.lower()
        return float(any(str(item).lower() in q for item in items if str(item)))


# --- hybrid ----------------------------------------------------------------------------------


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
        self.weights = self._check_weights(weights if weights is not None else {n: 1.0 for n in names})

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

    def _check_weights(self, weights: Mapping[str, float]) -> dict[str, float]:
        names = self.signal_names
        unknown = set(weights) - set(names)
        if unknown:
            raise ValueError(f"weights for unknown signals {sorted(unknown)}; configured signals: {names}")
        out = {n: float(weights.get(n, 0.0)) for n in names}
        for n, w in out.items():
            if not math.isfinite(w) or w < 0:
                raise ValueError(f"weight of {n!r} is {w}; weights must be finite and >= 0")
        if not any(w > 0 for w in out.values()):
            raise ValueError("weights sum to 0: at least one signal must have a positive weight")
        return out

    def raw_signals(self, query: str, documents: Sequence[str], metadata: Sequence[Mapping] | None = None,
                    first_stage_scores: Sequence[float] | None = None) -> dict[str, np.ndarray]:
        """Every configured signal's raw values for the candidates."""
        documents = _check_query_documents(query, documents)
        n = len(documents)
        out: dict[str, np.ndarray] = {}
        if self.cross_encoder is not None:
            out["cross_encoder"] = self.cross_encoder.predict([(query, d) for d in documents],
                                                              batch_size=self.batch_size).astype(np.float64)
        if self.bm25 is not False:
            index = self.bm25 if isinstance(self.bm25, BM25) else BM25(documents)
            out["bm25"] = index.score(query, documents).astype(np.float64)
        if self.bi_encoder is not None:
            q = self.bi_encoder.encode([query])
            out["bi_encoder"] = self.bi_encoder.similarity(q, self.bi_encoder.encode(documents))[0].astype(np.float64)
        if self.first_stage:
            if first_stage_scores is None:
                out["first_stage"] = -np.arange(n, dtype=np.float64)
            else:
                out["first_stage"] = _finite_scores(first_stage_scores, n, "first_stage_scores")
        if self.metadata_rules:
            if metadata is None or len(metadata) != n:
                raise ValueError(f"metadata_rules need one metadata dict per document: got "
                                 f"{'none' if metadata is None else len(metadata)} for {n} documents")
            total = sum(r.weight for r in self.metadata_rules)
            out["metadata"] = np.array([
                sum(r.weight * r.score_document(query, m, i) for r in self.metadata_rules) / total
                for i, m in enumerate(metadata)])
        for name, f in self.signals.items():
            out[name] = _finite_scores(f(query, documents), n, f"signal {name!r}")
        return out

    def _combine(self, raw: Mapping[str, np.ndarray], weights: Mapping[str, float]):
        names = self.signal_names
        return names, combine_signals(names, [list(map(float, raw[n])) for n in names],
                                      [weights[n] for n in names], [self.normalization[n] for n in names],
                                      "weighted" if self.fusion == "weighted" else "rrf", self.k)

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        if not documents:
            return np.zeros(0)
        _, (scores, _, _) = self._combine(self.raw_signals(query, documents), self.weights)
        return np.asarray(scores)

    def rerank(self, query: str, documents: Sequence[str], metadata: Sequence[Mapping] | None = None,
               top_k: int | None = None, explain: bool = False, first_stage_scores: Sequence[float] | None = None,
               return_documents: bool = False) -> Ranking:
        """Rank ``documents`` for ``query``; with ``explain=True`` each result holds
        ``"explanation": {signal: {"raw", "normalized", "contribution"}}``."""
        documents = _check_query_documents(query, documents)
        top_k = _optional_count(top_k, "top_k")
        n_head = len(documents) if self.rerank_top_n is None else min(self.rerank_top_n, len(documents))
        head = documents[:n_head]
        start = time.perf_counter()
        if not head:
            return self._ranked(documents, np.zeros(0), None, top_k, return_documents, {})
        raw = self.raw_signals(query, head, None if metadata is None else list(metadata)[:n_head],
                               None if first_stage_scores is None else list(first_stage_scores)[:n_head])
        names, (scores, normalized, contributions) = self._combine(raw, self.weights)
        extra = None
        if explain:
            extra = [{"explanation": {n: {"raw": float(raw[n][i]), "normalized": float(normalized[j][i]),
                                          "contribution": float(contributions[j][i])}
                                      for j, n in enumerate(names)}} for i in range(n_head)]
        return self._ranked(documents, np.asarray(scores), extra, top_k, return_documents,
                            {"HybridReranker": time.perf_counter() - start})

    def fit(self, data: Any, metric: str = "ndcg@10", depth: int = 100, candidates: Mapping | None = None,
            max_rounds: int = 25) -> dict[str, Any]:
        """Learn the weights by coordinate ascent on ``metric`` (RankLib-style) and set them.

        ``data`` is a :class:`crossrank.datasets.Dataset` (candidates: BM25 top ``depth`` of
        its corpus unless ``candidates`` gives ``{qid: [doc_id, ...]}``) or a tuple
        ``(queries, candidates, qrels)`` with ``queries = {qid: text}``, ``candidates =
        {qid: [(doc_id, text), ...]}`` in first-stage order and ``qrels = {qid: {doc_id: rel}}``.
        Returns ``{"weights", "score", "initial_score", "rounds"}`` (training-set metric with
        the learned and with the previous weights). Metadata signals cannot be fitted this way.
        """
        if self.metadata_rules:
            raise ValueError("fit() has no metadata for the training candidates: remove metadata_rules to fit")
        queries, cand, qrels = _training_data(data, depth, candidates)
        training = []
        for qid, text in queries.items():
            docs = cand.get(qid, [])
            if not docs:
                continue
            raw = self.raw_signals(text, [t for _, t in docs])
            training.append(([d for d, _ in docs], [list(map(float, raw[n])) for n in self.signal_names],
                             {d: int(r) for d, r in qrels.get(qid, {}).items()}))
        if not training:
            raise ValueError("no training query has candidates")
        names = self.signal_names
        result = fit_weights(training, metric, [self.weights[n] for n in names],
                             [self.normalization[n] for n in names],
                             "weighted" if self.fusion == "weighted" else "rrf", self.k, max_rounds)
        self.weights = dict(zip(names, result["weights"]))
        result["weights"] = dict(self.weights)
        return result

    def __repr__(self) -> str:
        return (f"HybridReranker(signals={self.signal_names}, weights={self.weights}, fusion={self.fusion!r}, "
                f"normalization={self.normalization})")


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


# --- multi-stage ---------------------------------------------------------------------------------


class MultiStage(Reranker):
    """A cascade: ``MultiStage([(fast_model, 100), (slow_model, 20)])``.

    Stage i re-scores the first N_i documents of the order the previous stage left (the
    input order for the first stage); the documents below its cut keep that earlier order
    beneath the re-scored ones. Each stage may be a CrossEncoder, BiEncoder, any Reranker
    (HybridReranker, another MultiStage) or a callable ``f(query, documents) -> scores``.
    An N larger than the number of candidates re-scores them all. ``rerank`` returns a
    :class:`Ranking` whose ``timings`` give seconds per stage; each result's ``"stage"`` is
    the index of the last stage that scored it and ``"score"`` that stage's score.
    """

    def __init__(self, stages: Sequence[tuple[Any, int]], batch_size: int = 32, **selective: Any) -> None:
        super().__init__(**selective)
        if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence) or not stages:
            raise ValueError("stages must be a non-empty list of (model, top_n) pairs")
        self.stages = []
        for i, stage in enumerate(stages):
            if not (isinstance(stage, tuple) and len(stage) == 2):
                raise TypeError(f"stages[{i}] must be a (model, top_n) pair, got {stage!r}")
            model, n = stage
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
                raise ValueError(f"stages[{i}]: top_n must be a positive integer, got {n!r}")
            self.stages.append((as_reranker(model) if isinstance(model, Reranker) else
                                _ModelReranker(model, batch_size=batch_size), int(n)))

    def _cascade(self, query: str, documents: list[str]):
        order = list(range(len(documents)))
        scores: dict[int, tuple[float, int]] = {}
        timings = {}
        for s, (model, n) in enumerate(self.stages):
            head = order[:n]
            start = time.perf_counter()
            got = _finite_scores(model.score(query, [documents[i] for i in head]), len(head), f"stage {s}") \
                if head else np.zeros(0)
            timings[f"stage {s} ({_label(model)}, top {n})"] = time.perf_counter() - start
            for i, v in zip(head, got):
                scores[i] = (float(v), s)
            ranked_head = sorted(range(len(head)), key=lambda j: (-got[j], j))
            order = [head[j] for j in ranked_head] + order[n:]
        return order, scores, timings

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """Scores that reproduce the cascade's order (higher = earlier): ``n - position``."""
        order, _, _ = self._cascade(query, list(documents))
        out = np.zeros(len(order))
        for position, i in enumerate(order):
            out[i] = len(order) - position
        return out

    def rerank(self, query: str, documents: Sequence[str], top_k: int | None = None,
               return_documents: bool = False) -> Ranking:
        documents = _check_query_documents(query, documents)
        top_k = _optional_count(top_k, "top_k")
        n_head = len(documents) if self.rerank_top_n is None else min(self.rerank_top_n, len(documents))
        order, scores, timings = self._cascade(query, documents[:n_head])
        # Scored by at least one stage, in the cascade's order; then the rest in input order.
        head = [{"corpus_id": i, "score": scores[i][0], "stage": scores[i][1]} for i in order if i in scores]
        tail = [i for i in order if i not in scores] + list(range(n_head, len(documents)))
        return self._finish(head, tail, documents, top_k, return_documents, timings, stage=None)

    def __repr__(self) -> str:
        return f"MultiStage([{', '.join(f'({_label(m)}, {n})' for m, n in self.stages)}])"


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


def _label(model: Any) -> str:
    inner = getattr(model, "model", model)
    return type(inner).__name__ if not callable(inner) or isinstance(inner, (CrossEncoder, BiEncoder, Reranker)) \
        else _name(inner)
