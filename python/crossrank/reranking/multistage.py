"""Multi-stage cascades: :class:`MultiStage` runs cheap models on many candidates and
expensive ones on the few that survive each cut."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from crossrank import _core
from crossrank.reranking.base import Ranking, Reranker, _check_query_documents, _label, _optional_count
from crossrank.reranking.scoring import as_scorer


class MultiStage(Reranker):
    """A cascade: ``MultiStage([(fast_model, 100), (slow_model, 20)])``.

    Stage i re-scores the first N_i documents of the order the previous stage left (the
    input order for the first stage); the documents below its cut keep that earlier order
    beneath the re-scored ones. Each stage may be a CrossEncoder, BiEncoder, any Reranker
    (HybridReranker, another MultiStage) or a callable ``f(query, documents) -> scores``.
    An N larger than the number of candidates re-scores them all. ``rerank`` returns a
    :class:`Ranking` whose ``timings`` give seconds per stage; each result's ``"stage"`` is
    the index of the last stage that scored it and ``"score"`` that stage's score.

    The cascade runs in the Rust core with the GIL released; crossrank's models score there
    too, and a Python stage is called back under the GIL.
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
            self.stages.append((model, int(n)))
        self._cascade = _core.MultiStage([(as_scorer(m, batch_size), n, _label(m)) for m, n in self.stages],
                                         batch_size)

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """Scores that reproduce the cascade's order (higher = earlier): ``n - position``."""
        order, _, _ = self._cascade.cascade(query, list(documents))
        out = np.zeros(len(order))
        for position, i in enumerate(order):
            out[i] = len(order) - position
        return out

    def rerank(self, query: str, documents: Sequence[str], top_k: int | None = None,
               return_documents: bool = False) -> Ranking:
        documents = _check_query_documents(query, documents)
        top_k = _optional_count(top_k, "top_k")
        n_head = len(documents) if self.rerank_top_n is None else min(self.rerank_top_n, len(documents))
        order, scored, timings = self._cascade.cascade(query, documents[:n_head])
        # Scored by at least one stage, in the cascade's order; then the rest in input order.
        head = [{"corpus_id": i, "score": scored[i][0], "stage": scored[i][1]} for i in order if scored[i]]
        tail = [i for i in order if not scored[i]] + list(range(n_head, len(documents)))
        return self._finish(head, tail, documents, top_k, return_documents, timings, stage=None)

    def __repr__(self) -> str:
        return f"MultiStage([{', '.join(f'({_label(m)}, {n})' for m, n in self.stages)}])"
