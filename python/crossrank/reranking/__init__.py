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
core; this package composes models and Python callables around them:

* :mod:`~crossrank.reranking.base`: :class:`Ranking`, the :class:`Reranker` base class and
  the selective options;
* :mod:`~crossrank.reranking.scoring`: :func:`score_documents`, the one function that
  scores documents with a CrossEncoder, BiEncoder, Reranker or callable, and
  :func:`as_reranker`;
* :mod:`~crossrank.reranking.rules`: the metadata rules :class:`Recency`,
  :class:`SourceTrust`, :class:`FieldMatch`;
* :mod:`~crossrank.reranking.hybrid`: :class:`HybridReranker`;
* :mod:`~crossrank.reranking.multistage`: :class:`MultiStage`;
* :mod:`~crossrank.reranking.pairwise`: :class:`PairwiseReranker`;
* :mod:`~crossrank.reranking.calibration`: :class:`Calibrator`, :func:`suggest_threshold`,
  :func:`expected_calibration_error`.
"""

from __future__ import annotations

# The Rust numerics these modules use stay importable from here (tests and benches do).
from crossrank._core import aggregate_preferences as aggregate_preferences
from crossrank._core import combine_signals as combine_signals
from crossrank._core import fit_weights as fit_weights
from crossrank._core import sort_by_preference as sort_by_preference
from crossrank.reranking.base import Ranking, Reranker
from crossrank.reranking.calibration import Calibrator, expected_calibration_error, suggest_threshold
from crossrank.reranking.hybrid import NORMALIZATIONS as NORMALIZATIONS
from crossrank.reranking.hybrid import HybridReranker
from crossrank.reranking.multistage import MultiStage
from crossrank.reranking.pairwise import Comparator as Comparator
from crossrank.reranking.pairwise import PairwiseReranker
from crossrank.reranking.rules import FieldMatch, Recency, SourceTrust
from crossrank.reranking.scoring import Scorer as Scorer
from crossrank.reranking.scoring import as_reranker
from crossrank.reranking.scoring import score_documents as score_documents

__all__ = [
    "Reranker", "Ranking", "as_reranker", "HybridReranker", "MultiStage", "PairwiseReranker", "Recency",
    "SourceTrust", "FieldMatch",
    "Calibrator", "suggest_threshold", "expected_calibration_error",
]
