"""Ranking metrics equal to trec_eval's (checked against pytrec-eval-terrier).

>>> from crossrank.metrics import evaluate
>>> evaluate({"q1": {"d1": 1, "d2": 0}}, {"q1": {"d1": 0.9, "d2": 0.5}}, ["ndcg@10", "mrr@10"])
{'ndcg@10': 1.0, 'mrr@10': 1.0}

Metric names: ``ndcg@k`` (linear gain, as trec_eval's ndcg_cut), ``ndcg_exp@k``
(exponential gain ``2**rel - 1``), ``mrr@k`` (recip_rank on the run cut at k), ``map@k``
(map_cut: divided by all relevant documents), ``recall@k``, ``precision@k`` (or ``p@k``;
divided by k), ``hit_rate@k``; ``ndcg``, ``mrr``, ``map`` and ``recall`` also without a
cut-off (the whole ranking).

Conventions (trec_eval's): a run is ranked by score, descending, ties broken by document
id, descending; a judgment >= 1 is relevant. The mean is over the queries of ``qrels``;
a query missing from the run counts as 0.
"""

from __future__ import annotations

from crossrank._core import evaluate

__all__ = ["evaluate"]
