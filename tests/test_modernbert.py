"""ModernBertForSequenceClassification cross-encoders (gte-reranker-modernbert-base's
architecture) and ModernBERT bi-encoders: small random checkpoints written by transformers,
with global and sliding-window layers and a window much shorter than the inputs, scored by
crossrank and compared with transformers and sentence-transformers on Cranfield pairs
around and beyond max_length."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import crossrank

from parity_inputs import hf_pair_ids, hf_pair_logits

torch.set_num_threads(2)

# 4 layers: global, sliding, sliding, global; a token sees 8 positions either side.
SIZES = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=4, num_attention_heads=4,
             local_attention=16, max_position_embeddings=256)


def _tokenizer(minilm_dir):
    from transformers import AutoTokenizer

    # MiniLM's WordPiece vocabulary; ModernBERT's model takes no token_type_ids.
    return AutoTokenizer.from_pretrained(str(minilm_dir), model_input_names=["input_ids", "attention_mask"],
                                         model_max_length=256)


def _randomize(model):
    with torch.no_grad():  # larger than the init's weights, so pairs get different scores
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.15)
            elif "norm" in name:
                p.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module", params=["cls", "mean"])
def checkpoint(request, minilm_dir, tmp_path_factory):
    from transformers import ModernBertConfig, ModernBertForSequenceClassification

    torch.manual_seed(0)
    tokenizer = _tokenizer(minilm_dir)
    config = ModernBertConfig(vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id,
                              cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id,
                              bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                              classifier_pooling=request.param, num_labels=1, **SIZES)
    model = _randomize(ModernBertForSequenceClassification(config))
    path = tmp_path_factory.mktemp(f"modernbert-{request.param}") / "model"
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path, model


@pytest.mark.parametrize("max_length", [48, 200])
def test_logits_equal_transformers(checkpoint, minilm_dir, cranfield_pairs, max_length):
    path, model = checkpoint
    tokenizer = _tokenizer(minilm_dir)
    pairs = cranfield_pairs[:200] + cranfield_pairs[-3:]
    lengths = [len(ids) for ids in hf_pair_ids(tokenizer, pairs, max_length)]
    assert max(lengths) == max_length > 2 * SIZES["local_attention"], "the window must be shorter than inputs"
    ours = crossrank.CrossEncoder(str(path), max_length=max_length).predict(pairs, activation_fn="identity")
    theirs = hf_pair_logits(model, tokenizer, pairs, max_length, batch_size=32)[:, 0]
    assert theirs.std() > 0.05, "the random head must separate pairs for the comparison to mean something"
    assert np.abs(ours - theirs).max() <= 1e-4


def test_scores_and_rank_equal_sentence_transformers(checkpoint, cranfield, cranfield_pairs):
    from sentence_transformers import CrossEncoder as STCrossEncoder

    path, _ = checkpoint
    st = STCrossEncoder(str(path), max_length=128, device="cpu")
    ours = crossrank.CrossEncoder(str(path), max_length=128)
    pairs = cranfield_pairs[:200]
    assert np.abs(ours.predict(pairs) - st.predict(pairs, batch_size=32)).max() <= 1e-5
    queries, corpus = cranfield
    docs = [d["text"] for d in corpus[:40]]
    for query in [q["text"] for q in queries[:3]]:
        assert [r["corpus_id"] for r in ours.rank(query, docs)] == [r["corpus_id"] for r in st.rank(query, docs)]


def test_bi_encoder_equals_sentence_transformers(minilm_dir, tmp_path, cranfield):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import ModernBertConfig, ModernBertModel

    torch.manual_seed(1)
    tokenizer = _tokenizer(minilm_dir)
    config = ModernBertConfig(vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id, **SIZES)
    _randomize(ModernBertModel(config)).save_pretrained(str(tmp_path / "encoder"))
    tokenizer.save_pretrained(str(tmp_path / "encoder"))
    transformer = Transformer(str(tmp_path / "encoder"), max_seq_length=128)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(tmp_path / "st"))
    texts = [d["text"] for d in cranfield[1][:40]]
    want = SentenceTransformer(str(tmp_path / "st"), device="cpu").encode(texts, batch_size=16)
    got = crossrank.BiEncoder(str(tmp_path / "st")).encode(texts)
    assert np.abs(got - want).max() <= 1e-4


def test_bad_configs_are_named(checkpoint, tmp_path):
    path, _ = checkpoint
    shutil.copytree(path, tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "local_attention": 1024}))
    with pytest.raises(ValueError, match="local_attention 1024 is larger than the position table"):
        crossrank.CrossEncoder(str(tmp_path / "m"))
    config_path.write_text(json.dumps({**config, "layer_types": ["full_attention"]}))
    with pytest.raises(ValueError, match="layer_types lists 1 layers for num_hidden_layers 4"):
        crossrank.CrossEncoder(str(tmp_path / "m"))


def test_int8_ranks_like_float32(checkpoint, cranfield, cranfield_pairs):
    """precision="int8" quantizes ModernBERT's linear layers as BERT's: scores close to
    float32's and, per query, ranked alike (Spearman; RESULTS.md reports the base-sized
    model's)."""
    from scipy.stats import spearmanr

    path, _ = checkpoint
    queries, corpus = cranfield
    f32 = crossrank.CrossEncoder(str(path), max_length=128)
    int8 = crossrank.CrossEncoder(str(path), max_length=128, precision="int8")
    rhos = []
    for q in queries[:8]:
        pairs = [(q["text"], d["text"]) for d in corpus[:40]]
        want, got = f32.predict(pairs, activation_fn="identity"), int8.predict(pairs, activation_fn="identity")
        assert not np.array_equal(want, got), "int8 must actually run"
        rhos.append(spearmanr(want, got).statistic)
    assert min(rhos) >= 0.9, rhos


def test_the_original_config_spelling_loads_the_same_model(checkpoint, tmp_path, cranfield_pairs):
    """Checkpoints saved before transformers 5 (gte-reranker-modernbert-base) spell the
    layer pattern and the rotary bases differently."""
    path, _ = checkpoint
    shutil.copytree(path, tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    old = {k: v for k, v in config.items() if k not in ("layer_types", "rope_parameters")}
    old.update(global_attn_every_n_layers=3, global_rope_theta=160000.0, local_rope_theta=10000.0)
    config_path.write_text(json.dumps(old))
    pairs = cranfield_pairs[:20]
    want = crossrank.CrossEncoder(str(path), max_length=96).predict(pairs)
    got = crossrank.CrossEncoder(str(tmp_path / "m"), max_length=96).predict(pairs)
    assert np.array_equal(got, want)
