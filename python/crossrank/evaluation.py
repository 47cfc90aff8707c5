"""Evaluate a retrieval / re-ranking pipeline on a test collection, stage by stage.

>>> from crossrank import BiEncoder, CrossEncoder
>>> from crossrank.datasets import load_beir
>>> from crossrank.evaluation import BM25Stage, DenseStage, FusionStage, RerankStage, evaluate
>>> data = load_beir("data/cranfield")
>>> result = evaluate([BM25Stage(), DenseStage(BiEncoder("sentence-transformers/all-MiniLM-L6-v2")),
...                    FusionStage(["bm25", "dense"]), RerankStage(CrossEncoder(...), input="hybrid")],
...                   data, metrics=["ndcg@10", "mrr@10", "map@100", "recall@100"], depth=100)
>>> print(result)                      # a text table; result.to_dict() for JSON
>>> result.compare("bm25", "hybrid")   # paired randomization test per metric

A pipeline is a list of stages run in order. Each stage produces a run (the top ``depth``
documents per query) that is evaluated with :func:`crossrank.metrics.evaluate`:

* :class:`BM25Stage`, :class:`DenseStage`, :class:`RetrieverStage` retrieve from the corpus;
* :class:`FusionStage` fuses earlier stages' runs (RRF or weighted sum);
* :class:`RerankStage` re-scores the candidates of an earlier stage (default: the previous one)
  with a CrossEncoder, a BiEncoder or any ``f(query, documents) -> scores``.

``ms_per_query`` is each stage's own time per query (index building excluded, reported as
``build_s``); ``total_ms_per_query`` adds the stages it depends on.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np

from crossrank._core import BM25, BiEncoder
from crossrank.datasets import Dataset
from crossrank.metrics import evaluate as evaluate_run
from crossrank.reranking.scoring import is_scorer, score_documents
from crossrank.retrieval import DenseRetriever, fuse

__all__ = [
    "BM25Stage", "DenseStage", "RetrieverStage", "FusionStage", "RerankStage",
    "StageResult", "EvaluationResult", "evaluate", "randomization_test",
]

DEFAULT_METRICS = ("ndcg@10", "mrr@10", "map@100", "recall@100")
Run = dict[str, dict[str, float]]


def _progress(iterable, show: bool, desc: str, total: int | None = None):
    if not show:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


def _to_run(query_ids: Sequence[str], results: Sequence[tuple[Any, np.ndarray]], doc_ids: list[str]) -> Run:
    run: Run = {}
    for qid, (ids, scores) in zip(query_ids, results):
        if len(ids) and not isinstance(ids[0], str):
            ids = [doc_ids[int(i)] for i in ids]
        run[qid] = {d: float(s) for d, s in zip(ids, scores)}
    return run


@dataclass
class _Context:
    data: Dataset
    depth: int
    show_progress_bar: bool
    runs: dict[str, Run] = field(default_factory=dict)
    retrievers: dict[str, Any] = field(default_factory=dict)
    totals: dict[str, float] = field(default_factory=dict)


class RetrieverStage:
    """Retrieve with a ready-made retriever (``search_batch(queries, top_k)``) whose ids
    are the dataset's document ids or corpus positions."""

    def __init__(self, retriever: Any, name: str = "retriever") -> None:
        self.retriever, self.name = retriever, name

    def build(self, ctx: _Context) -> Any:
        return self.retriever

    def run(self, ctx: _Context) -> tuple[Run, float, int]:
        start = time.perf_counter()
        retriever = self.build(ctx)
        build_s = time.perf_counter() - start
        ctx.retrievers[self.name] = retriever
        qids = list(ctx.data.queries)
        texts = [ctx.data.queries[q] for q in qids]
        start = time.perf_counter()
        results = []
        for i in _progress(range(0, len(qids), 64), ctx.show_progress_bar, self.name, total=-(-len(qids) // 64)):
            results.extend(retriever.search_batch(texts[i : i + 64], top_k=ctx.depth))
        elapsed = time.perf_counter() - start
        self.build_s = build_s
        return _to_run(qids, results, ctx.data.doc_ids), elapsed, 0


class BM25Stage(RetrieverStage):
    """BM25 over the dataset's corpus; keyword arguments go to :class:`crossrank.BM25`."""

    def __init__(self, name: str = "bm25", **bm25_kwargs: Any) -> None:
        super().__init__(None, name)
        self.kwargs = bm25_kwargs

    def build(self, ctx: _Context) -> BM25:
        return BM25(ctx.data.doc_texts, ids=ctx.data.doc_ids, **self.kwargs)


class DenseStage(RetrieverStage):
    """Exact dense retrieval with a :class:`crossrank.BiEncoder` over the whole corpus."""

    def __init__(self, encoder: BiEncoder, name: str = "dense", batch_size: int = 32, **kwargs: Any) -> None:
        super().__init__(None, name)
        self.encoder, self.batch_size, self.kwargs = encoder, batch_size, kwargs

    def build(self, ctx: _Context) -> DenseRetriever:
        return DenseRetriever(self.encoder, ctx.data.doc_texts, ids=ctx.data.doc_ids, batch_size=self.batch_size,
                              show_progress_bar=ctx.show_progress_bar, **self.kwargs)


class FusionStage:
    """Fuse earlier stages' runs: ``method="rrf"`` (k=60) or ``"weighted"`` (min-max)."""

    def __init__(self, inputs: Sequence[str] = ("bm25", "dense"), name: str = "hybrid",
                 method: Literal["rrf", "weighted"] = "rrf", k: float = 60.0,
                 weights: Sequence[float] | None = None) -> None:
        self.inputs, self.name = list(inputs), name
        if len(self.inputs) < 2:
            raise ValueError(f"a fusion stage needs at least two input stages, got {self.inputs}")
        self.method, self.k, self.weights = method, k, weights
        fuse([{} for _ in self.inputs], method, k, weights)  # checks the arguments now

    def run(self, ctx: _Context) -> tuple[Run, float, int]:
        missing = [s for s in self.inputs if s not in ctx.runs]
        if missing:
            raise ValueError(f"stage {self.name!r} fuses {missing}, which no earlier stage produced")
        self.build_s = 0.0
        start = time.perf_counter()
        run = {}
        for qid in ctx.data.queries:
            fused = fuse([ctx.runs[s].get(qid, {}) for s in self.inputs], self.method, self.k, self.weights)
            run[qid] = dict(list(fused.items())[: ctx.depth])
        return run, time.perf_counter() - start, 0


class RerankStage:
    """Re-score the top ``depth`` candidates of stage ``input`` (default: the previous stage).

    ``model`` is a :class:`crossrank.CrossEncoder` (``predict`` on (query, document) pairs), a
    :class:`crossrank.BiEncoder` (cosine of query and document embeddings), or a callable
    ``f(query, documents) -> scores`` such as a :class:`crossrank.reranking.Reranker`; it is
    scored by :func:`crossrank.reranking.scoring.score_documents`. Candidates below ``depth``
    are dropped.
    """

    def __init__(self, model: Any, name: str = "rerank", input: str | None = None, depth: int | None = None,
                 batch_size: int = 32) -> None:
        if not is_scorer(model):
            raise TypeError(f"model must be a CrossEncoder, a BiEncoder or a callable, got {type(model).__name__}")
        self.model, self.name, self.input, self.depth, self.batch_size = model, name, input, depth, batch_size

    def _score(self, qid: str, query: str, texts: list[str]) -> np.ndarray:
        """Checked scores (see :func:`crossrank.reranking.scoring.score_documents`); errors
        name the stage and the query."""
        return score_documents(self.model, query, texts, self.batch_size, f"stage {self.name!r}, query {qid!r}")

    def run(self, ctx: _Context, previous: str) -> tuple[Run, float, int]:
        source = self.input or previous
        if source not in ctx.runs:
            raise ValueError(f"stage {self.name!r} re-ranks {source!r}, which no earlier stage produced")
        self.build_s, self.source = 0.0, source
        depth = self.depth or ctx.depth
        run, pairs, elapsed = {}, 0, 0.0
        for qid in _progress(list(ctx.data.queries), ctx.show_progress_bar, self.name):
            candidates = sorted(ctx.runs[source].get(qid, {}).items(), key=lambda kv: (-kv[1], kv[0]))[:depth]
            ids = [d for d, _ in candidates]
            if not ids:
                run[qid] = {}
                continue
            texts = [ctx.data.text(d) for d in ids]
            start = time.perf_counter()
            scores = self._score(qid, ctx.data.queries[qid], texts)
            elapsed += time.perf_counter() - start
            run[qid] = {d: float(s) for d, s in zip(ids, scores)}
            pairs += len(ids)
        return run, elapsed, pairs


@dataclass
class StageResult:
    name: str
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    ms_per_query: float
    total_ms_per_query: float
    pairs_per_second: float | None
    build_s: float
    run: Run = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "metrics": dict(self.metrics),
                               "ms_per_query": self.ms_per_query, "total_ms_per_query": self.total_ms_per_query,
                               "build_s": self.build_s}
        if self.pairs_per_second is not None:
            out["pairs_per_second"] = self.pairs_per_second
        return out


def randomization_test(a: Sequence[float], b: Sequence[float], n_resamples: int = 10000,
                       seed: int = 0) -> float:
    """Two-sided paired randomization (permutation) test of mean(b - a) != 0.

    Under the null hypothesis the two systems are exchangeable per query, so each paired
    difference's sign is flipped at random. Exact (all 2^n sign patterns) for n <= 16,
    else Monte Carlo with ``n_resamples`` draws (p-value with the +1 correction, so it is
    never 0).
    """
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if d.ndim != 1 or len(d) == 0:
        raise ValueError("need two equal-length, non-empty sequences of per-query values")
    if not np.all(np.isfinite(d)):
        raise ValueError("per-query values must be finite")
    observed = abs(d.mean())
    # Guards against float noise making an identical permutation look "more extreme".
    tolerance = 1e-12 * max(1.0, observed)
    n = len(d)
    if n <= 16:
        patterns = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2 - 1
        means = np.abs(patterns @ d) / n
        return float(np.mean(means >= observed - tolerance))
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, n_resamples, 1000):
        signs = rng.choice(np.array([-1.0, 1.0]), size=(min(1000, n_resamples - start), n))
        extreme += int(np.sum(np.abs(signs @ d) / n >= observed - tolerance))
    return (extreme + 1) / (n_resamples + 1)


@dataclass
class EvaluationResult:
    dataset: str
    num_queries: int
    depth: int
    metrics: list[str]
    stages: list[StageResult]

    def __getitem__(self, name: str) -> StageResult:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage {name!r}; stages: {[s.name for s in self.stages]}")

    def compare(self, baseline: str, other: str, metrics: Sequence[str] | None = None,
                n_resamples: int = 10000, seed: int = 0) -> dict[str, dict[str, float]]:
        """Per metric: the mean difference ``other - baseline``, the p-value of a paired
        randomization test, and how many queries got better / worse."""
        a, b = self[baseline], self[other]
        out = {}
        for m in metrics or self.metrics:
            qids = sorted(a.per_query[m])
            x = [a.per_query[m][q] for q in qids]
            y = [b.per_query[m][q] for q in qids]
            diff = np.subtract(y, x)
            out[m] = {"delta": float(diff.mean()), "p_value": randomization_test(x, y, n_resamples, seed),
                      "better": int(np.sum(diff > 0)), "worse": int(np.sum(diff < 0))}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "num_queries": self.num_queries, "depth": self.depth,
                "stages": [s.to_dict() for s in self.stages]}

    def plot(self, path: str | None = None, metric: str = "ndcg@10") -> Any:
        """The latency / quality trade-off of the stages as a matplotlib Figure (written to
        ``path`` when given); see :func:`crossrank.plot.plot_trade_off`. Needs
        ``pip install 'crossrank[plot]'``."""
        from crossrank.plot import plot_trade_off

        return plot_trade_off(self, path, metric=metric)

    def _rows(self) -> tuple[list[str], list[list[str]]]:
        header = ["stage", *self.metrics, "ms/query", "total ms/query", "pairs/s"]
        rows = []
        for s in self.stages:
            pairs = "" if s.pairs_per_second is None else f"{s.pairs_per_second:.1f}"
            rows.append([s.name, *(f"{s.metrics[m]:.4f}" for m in self.metrics), f"{s.ms_per_query:.1f}",
                         f"{s.total_ms_per_query:.1f}", pairs])
        return header, rows

    def __str__(self) -> str:
        header, rows = self._rows()
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
        title = f"{self.dataset}: {self.num_queries} queries, depth {self.depth}"
        return "\n".join([title, line(header), "  ".join("-" * w for w in widths), *map(line, rows)])

    def to_markdown(self) -> str:
        header, rows = self._rows()
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])

    def _repr_html_(self) -> str:
        header, rows = self._rows()
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        caption = html.escape(f"{self.dataset}: {self.num_queries} queries, depth {self.depth}")
        return f"<table><caption>{caption}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def evaluate(pipeline: Sequence[Any], dataset: Dataset, metrics: Sequence[str] = DEFAULT_METRICS,
             depth: int = 100, show_progress_bar: bool = False) -> EvaluationResult:
    """Run each stage of ``pipeline`` on every judged query of ``dataset`` and measure it."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth <= 0:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a crossrank.datasets.Dataset (load_beir), got {type(dataset).__name__}")
    if len(pipeline) == 0:
        raise ValueError("the pipeline has no stages")
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    evaluate_run({"q": {"d": 1}}, {}, metrics)  # rejects unknown metric names before any work
    for stage in pipeline:
        if not isinstance(stage, (RetrieverStage, FusionStage, RerankStage)):
            raise TypeError(f"pipeline stages must be BM25Stage, DenseStage, RetrieverStage, FusionStage or "
                            f"RerankStage objects, got {type(stage).__name__}")
    names = [s.name for s in pipeline]
    if len(set(names)) != len(names):
        raise ValueError(f"stage names must be unique, got {names}")
    ctx = _Context(dataset, depth, show_progress_bar)
    n = len(dataset.queries)
    results, previous = [], None
    for stage in pipeline:
        if isinstance(stage, RerankStage):
            if previous is None:
                raise ValueError(f"re-ranking stage {stage.name!r} has no earlier stage to re-rank")
            run, elapsed, pairs = stage.run(ctx, previous)
            depends = [stage.source]
        elif isinstance(stage, FusionStage):
            run, elapsed, pairs = stage.run(ctx)
            depends = stage.inputs
        else:
            run, elapsed, pairs = stage.run(ctx)
            depends = []
        ctx.runs[stage.name] = run
        ctx.totals[stage.name] = elapsed + sum(ctx.totals[d] for d in depends)
        per_query = evaluate_run(dataset.qrels, run, metrics, per_query=True)
        results.append(StageResult(
            name=stage.name,
            metrics={m: float(np.mean(list(v.values()))) for m, v in per_query.items()},
            per_query=per_query,
            ms_per_query=1000 * elapsed / n,
            total_ms_per_query=1000 * ctx.totals[stage.name] / n,
            pairs_per_second=(pairs / elapsed if elapsed > 0 else None) if isinstance(stage, RerankStage) else None,
            build_s=stage.build_s,
            run=run,
        ))
        previous = stage.name
    return EvaluationResult(dataset.name, n, depth, metrics, results)
