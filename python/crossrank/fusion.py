"""Fusing ranked lists: reciprocal rank fusion and weighted sums of normalized scores.

>>> from crossrank.fusion import reciprocal_rank_fusion, weighted_sum_fusion
>>> reciprocal_rank_fusion([{"a": 12.1, "b": 7.0}, {"b": 0.9, "c": 0.4}], k=60)
{'b': 0.0325..., 'a': 0.0163..., 'c': 0.0161...}

A run is a ``{id: score}`` dict (ranked by score, descending; equal scores by id) or an
``(ids, scores)`` pair as ``search`` returns (taken in its order). A document missing from
a run contributes nothing from that run. Results are ``{id: fused score}`` dicts, best
first (equal scores by id). ``weights``: one finite, non-negative number per run, not all
zero (default: all 1). In ``weighted_sum_fusion`` each run's scores are min-max normalized
to [0, 1] (a run whose scores are all equal normalizes to 1).
"""

from __future__ import annotations

from crossrank._core import reciprocal_rank_fusion, weighted_sum_fusion
from crossrank.retrieval import fuse

__all__ = ["fuse", "reciprocal_rank_fusion", "weighted_sum_fusion"]
