"""Training examples for a cross-encoder from relevance judgments: the judged-relevant
documents of each query as positives, and hard negatives mined from a first stage (the
documents BM25 or a bi-encoder ranks high that are not judged relevant), as
sentence-transformers' ``mine_hard_negatives`` does.

>>> from crossrank.datasets import load_beir
>>> from crossrank.training_data import split_queries, mine_examples
>>> train, test = split_queries(load_beir("data/cranfield"), n_train=150, seed=0)
>>> examples = mine_examples(train, hard_negatives="bm25", negatives_per_query=4)
>>> examples.pairs()[:2]      # [(query, document, 1.0), (query, document, 0.0), ...]
>>> examples.groups()[:1]     # [(query, positive, [negative, ...]), ...] for a listwise loss

Without judgments, :func:`pseudo_queries` makes examples from the corpus itself (titles and
inverse-cloze sentences as queries; :mod:`crossrank.pseudo_queries`). For distillation
(``CrossEncoderTrainer(loss="kl" | "margin_mse")``), :func:`distillation_groups` adds a
teacher's soft labels to each group.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from crossrank._core import BM25, BiEncoder
from crossrank.datasets import Dataset
from crossrank.pseudo_queries import pseudo_queries

__all__ = ["TrainingExamples", "split_queries", "mine_examples", "pseudo_queries", "distillation_groups",
           "check_pairs"]


@dataclass
class TrainingExamples:
    """Per query: its text, positive documents and negative documents (texts)."""

    queries: list[str] = field(default_factory=list)
    positives: list[list[str]] = field(default_factory=list)
    negatives: list[list[str]] = field(default_factory=list)
    skipped_queries: int = 0
    """Queries with no judged-relevant document in the corpus (nothing to learn from)."""

    def pairs(self) -> list[tuple[str, str, float]]:
        """Pointwise examples: ``(query, document, 1.0)`` per positive and ``(query,
        document, 0.0)`` per negative, query by query."""
        out = []
        for q, pos, neg in zip(self.queries, self.positives, self.negatives):
            out += [(q, d, 1.0) for d in pos] + [(q, d, 0.0) for d in neg]
        return out

    def groups(self, negatives_per_group: int | None = None, max_positives: int | None = None,
               seed: int = 0) -> list[tuple[str, str, list[str]]]:
        """Listwise examples: ``(query, positive, negatives)`` per positive (a softmax over
        ``[positive] + negatives`` should put the positive first). By default every group of
        a query has all its negatives; ``negatives_per_group`` draws that many of them
        afresh for each positive (seeded), so a query's groups do not all repeat the same
        negatives, which a model memorises. ``max_positives`` keeps at most that many
        positives per query (seeded draw), so queries with hundreds of judged documents
        do not dominate."""
        for name, value in (("negatives_per_group", negatives_per_group), ("max_positives", max_positives)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        rng = random.Random(seed)
        out = []
        for q, pos, neg in zip(self.queries, self.positives, self.negatives):
            if not neg:
                continue
            if max_positives is not None and len(pos) > max_positives:
                pos = rng.sample(pos, max_positives)
            for p in pos:
                chosen = (list(neg) if negatives_per_group is None or negatives_per_group >= len(neg)
                          else rng.sample(neg, negatives_per_group))
                out.append((q, p, chosen))
        return out

    def __len__(self) -> int:
        return len(self.queries)

    def __repr__(self) -> str:
        return (f"TrainingExamples({len(self.queries)} queries, {sum(map(len, self.positives))} positives, "
                f"{sum(map(len, self.negatives))} negatives, {self.skipped_queries} queries skipped)")


def split_queries(data: Dataset, n_train: int | None = None, train_fraction: float = 2 / 3,
                  seed: int = 0) -> tuple[Dataset, Dataset]:
    """A seeded random split of the judged queries into (train, test) datasets over the same
    corpus: ``n_train`` queries for training (default: ``train_fraction`` of them), the rest
    for testing. The same seed gives the same split on every machine."""
    qids = sorted(data.queries)
    random.Random(seed).shuffle(qids)
    cut = int(len(qids) * train_fraction) if n_train is None else n_train
    if not 0 < cut < len(qids):
        raise ValueError(f"n_train must leave at least one query on each side of the split, got {cut} of {len(qids)}")
    return data.subset(qids[:cut]), data.subset(qids[cut:])


def mine_examples(data: Dataset, hard_negatives: Literal["bm25", "dense"] | None = "bm25",
                  negatives_per_query: int = 4, depth: int = 30, bi_encoder: BiEncoder | None = None,
                  min_relevance: int = 1, seed: int = 0,
                  positives: Literal["judged", "retrieved"] = "judged") -> TrainingExamples:
    """Positives = documents judged ``>= min_relevance``; negatives = ``negatives_per_query``
    documents drawn (seeded) from the first stage's top ``depth`` that are not judged
    relevant (hard negatives), or from the whole corpus when ``hard_negatives=None``
    (random negatives). ``"dense"`` needs ``bi_encoder``. Documents with empty text are
    left out (some collections have them; they teach nothing). Queries without a positive
    are skipped and counted in ``skipped_queries``; none left raises ``ValueError``.

    ``positives="retrieved"`` keeps only the judged documents that the first stage also
    returns in its top ``depth``: positives and negatives then come from the candidate
    lists the model will re-rank. With ``"judged"``, the positives the first stage misses
    share fewer words with the query than the mined negatives do, and a model can learn
    "less overlap, more relevant", which is wrong inside a first stage's top-k."""
    if hard_negatives not in ("bm25", "dense", None):
        raise ValueError(f'hard_negatives must be "bm25", "dense" or None, got {hard_negatives!r}')
    if positives not in ("judged", "retrieved"):
        raise ValueError(f'positives must be "judged" or "retrieved", got {positives!r}')
    if positives == "retrieved" and hard_negatives is None:
        raise ValueError('positives="retrieved" needs a first stage: hard_negatives="bm25" or "dense"')
    if isinstance(negatives_per_query, bool) or not isinstance(negatives_per_query, int) or negatives_per_query < 0:
        raise ValueError(f"negatives_per_query must be a non-negative integer, got {negatives_per_query!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth <= 0:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    if hard_negatives == "dense" and not isinstance(bi_encoder, BiEncoder):
        raise ValueError('hard_negatives="dense" needs bi_encoder=crossrank.BiEncoder(...)')
    rng = random.Random(seed)
    qids = sorted(data.queries)
    candidates = _first_stage(data, qids, hard_negatives, depth, bi_encoder)
    examples = TrainingExamples()
    for qid in qids:
        judged = data.qrels.get(qid, {})
        relevant = [d for d, rel in sorted(judged.items())
                    if rel >= min_relevance and data._text_of.get(d, "").strip()]
        if positives == "retrieved":
            retrieved = set(candidates[qid])
            relevant = [d for d in relevant if d in retrieved]
        if not relevant:
            examples.skipped_queries += 1
            continue
        pool = [d for d in (candidates[qid] if candidates else data.doc_ids)
                if judged.get(d, 0) < min_relevance and data._text_of[d].strip()]
        chosen = rng.sample(pool, min(negatives_per_query, len(pool)))
        examples.queries.append(data.queries[qid])
        examples.positives.append([data.text(d) for d in relevant])
        examples.negatives.append([data.text(d) for d in chosen])
    if not examples.queries:
        raise ValueError(f"no query of {data.name!r} has a document judged >= {min_relevance}: "
                         "no positives to train on")
    return examples


def distillation_groups(examples: TrainingExamples, teacher: Any, negatives_per_group: int | None = None,
                        max_positives: int | None = None, seed: int = 0,
                        batch_size: int = 32) -> list[tuple[str, list[str], list[float]]]:
    """``(query, [positive, negatives...], [teacher scores])`` per group of
    :meth:`TrainingExamples.groups` (same arguments, same draw), the soft labels a
    distillation loss learns from. ``teacher``: a :class:`~crossrank.BiEncoder` (cosine), a
    :class:`~crossrank.CrossEncoder`, a :class:`~crossrank.reranking.Reranker` (e.g. a
    fitted ``HybridReranker`` for a fused score) or any callable ``f(query, documents) ->
    scores`` such as a ``BM25`` index's ``score``. Scores are checked (one finite number per
    document); each query's documents are scored once."""
    from crossrank.reranking.scoring import is_scorer, score_documents

    if not is_scorer(teacher):
        raise TypeError(f"teacher must be a BiEncoder, CrossEncoder, Reranker or callable f(query, documents), "
                        f"got {type(teacher).__name__}")
    groups = examples.groups(negatives_per_group, max_positives, seed)
    scored: dict[str, dict[str, float]] = {}
    for query, positive, negatives in groups:
        known = scored.setdefault(query, {})
        todo = list(dict.fromkeys(d for d in [positive, *negatives] if d not in known))
        if todo:
            known.update(zip(todo, map(float, score_documents(teacher, query, todo, batch_size, "teacher"))))
    return [(q, [p, *negs], [scored[q][d] for d in [p, *negs]]) for q, p, negs in groups]


def _first_stage(data: Dataset, qids: list[str], method: str | None, depth: int,
                 bi_encoder: BiEncoder | None) -> dict[str, list[str]] | None:
    if method is None:
        return None
    texts = [data.queries[q] for q in qids]
    if method == "bm25":
        hits = BM25(data.doc_texts, ids=data.doc_ids).search_batch(texts, top_k=depth)
    else:
        from crossrank.retrieval import DenseRetriever

        hits = DenseRetriever(bi_encoder, data.doc_texts, ids=data.doc_ids).search_batch(texts, top_k=depth)
    return {q: list(ids) for q, (ids, _) in zip(qids, hits)}


def check_pairs(examples: Sequence[tuple[str, str, float]]) -> list[tuple[str, str, float]]:
    """Validated ``(query, document, label)`` examples for binary cross-entropy: texts are
    non-empty strings, labels are numbers in [0, 1], and at least one label is positive."""
    out = []
    for i, example in enumerate(examples):
        if not (isinstance(example, (tuple, list)) and len(example) == 3):
            raise TypeError(f"example {i} must be a (query, document, label) triple, got {example!r}")
        query, document, label = example
        for name, text in (("query", query), ("document", document)):
            if not isinstance(text, str):
                raise TypeError(f"example {i}: {name} must be a str, got {type(text).__name__}")
            if not text.strip():
                raise ValueError(f"example {i}: empty {name}")
        if isinstance(label, bool) or not isinstance(label, (int, float)) or not 0.0 <= label <= 1.0:
            raise ValueError(f"example {i}: label {label!r} is outside [0, 1] (binary cross-entropy needs "
                             "probabilities)")
        out.append((query, document, float(label)))
    if not out:
        raise ValueError("no training examples")
    if not any(label > 0 for _, _, label in out):
        raise ValueError("no positive examples (every label is 0): nothing to learn relevance from")
    return out
