"""The latency / quality trade-off of an evaluation, drawn from its measurements: each stage
is a point at its milliseconds per query (x, log scale; the stage with the stages it depends
on, ``total_ms_per_query``) and its quality (y, e.g. nDCG@10), labelled, with the Pareto
front (the stages no other stage beats on both) joined by a line.

Needs matplotlib (``pip install 'crossrank[plot]'``); nothing imports it until a chart is
drawn.

    >>> result = evaluate(pipeline, dataset)
    >>> result.plot("tradeoff.png")                 # or plot_trade_off([r1, r2, r3], path)
"""

from __future__ import annotations

import math
from os import PathLike
from typing import TYPE_CHECKING, Any, Sequence, Union

if TYPE_CHECKING:
    from crossrank.evaluation import EvaluationResult

__all__ = ["trade_off_points", "pareto_front", "plot_trade_off"]


def trade_off_points(result: "EvaluationResult", metric: str = "ndcg@10") -> list[tuple[str, float, float]]:
    """``(stage, total ms per query, metric)`` for each stage, in pipeline order."""
    if metric not in result.metrics:
        raise ValueError(f"metric {metric!r} was not evaluated; evaluated: {result.metrics}")
    return [(s.name, float(s.total_ms_per_query), float(s.metrics[metric])) for s in result.stages]


def pareto_front(points: Sequence[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """The points no other point beats on both axes (at most as slow and at least as good,
    better on one), fastest first."""
    front = []
    for p in points:
        dominated = any(q[1] <= p[1] and q[2] >= p[2] and (q[1] < p[1] or q[2] > p[2]) for q in points)
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: (p[1], -p[2]))


def _labels_below(points: Sequence[tuple[str, float, float]]) -> list[bool]:
    """Whether each point's label goes below it: the lower of two points that nearly coincide
    (within a fifth of a decade of latency and 4% of the quality range) is labelled below, so
    the two labels do not overlap."""
    ys = [p[2] for p in points]
    span = (max(ys) - min(ys)) or 1.0
    below = [False] * len(points)
    for i, (_, x, y) in enumerate(points):
        for _, x2, y2 in points:
            close = abs(math.log10(max(x, 1e-9)) - math.log10(max(x2, 1e-9))) < 0.2 and abs(y - y2) < 0.04 * span
            if close and (y < y2):
                below[i] = True
    return below


def _require_matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("drawing the trade-off chart needs matplotlib: pip install 'crossrank[plot]'") from e
    return matplotlib


def plot_trade_off(results: Union["EvaluationResult", Sequence["EvaluationResult"]],
                   path: str | PathLike[str] | None = None, metric: str = "ndcg@10", dpi: int = 100) -> Any:
    """Draws one panel per result (e.g. one per collection) and returns the matplotlib
    Figure; writes it to ``path`` (PNG, SVG, PDF by the suffix) when given. Each panel's
    first scatter collection holds the stages' points in pipeline order."""
    _require_matplotlib()
    # A Figure of its own (not pyplot's): no GUI backend, nothing global changed.
    from matplotlib.figure import Figure

    results = [results] if not isinstance(results, (list, tuple)) else list(results)
    if not results:
        raise ValueError("nothing to plot: no evaluation results")
    figure = Figure(figsize=(5.0 * len(results), 4.0), dpi=dpi, layout="constrained")
    axes = figure.subplots(1, len(results), squeeze=False)[0]
    for ax, result in zip(axes, results):
        points = trade_off_points(result, metric)
        xs, ys = [p[1] for p in points], [p[2] for p in points]
        ax.scatter(xs, ys, zorder=3)
        for (name, x, y), below in zip(points, _labels_below(points)):
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, -12 if below else 5), fontsize=9)
        front = pareto_front(points)
        ax.plot([p[1] for p in front], [p[2] for p in front], linestyle="--", color="grey", zorder=2,
                label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel("ms per query (log)")
        ax.set_ylabel(metric)
        ax.set_title(f"{result.dataset} ({result.num_queries} queries)")
        ax.grid(True, which="both", alpha=0.3)
        ax.margins(x=0.15, y=0.12)
        # "best": where it covers no point.
        ax.legend(loc="best", fontsize=8)
    if path is not None:
        figure.savefig(path)
    return figure
