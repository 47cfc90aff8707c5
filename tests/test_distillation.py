"""Distillation (issue 19): a teacher's soft labels on training groups
(`training_data.distillation_groups`) and the KL / margin-MSE losses of
`CrossEncoderTrainer(loss="kl" | "margin_mse")`. The losses' gradients are compared with
PyTorch's in tests/train_parity.rs; here: teacher scores land on the right documents, the
loss the trainer reports is the formula's on its own logits, and bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest

import crossrank
from crossrank._core import Trainer
from crossrank.train import CrossEncoderTrainer
from crossrank.training_data import TrainingExamples, distillation_groups

EXAMPLES = TrainingExamples(
    queries=["what is lift", "heat in slabs"],
    positives=[["lift is a force on a wing", "a wing makes lift"], ["heat conduction in composite slabs"]],
    negatives=[["paris is in france", "heat flows", "boundary layers grow"],
               ["wings and lift", "paris is in france", "the flow over a plate"]],
)


def fake_teacher(calls: list):
    def score(query: str, documents: list[str]) -> list[float]:
        calls.append((query, list(documents)))
        return [len(d) + len(query) / 100 for d in documents]
    return score


def test_teacher_scores_belong_to_their_documents():
    calls: list = []
    groups = distillation_groups(EXAMPLES, fake_teacher(calls), negatives_per_group=2, seed=3)
    assert [(q, p, negs) for q, (p, *negs), _ in groups] == EXAMPLES.groups(2, None, 3)
    for query, documents, scores in groups:
        assert scores == [len(d) + len(query) / 100 for d in documents]
    # Each query's distinct documents are scored once.
    scored = [(q, d) for q, docs in calls for d in docs]
    assert len(scored) == len(set(scored))


def test_model_teachers(minilm_dir):
    bi = crossrank.BiEncoder(str(minilm_dir))
    groups = distillation_groups(EXAMPLES, bi)
    query, documents, scores = groups[0]
    expected = bi.similarity(bi.encode([query]), bi.encode(documents))[0]
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    bm25 = crossrank.BM25(["lift is a force on a wing", "paris is in france", "heat flows"])
    query, documents, scores = distillation_groups(EXAMPLES, bm25.score)[0]
    np.testing.assert_allclose(scores, bm25.score(query, documents), atol=1e-6)


@pytest.mark.parametrize("loss", ["kl", "margin_mse"])
def test_reported_loss_is_the_formula_on_the_models_logits(ce_dir, loss):
    trainer = Trainer(str(ce_dir), num_examples=2, loss=loss, dropout=0.0, max_length=64)
    groups = distillation_groups(EXAMPLES, fake_teacher([]))[:2]
    logits = trainer.logits([(q, d) for q, docs, _ in groups for d in docs]).astype(np.float64)
    expected, start, per_group, margins = 0.0, 0, [], []
    for _, docs, teacher in groups:
        s, t = logits[start:start + len(docs)], np.asarray(teacher, dtype=np.float64)
        if loss == "kl":
            p = np.exp(t - t.max()) / np.exp(t - t.max()).sum()
            log_q = s - s.max() - np.log(np.exp(s - s.max()).sum())
            per_group.append(float(np.sum(p * (np.log(p) - log_q))))
        else:
            margins += list((s[0] - s[1:]) - (t[0] - t[1:]))
        start += len(docs)
    expected = np.mean(per_group) if loss == "kl" else float(np.mean(np.square(margins)))
    stats = trainer.train_step_distill(groups)
    assert stats["loss"] == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_fit_with_a_teacher_runs_and_learns_the_teachers_order(ce_dir, tmp_path):
    # The teacher prefers longer documents; margin-MSE training pulls the model that way.
    groups = distillation_groups(EXAMPLES, fake_teacher([]))
    before = crossrank.CrossEncoder(str(ce_dir), max_length=64)
    trainer = CrossEncoderTrainer(ce_dir, loss="margin_mse", learning_rate=5e-4, epochs=8, batch_size=4,
                                  max_length=64, dropout=0.0, show_progress_bar=False)
    history = trainer.fit(EXAMPLES, teacher=fake_teacher([]))
    assert len(history) == 8 and history[-1].loss < history[0].loss
    trainer.save(tmp_path / "student")
    after = crossrank.CrossEncoder(str(tmp_path / "student"), max_length=64)

    def margin_error(model) -> float:
        errors = []
        for query, docs, teacher in groups:
            s = model.predict([(query, d) for d in docs], activation_fn="identity")
            errors += list((s[0] - s[1:]) - (teacher[0] - np.asarray(teacher[1:])))
        return float(np.mean(np.square(errors)))

    assert margin_error(after) < margin_error(before)


def test_bad_distillation_input(ce_dir):
    trainer = CrossEncoderTrainer(ce_dir, loss="kl", max_length=64, show_progress_bar=False)
    with pytest.raises(ValueError, match="learns from a teacher's scores"):
        trainer.fit(EXAMPLES)
    with pytest.raises(TypeError, match="teacher must be"):
        trainer.fit(EXAMPLES, teacher=42)
    with pytest.raises(ValueError, match="2 documents and 1 teacher scores"):
        trainer.fit([("q", ["a", "b"], [1.0])])
    with pytest.raises(ValueError, match="teacher scores must be finite"):
        trainer.fit([("q", ["a", "b"], [1.0, float("nan")])])
    with pytest.raises(TypeError, match=r"\(query, \[documents\], \[teacher scores\]\)"):
        trainer.fit([("q", "a", "b")])
    with pytest.raises(ValueError, match="teacher"):
        distillation_groups(EXAMPLES, lambda q, docs: [float("inf")] * len(docs))
    with pytest.raises(ValueError, match="loss must be one of"):
        CrossEncoderTrainer(ce_dir, loss="mse")
    core = Trainer(str(ce_dir), num_examples=1, loss="margin_mse", max_length=64)
    with pytest.raises(ValueError, match="2 documents and 3 teacher scores"):
        core.train_step_distill([("q", ["a", "b"], [1.0, 2.0, 3.0])])
    with pytest.raises(ValueError, match="one negative"):
        core.train_step_distill([("q", ["a"], [1.0])])
