"""crossrank.train.CrossEncoderTrainer: training lowers the loss and separates the classes,
is deterministic for a seed, saves a normal Hugging Face checkpoint that transformers and
sentence-transformers load with the same scores as crossrank, and refuses bad input
without writing anything. (Gradient and update parity with PyTorch, step by step, is
tests/train_parity.rs.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import crossrank
from crossrank.datasets import load_beir
from crossrank.train import CrossEncoderTrainer
from crossrank.training_data import split_queries

from conftest import DATA

TOPICS = ["wing lift", "heat transfer", "shock wave", "boundary layer", "jet noise", "panel flutter"]


def toy_examples():
    """Pairs whose label is whether the document repeats the query's topic: learnable."""
    out = []
    for i, q in enumerate(TOPICS):
        other = TOPICS[(i + 3) % len(TOPICS)]
        out += [(q, f"a study of {q} in a wind tunnel", 1.0), (q, f"measurements of {q} at high speed", 1.0),
                (q, f"a study of {other} in a wind tunnel", 0.0), (q, f"measurements of {other} at high speed", 0.0)]
    return out


@pytest.fixture(scope="module")
def tiny_dir():
    import fixtures

    return fixtures.ensure_tinybert()


def test_loss_falls_and_classes_separate_deterministically(minilm_dir, tmp_path):
    def train(seed):
        tr = CrossEncoderTrainer(minilm_dir, max_length=32, learning_rate=3e-4, batch_size=8, epochs=8,
                                 warmup_ratio=0.1, seed=seed, show_progress_bar=False)
        history = tr.fit(toy_examples())
        return tr, history

    tr, history = train(0)
    assert [h.epoch for h in history] == list(range(1, 9)) and all(h.steps == 3 for h in history)
    assert history[-1].loss < 0.5 * history[0].loss, [h.loss for h in history]
    tr.save(tmp_path / "a")
    ce = crossrank.CrossEncoder(tmp_path / "a", max_length=32, activation_fn="identity")
    logits = ce.predict([(q, d) for q, d, _ in toy_examples()])
    labels = np.array([y for *_, y in toy_examples()])
    assert logits[labels == 1].min() > logits[labels == 0].max(), "training separated the classes"
    again, _ = train(0)
    again.save(tmp_path / "b")
    a, b = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), "same seed, same weights"


def test_saved_checkpoint_is_a_normal_hugging_face_model(minilm_dir, tmp_path):
    """From a bare encoder (no classifier: the trainer creates one), one epoch on real
    Cranfield pairs; transformers, sentence-transformers and crossrank agree on the result."""
    data = load_beir(DATA / "cranfield")
    train, _ = split_queries(data, n_train=6, seed=0)
    tr = CrossEncoderTrainer(minilm_dir, max_length=64, batch_size=8, show_progress_bar=False)
    tr.fit(train, hard_negatives="bm25", negatives_per_query=2)
    out = tmp_path / "ce"
    tr.save(out)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"] and len(config["id2label"]) == 1
    pairs = [(train.queries[q], train.text(d)) for q in list(train.queries)[:3] for d in list(train.qrels[q])[:2]]
    ours = crossrank.CrossEncoder(out, max_length=64, activation_fn="identity").predict(pairs)
    tok = AutoTokenizer.from_pretrained(str(out))
    model = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    with torch.no_grad():
        enc = tok([q for q, _ in pairs], [d for _, d in pairs], truncation=True, max_length=64, padding=True,
                  return_tensors="pt")
        theirs = model(**enc).logits[:, 0].numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    from sentence_transformers import CrossEncoder as STCrossEncoder

    st = STCrossEncoder(str(out), max_length=64, activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(ours, st.predict(pairs), atol=1e-4)
    base = load_file(str(minilm_dir / "model.safetensors"))
    trained = load_file(str(out / "model.safetensors"))
    name = "bert.encoder.layer.0.attention.self.query.weight"
    base_name = next(k for k in base if k.endswith("encoder.layer.0.attention.self.query.weight"))
    assert not np.array_equal(trained[name], base[base_name]), "the encoder was trained too"


def test_listwise_loss_trains(minilm_dir, tiny_dir):
    groups = [(q, f"a study of {q}", [f"a study of {TOPICS[(i + k) % 6]}" for k in (1, 2, 3)])
              for i, q in enumerate(TOPICS)]
    tr = CrossEncoderTrainer(minilm_dir, max_length=32, learning_rate=3e-4, batch_size=3, epochs=6, loss="listwise",
                             show_progress_bar=False)
    history = tr.fit(groups)
    assert history[-1].loss < history[0].loss
    with pytest.raises(ValueError, match="no negatives"):
        CrossEncoderTrainer(tiny_dir, loss="listwise", show_progress_bar=False).fit([("q", "pos", [])])


def test_bad_input_is_refused_and_nothing_is_half_written(tiny_dir, tmp_path):
    tr = CrossEncoderTrainer(tiny_dir, max_length=32, show_progress_bar=False)
    with pytest.raises(ValueError, match="nothing to save"):
        tr.save(tmp_path / "none")
    with pytest.raises(ValueError, match="no positive"):
        tr.fit([("q", "d", 0.0), ("q", "e", 0.0)])
    with pytest.raises(ValueError, match="outside"):
        tr.fit([("q", "d", 1.0), ("q", "e", 2.0)])
    with pytest.raises(ValueError, match="empty document"):
        tr.fit([("q", "", 1.0)])
    with pytest.raises(ValueError, match="loss"):
        CrossEncoderTrainer(tiny_dir, loss="hinge")
    with pytest.raises(ValueError, match="batch_size"):
        CrossEncoderTrainer(tiny_dir, batch_size=0)
    with pytest.raises(FileNotFoundError, match=r"missing\" does not exist"):
        CrossEncoderTrainer(tmp_path / "missing", show_progress_bar=False).fit(toy_examples())
    tr.fit(toy_examples()[:4])
    existing = tmp_path / "exists"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="already exists"):
        tr.save(existing)
    assert [p.name for p in existing.iterdir()] == ["keep.txt"], "nothing written into it"
    tr.save(existing, overwrite=True)
    assert (existing / "model.safetensors").exists() and (existing / "config.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists"], "no temporary directories left"


def test_dropout_is_on_in_training_steps_seeded_and_off_in_logits(tiny_dir):
    """A step's loss is the loss of the dropped-out forward: without dropout it equals the
    loss of ``logits`` (the eval forward) on the same batch; with it, it differs, the same
    seed gives the same masks, and another seed other masks."""
    pairs = [(q, d) for q, d, _ in toy_examples()[:8]]
    labels = np.array([y for *_, y in toy_examples()[:8]], dtype=np.float64)

    def first_step(dropout, seed=0):
        tr = crossrank._core.Trainer(tiny_dir, 8, max_length=32, dropout=dropout, seed=seed)
        x = tr.logits(pairs).astype(np.float64)
        eval_loss = float(np.mean(np.maximum(x, 0) - x * labels + np.log1p(np.exp(-np.abs(x)))))
        return tr, tr.train_step_pairs(pairs, labels.tolist())["loss"], eval_loss

    tr, loss, eval_loss = first_step(None)
    assert tr.dropout == pytest.approx(0.1), "config.json's hidden_dropout_prob by default"
    assert loss != pytest.approx(eval_loss, abs=1e-6)
    assert first_step(None)[1] == loss, "same seed, same masks"
    assert first_step(None, seed=1)[1] != loss
    off, loss, eval_loss = first_step(0.0)
    assert off.dropout == 0.0 and loss == pytest.approx(eval_loss, abs=1e-6)
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="dropout"):
            crossrank._core.Trainer(tiny_dir, 8, dropout=bad)


def test_fit_mines_retrieved_positives_from_a_dataset(tiny_dir):
    from crossrank.training_data import mine_examples

    train, _ = split_queries(load_beir(DATA / "cranfield"), n_train=6, seed=0)
    retrieved = mine_examples(train, negatives_per_query=2, positives="retrieved", seed=0).pairs()
    judged = mine_examples(train, negatives_per_query=2, seed=0).pairs()
    assert len(retrieved) < len(judged), "BM25's top 30 misses some judged documents"
    tr = CrossEncoderTrainer(tiny_dir, max_length=32, batch_size=4, show_progress_bar=False)
    history = tr.fit(train, negatives_per_query=2, positives="retrieved")
    assert history[0].steps == -(-len(retrieved) // 4)
    with pytest.raises(ValueError, match="positives"):
        tr.fit(train, positives="some")


def test_eval_reports_the_first_stage_and_warns_when_the_model_does_not_beat_it(tiny_dir, caplog):
    from crossrank.evaluation import BM25Stage, evaluate
    from crossrank.train import EpochReport, _warn_if_below_first_stage

    train, test = split_queries(load_beir(DATA / "cranfield"), n_train=6, seed=0)
    test = test.subset(sorted(test.queries)[:8])
    # The tiny random-weight model, barely trained, re-ranks BM25's top 20 near randomly.
    tr = CrossEncoderTrainer(tiny_dir, max_length=32, batch_size=8, show_progress_bar=False)
    with caplog.at_level("WARNING", logger="crossrank.train"):
        history = tr.fit(train, eval_dataset=test, negatives_per_query=1, eval_metrics=["ndcg@10"], eval_depth=20)
    bm25 = evaluate([BM25Stage()], test, metrics=["ndcg@10"], depth=20).stages[0].metrics["ndcg@10"]
    report = history[-1]
    assert report.first_stage_metrics == {"ndcg@10": pytest.approx(bm25, abs=1e-12)}
    assert report.metrics["ndcg@10"] < bm25
    assert any("below BM25 alone" in r.getMessage() and f"{bm25:.4f}" in r.getMessage() for r in caplog.records)

    caplog.clear()
    with caplog.at_level("WARNING", logger="crossrank.train"):
        _warn_if_below_first_stage(EpochReport(1, 1, 0.5, 1.0, {"ndcg@10": 0.5}, {"ndcg@10": 0.4}), "ndcg@10", 100)
    assert not caplog.records
