"""ElectraForSequenceClassification (ms-marco-electra-base's architecture) and
DistilBertForSequenceClassification cross-encoders: small random checkpoints written by
transformers, scored by crossrank and compared with transformers and sentence-transformers
on Cranfield pairs around and beyond max_length. ELECTRA's embeddings are narrower than its
hidden size, so its projection runs; DistilBERT has no token types and its own weight
names and config keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import crossrank

from parity_inputs import hf_pair_ids, hf_pair_logits

torch.set_num_threads(2)

SIZES = dict(hidden=32, layers=2, heads=4, intermediate=64, positions=256)


def _save(model, minilm_dir, path, token_types: bool) -> None:
    from transformers import AutoTokenizer

    model.save_pretrained(str(path))
    # MiniLM's WordPiece tokenizer; DistilBERT's model takes no token_type_ids.
    names = ["input_ids", "token_type_ids", "attention_mask"] if token_types else ["input_ids", "attention_mask"]
    AutoTokenizer.from_pretrained(str(minilm_dir), model_input_names=names, model_max_length=256).save_pretrained(
        str(path))


@pytest.fixture(scope="module", params=["electra", "distilbert"])
def checkpoint(request, minilm_dir, tmp_path_factory):
    from transformers import (
        DistilBertConfig,
        DistilBertForSequenceClassification,
        ElectraConfig,
        ElectraForSequenceClassification,
    )

    torch.manual_seed(0)
    s = SIZES
    if request.param == "electra":
        config = ElectraConfig(vocab_size=30522, embedding_size=16, hidden_size=s["hidden"],
                               num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
                               intermediate_size=s["intermediate"], max_position_embeddings=s["positions"],
                               num_labels=1)
        model = ElectraForSequenceClassification(config)
    else:
        config = DistilBertConfig(vocab_size=30522, dim=s["hidden"], n_layers=s["layers"], n_heads=s["heads"],
                                  hidden_dim=s["intermediate"], max_position_embeddings=s["positions"],
                                  num_labels=1)
        model = DistilBertForSequenceClassification(config)
    with torch.no_grad():  # random heads separate pairs more than the init's tiny weights do
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.2)
    path = tmp_path_factory.mktemp(request.param) / "model"
    _save(model.eval(), minilm_dir, path, token_types=request.param == "electra")
    return request.param, path, model.eval()


@pytest.mark.parametrize("max_length", [64, 256])
def test_logits_and_token_ids_equal_transformers(checkpoint, cranfield_pairs, max_length):
    from transformers import AutoTokenizer

    name, path, model = checkpoint
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    ce = crossrank.CrossEncoder(str(path), max_length=max_length)
    pairs = cranfield_pairs[:240]
    want_ids = hf_pair_ids(tokenizer, pairs, max_length)
    assert ce.tokenize(pairs) == want_ids
    assert sum(len(ids) == max_length for ids in want_ids) > 20, "pairs must reach max_length"
    theirs = hf_pair_logits(model, tokenizer, pairs, max_length, batch_size=32)[:, 0]
    ours = ce.predict(pairs, activation_fn="identity")
    assert theirs.std() > 0.05, "the random head must separate pairs for the comparison to mean something"
    assert np.abs(ours - theirs).max() <= 1e-4, name


def test_scores_and_rank_equal_sentence_transformers(checkpoint, cranfield, cranfield_pairs):
    from sentence_transformers import CrossEncoder as STCrossEncoder

    name, path, _ = checkpoint
    st = STCrossEncoder(str(path), max_length=128, device="cpu")
    ours = crossrank.CrossEncoder(str(path), max_length=128)
    pairs = cranfield_pairs[:200] + cranfield_pairs[-3:]
    assert ours.activation_fn == "sigmoid"
    assert np.abs(ours.predict(pairs) - st.predict(pairs, batch_size=32)).max() <= 1e-5, name
    queries, corpus = cranfield
    docs = [d["text"] for d in corpus[:50]]
    for query in [q["text"] for q in queries[:3]]:
        assert [r["corpus_id"] for r in ours.rank(query, docs)] == [r["corpus_id"] for r in st.rank(query, docs)]


def test_int8_and_long_documents_run(checkpoint, cranfield_pairs):
    """The options that apply to every BERT-style classifier apply here too."""
    _, path, _ = checkpoint
    exact = crossrank.CrossEncoder(str(path), max_length=64)
    pairs = cranfield_pairs[:40]
    want = exact.predict(pairs, activation_fn="identity")
    int8 = crossrank.CrossEncoder(str(path), max_length=64, precision="int8").predict(pairs, activation_fn="identity")
    assert np.corrcoef(want, int8)[0, 1] > 0.95
    windows = crossrank.CrossEncoder(str(path), max_length=64, long_document="max", stride=16)
    assert np.isfinite(windows.predict(pairs)).all()


def test_unsupported_architecture_lists_the_new_ones(tmp_path, ce_dir):
    import json
    import shutil

    shutil.copytree(ce_dir, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["architectures"] = ["T5ForConditionalGeneration"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="ElectraForSequenceClassification, DistilBertForSequenceClassification"):
        crossrank.CrossEncoder(str(tmp_path / "m"))


def test_distilbert_bi_encoder_equals_sentence_transformers(minilm_dir, tmp_path, cranfield):
    """A DistilBERT sentence-transformers model (msmarco-distilbert-base-tas-b's shape):
    the bi-encoder takes the new encoder families too."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import DistilBertConfig, DistilBertModel

    torch.manual_seed(1)
    s = SIZES
    config = DistilBertConfig(vocab_size=30522, dim=s["hidden"], n_layers=s["layers"], n_heads=s["heads"],
                              hidden_dim=s["intermediate"], max_position_embeddings=s["positions"])
    _save(DistilBertModel(config).eval(), minilm_dir, tmp_path / "encoder", token_types=False)
    transformer = Transformer(str(tmp_path / "encoder"), max_seq_length=128)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(tmp_path / "st"))

    texts = [d["text"] for d in cranfield[1][:60]] + [""]
    want = SentenceTransformer(str(tmp_path / "st"), device="cpu").encode(texts, batch_size=16)
    got = crossrank.BiEncoder(str(tmp_path / "st")).encode(texts)
    assert got.shape == want.shape == (len(texts), s["hidden"])
    assert np.abs(got - want).max() <= 1e-4


def test_a_config_with_a_zero_width_is_refused(checkpoint, tmp_path):
    import json
    import shutil

    name, path, _ = checkpoint
    shutil.copytree(path, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["embedding_size" if name == "electra" else "dim"] = 0
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="must be positive"):
        crossrank.CrossEncoder(str(tmp_path / "m"))
