"""Fine-tune a cross-encoder on domain data, in crossrank's Rust core (candle autograd; no
PyTorch needed). The result is a standard Hugging Face ``BertForSequenceClassification``
checkpoint that loads in transformers / sentence-transformers and in crossrank.

>>> from crossrank.datasets import load_beir
>>> from crossrank.training_data import split_queries
>>> from crossrank.train import CrossEncoderTrainer
>>> train, test = split_queries(load_beir("data/cranfield"), n_train=150, seed=0)
>>> tr = CrossEncoderTrainer(base="sentence-transformers/all-MiniLM-L6-v2", max_length=256)
>>> history = tr.fit(train, eval_dataset=test, hard_negatives="bm25", negatives_per_query=4)
>>> tr.save("cranfield-cross-encoder")

Training follows sentence-transformers' ``CrossEncoder.fit`` / transformers' Trainer:
AdamW (weight decay on all but biases and LayerNorm weights), linear warmup then linear
decay, gradient clipping at ``max_grad_norm``, examples shuffled per epoch with ``seed``.
Dropout as the base's config says (0.1 for BERT) on the hidden states. Deterministic
for a seed: the new head, the shuffling and the dropout masks all come from it.
"""

from __future__ import annotations

import logging
import math
import random
import tempfile
import time
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from crossrank._core import BiEncoder, CrossEncoder
from crossrank._core import Trainer as _Trainer
from crossrank.datasets import Dataset
from crossrank.training_data import TrainingExamples, check_pairs, distillation_groups, mine_examples

__all__ = ["CrossEncoderTrainer", "EpochReport"]

logger = logging.getLogger("crossrank.train")


@dataclass
class EpochReport:
    """What one epoch did: mean training loss, steps, seconds, and (with an eval dataset)
    the harness's metrics of BM25 -> this cross-encoder on it, beside BM25's own
    (``first_stage_metrics``: the order the cross-encoder has to improve on)."""

    epoch: int
    steps: int
    loss: float
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    first_stage_metrics: dict[str, float] = field(default_factory=dict)


LOSSES = ("bce", "listwise", "kl", "margin_mse")
DISTILLATION = ("kl", "margin_mse")


class CrossEncoderTrainer:
    """Fine-tunes a BERT cross-encoder (or a bare BERT encoder, which gets a new seeded
    classification head) with binary cross-entropy on labelled pairs (``loss="bce"``), a
    listwise softmax over a positive and its negatives (``loss="listwise"``), or by
    distillation from a teacher's scores: the KL divergence between the softmax of the
    teacher's and the model's scores over a group (``loss="kl"``) or the squared error
    between their margins, first document minus each other (``loss="margin_mse"``).

    Args:
        base: a local directory or hub id of a ``BertForSequenceClassification`` or a BERT
            encoder (e.g. ``sentence-transformers/all-MiniLM-L6-v2``).
        num_labels: output labels (1 for a relevance score).
        max_length: tokens per (query, document) input.
        learning_rate, batch_size, epochs, warmup_ratio, weight_decay, max_grad_norm:
            as transformers' ``TrainingArguments``.
        seed: seeds the new head, the shuffling and the negative mining.
        loss: ``"bce"``, ``"listwise"``, ``"kl"`` or ``"margin_mse"``.
        dropout: on the hidden states during training, as transformers' BERT in ``train()``
            mode (not on the attention probabilities); ``None`` takes the base's
            ``hidden_dropout_prob`` (0.1), ``0.0`` trains without.
        show_progress_bar: a tqdm bar per epoch with the running loss (default: on when
            the output is a terminal).
    """

    def __init__(self, base: str | PathLike[str], num_labels: int = 1, max_length: int = 256,
                 learning_rate: float = 2e-5, batch_size: int = 16, epochs: int = 1, warmup_ratio: float = 0.1,
                 weight_decay: float = 0.01, max_grad_norm: float | None = 1.0, seed: int = 0,
                 loss: Literal["bce", "listwise", "kl", "margin_mse"] = "bce", dropout: float | None = None,
                 show_progress_bar: bool | None = None, local_files_only: bool = False) -> None:
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        for name, value in (("num_labels", num_labels), ("max_length", max_length), ("batch_size", batch_size),
                            ("epochs", epochs)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.base = str(base)
        self.options = dict(num_labels=num_labels, max_length=max_length, learning_rate=learning_rate,
                            batch_size=batch_size, epochs=epochs, warmup_ratio=warmup_ratio,
                            weight_decay=weight_decay, max_grad_norm=max_grad_norm, seed=seed, loss=loss,
                            dropout=dropout, local_files_only=local_files_only)
        self.seed, self.loss, self.show_progress_bar = seed, loss, show_progress_bar
        self.trainer: _Trainer | None = None
        self.history: list[EpochReport] = []

    def fit(self, train_examples: Dataset | TrainingExamples | Sequence[tuple], eval_dataset: Dataset | None = None,
            hard_negatives: Literal["bm25", "dense"] | None = "bm25", negatives_per_query: int = 4,
            bi_encoder: BiEncoder | None = None, eval_metrics: Sequence[str] = ("ndcg@10", "mrr@10", "map@100"),
            eval_depth: int = 100, positives: Literal["judged", "retrieved"] = "judged",
            teacher: Any = None) -> list[EpochReport]:
        """Train on ``train_examples``: a :class:`~crossrank.datasets.Dataset` (positives from
        its qrels, ``negatives_per_query`` hard negatives mined with ``hard_negatives``), a
        :class:`~crossrank.training_data.TrainingExamples`, a list of ``(query, document,
        label)`` triples (``loss="bce"``) or of ``(query, positive, [negatives])`` groups
        (``loss="listwise"``) or of ``(query, [documents], [teacher scores])`` groups
        (``loss="kl"`` / ``"margin_mse"``; from a Dataset or TrainingExamples, ``teacher``
        scores the groups: see :func:`~crossrank.training_data.distillation_groups`).
        ``positives`` is :func:`~crossrank.training_data.mine_examples`'
        (``"retrieved"`` trained far better on the small collections here: benches/TRAINING.md).
        After each epoch, with ``eval_dataset``, re-ranks its BM25 top ``eval_depth`` with the
        model and records ``eval_metrics``, and BM25's own; when the trained model ends
        below BM25 on the first of them, a warning (logger ``crossrank.train``) says so.
        Returns the epoch reports (also in ``self.history``)."""
        examples = self._examples(train_examples, hard_negatives, negatives_per_query, bi_encoder, positives,
                                  teacher)
        self.trainer = _Trainer(self.base, len(examples), **self.options)
        batch_size, rng = self.options["batch_size"], random.Random(self.seed)
        self.history = []
        for epoch in range(self.options["epochs"]):
            order = list(range(len(examples)))
            rng.shuffle(order)
            start, losses = time.perf_counter(), []
            bar = _progress(self.show_progress_bar, math.ceil(len(order) / batch_size), f"Epoch {epoch + 1}")
            for at in range(0, len(order), batch_size):
                batch = [examples[i] for i in order[at: at + batch_size]]
                if self.loss == "bce":
                    stats = self.trainer.train_step_pairs([(q, d) for q, d, _ in batch], [y for *_, y in batch])
                elif self.loss in DISTILLATION:
                    stats = self.trainer.train_step_distill(batch)
                else:
                    stats = self.trainer.train_step_groups([(q, [p, *negs]) for q, p, negs in batch])
                losses.append(stats["loss"])
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}")
            if bar is not None:
                bar.close()
            report = EpochReport(epoch + 1, len(losses), sum(losses) / len(losses), time.perf_counter() - start)
            if eval_dataset is not None:
                report.first_stage_metrics, report.metrics = self._evaluate(eval_dataset, eval_metrics, eval_depth)
            self.history.append(report)
        if eval_dataset is not None and self.history and eval_metrics:
            _warn_if_below_first_stage(self.history[-1], eval_metrics[0], eval_depth)
        return self.history

    def evaluate(self, dataset: Dataset, metrics: Sequence[str] = ("ndcg@10",), depth: int = 100) -> dict[str, float]:
        """BM25 top ``depth`` re-ranked by the model as it is now, measured on ``dataset``."""
        return self._evaluate(dataset, metrics, depth)[1]

    def _evaluate(self, dataset: Dataset, metrics: Sequence[str],
                  depth: int) -> tuple[dict[str, float], dict[str, float]]:
        """(BM25's metrics, BM25 -> the model's metrics) on ``dataset``."""
        from crossrank.evaluation import BM25Stage, RerankStage, evaluate

        with tempfile.TemporaryDirectory() as tmp:
            self.save(Path(tmp) / "model")
            model = CrossEncoder(Path(tmp) / "model", max_length=self.options["max_length"])
        result = evaluate([BM25Stage(), RerankStage(model, name="cross-encoder", input="bm25")], dataset,
                          metrics=list(metrics), depth=depth)
        return dict(result.stages[0].metrics), dict(result.stages[-1].metrics)

    def save(self, path: str | PathLike[str], overwrite: bool = False) -> None:
        """A Hugging Face checkpoint directory (model.safetensors, config.json, tokenizer
        files). Refuses an existing directory unless ``overwrite``; never half-written."""
        if self.trainer is None:
            raise ValueError("nothing to save: call fit() first")
        self.trainer.save(Path(path), overwrite)

    def _examples(self, data: Any, hard_negatives: Any, negatives_per_query: int,
                  bi_encoder: BiEncoder | None, positives: str, teacher: Any) -> list[tuple]:
        distill = self.loss in DISTILLATION
        if distill and teacher is None and isinstance(data, (Dataset, TrainingExamples)):
            raise ValueError(f'loss="{self.loss}" learns from a teacher\'s scores: give teacher=... (a BiEncoder, '
                             "CrossEncoder, Reranker or callable) or (query, [documents], [scores]) groups")
        if isinstance(data, Dataset):
            data = mine_examples(data, hard_negatives=hard_negatives, negatives_per_query=negatives_per_query,
                                 bi_encoder=bi_encoder, seed=self.seed, positives=positives)
        if isinstance(data, TrainingExamples) and distill:
            data = distillation_groups(data, teacher, seed=self.seed)
        elif isinstance(data, TrainingExamples):
            data = data.pairs() if self.loss == "bce" else data.groups()
        data = list(data)
        if self.loss == "bce":
            return check_pairs(data)
        if distill:
            return _check_distillation_groups(data)
        for i, group in enumerate(data):
            if not (isinstance(group, (tuple, list)) and len(group) == 3 and isinstance(group[2], (list, tuple))):
                raise TypeError(f"example {i} must be a (query, positive, [negatives]) group for the listwise loss")
            if not group[2]:
                raise ValueError(f"example {i} has no negatives: the listwise loss needs at least one")
            check_pairs([(group[0], group[1], 1.0)] + [(group[0], n, 0.0) for n in group[2]])
        if not data:
            raise ValueError("no training examples")
        return data


def _warn_if_below_first_stage(report: EpochReport, metric: str, depth: int) -> None:
    trained, first = report.metrics.get(metric), report.first_stage_metrics.get(metric)
    if trained is not None and first is not None and trained < first:
        logger.warning(
            "the trained cross-encoder re-ranking BM25's top %d scores %s %.4f on the eval queries, below BM25 "
            "alone (%.4f): it does not help there yet. On small collections, loss=\"listwise\" with "
            "positives=\"retrieved\", a higher learning_rate (2e-4 for MiniLM) or more data (pseudo-queries, "
            "distillation: crossrank.training_data) trained better; see benches/TRAINING.md",
            depth, metric, trained, first)


def _check_distillation_groups(data: list) -> list:
    for i, group in enumerate(data):
        if not (isinstance(group, (tuple, list)) and len(group) == 3 and isinstance(group[1], (list, tuple))
                and isinstance(group[2], (list, tuple, np.ndarray))):
            raise TypeError(f"example {i} must be a (query, [documents], [teacher scores]) group for distillation")
        query, documents, scores = group
        if len(documents) < 2 or len(documents) != len(scores):
            raise ValueError(f"example {i} has {len(documents)} documents and {len(scores)} teacher scores: "
                             "distillation needs two documents or more, one score each")
        if not all(isinstance(v, (int, float, np.floating)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in scores):
            raise ValueError(f"example {i}: teacher scores must be finite numbers, got {list(scores)!r}")
        check_pairs([(query, d, 1.0) for d in documents])
    if not data:
        raise ValueError("no training examples")
    return [(q, list(docs), [float(v) for v in scores]) for q, docs, scores in data]


def _progress(show: bool | None, total: int, desc: str):
    import sys

    if show is None:
        show = sys.stderr.isatty()
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step")
