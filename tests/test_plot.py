"""The trade-off chart (`EvaluationResult.plot`, `crossrank eval --plot`): a PNG of the
expected size whose points are the table's numbers, with the Pareto front."""

from __future__ import annotations

import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from crossrank.evaluation import EvaluationResult, StageResult
from crossrank.plot import pareto_front, plot_trade_off, trade_off_points


def _stage(name: str, ms: float, total: float, ndcg: float) -> StageResult:
    return StageResult(name=name, metrics={"ndcg@10": ndcg, "mrr@10": ndcg + 0.1}, per_query={},
                       ms_per_query=ms, total_ms_per_query=total, pairs_per_second=None, build_s=0.0, run={})


@pytest.fixture()
def result() -> EvaluationResult:
    stages = [_stage("bm25", 0.5, 0.5, 0.40), _stage("dense", 3.0, 3.0, 0.38), _stage("hybrid", 0.1, 3.6, 0.45),
              _stage("ce", 900.0, 903.6, 0.44)]
    return EvaluationResult(dataset="tiny", num_queries=5, depth=100, metrics=["ndcg@10", "mrr@10"], stages=stages)


def test_points_and_front(result):
    points = trade_off_points(result)
    assert points == [("bm25", 0.5, 0.40), ("dense", 3.0, 0.38), ("hybrid", 3.6, 0.45), ("ce", 903.6, 0.44)]
    # dense is beaten by bm25 (faster, better), ce by hybrid.
    assert [p[0] for p in pareto_front(points)] == ["bm25", "hybrid"]
    assert trade_off_points(result, "mrr@10")[0] == ("bm25", 0.5, pytest.approx(0.50))
    with pytest.raises(ValueError, match=r"metric 'map@100' was not evaluated"):
        trade_off_points(result, "map@100")


def test_png_holds_the_tables_numbers(result, tmp_path):
    path = tmp_path / "tradeoff.png"
    figure = result.plot(str(path))
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (400, 500)
    assert path.stat().st_size > 10_000
    ax = figure.axes[0]
    np.testing.assert_allclose(ax.collections[0].get_offsets(),
                               [[s.total_ms_per_query, s.metrics["ndcg@10"]] for s in result.stages])
    assert [t.get_text() for t in ax.texts] == [s.name for s in result.stages]
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "ndcg@10"
    front = ax.lines[0]
    np.testing.assert_allclose(np.column_stack(front.get_data()), [[0.5, 0.40], [3.6, 0.45]])
    # Image not blank: the points are drawn.
    assert image[..., :3].std() > 0.01


def test_one_panel_per_collection(result, tmp_path):
    other = EvaluationResult(dataset="other", num_queries=3, depth=10, metrics=["ndcg@10"],
                             stages=[_stage("bm25", 1.0, 1.0, 0.2)])
    figure = plot_trade_off([result, other], tmp_path / "two.png")
    assert [ax.get_title() for ax in figure.axes] == ["tiny (5 queries)", "other (3 queries)"]
    assert matplotlib.image.imread(tmp_path / "two.png").shape[:2] == (400, 1000)
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_trade_off([])


def test_cli_eval_plot(tmp_path):
    from conftest import DATA

    path = tmp_path / "cli.png"
    proc = subprocess.run([sys.executable, "-m", "crossrank", "eval", str(DATA / "cranfield"), "--stages", "bm25",
                           "--no-progress", "--plot", str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"trade-off chart: {path}" in proc.stdout
    assert matplotlib.image.imread(path).shape[:2] == (400, 500)


def test_labels_of_near_points_do_not_overlap(tmp_path):
    # ce+dense and learned nearly coincide (as in the demo's cranfield panel): the lower one's
    # label goes below its point; a distant point keeps its label above.
    stages = [_stage("bm25", 0.3, 0.3, 0.33), _stage("ce+dense", 0.1, 875.8, 0.3965),
              _stage("learned", 23.5, 897.1, 0.3973)]
    result = EvaluationResult(dataset="near", num_queries=5, depth=100, metrics=["ndcg@10", "mrr@10"], stages=stages)
    ax = plot_trade_off(result, tmp_path / "near.png").axes[0]
    offsets = {t.get_text(): t.xyann[1] for t in ax.texts}
    assert offsets["ce+dense"] < 0 < offsets["learned"] and offsets["bm25"] > 0
    # The legend covers no point.
    legend = ax.get_legend().get_window_extent()
    points = ax.transData.transform(ax.collections[0].get_offsets())
    assert not any(legend.contains(x, y) for x, y in points)
