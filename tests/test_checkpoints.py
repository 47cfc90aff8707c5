"""Checkpoint formats and architectures, on tiny random models saved by transformers:
XLM-RoBERTa, BERT with a vocab.txt tokenizer, unprefixed weights, sharded safetensors,
pytorch_model.bin, and the hub cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import crossrank

from parity_inputs import hf_pair_logits

torch.set_num_threads(2)

PAIRS = [
    ("what is the boundary layer", "the boundary layer in simple shear flow past a flat plate ."),
    ("heat conduction", "heat conduction in composite slabs has been solved for several cases ."),
    ("short", "a much longer document " * 40),
    ("", "empty query"),
    ("empty document", ""),
]


def _words(cranfield_texts):
    vocab = {}
    for text in cranfield_texts:
        for w in text.split():
            vocab[w] = vocab.get(w, 0) + 1
    return [w for w, _ in sorted(vocab.items(), key=lambda kv: -kv[1])][:400]


@pytest.fixture(scope="module")
def xlmr_dir(tmp_path_factory, cranfield):
    """A tiny random XLMRobertaForSequenceClassification with a Unigram tokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaForSequenceClassification

    out = tmp_path_factory.mktemp("xlmr")
    _, corpus = cranfield
    words = _words(d["text"] for d in corpus[:300])
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab = [(t, 0.0) for t in specials] + [("▁" + w, -float(i + 1)) for i, w in enumerate(words)]
    vocab += [(c, -1000.0) for c in "abcdefghijklmnopqrstuvwxyz0123456789.,-()"]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        pad_token="<pad>", unk_token="<unk>", model_max_length=64,
    )
    fast.model_input_names = ["input_ids", "attention_mask"]
    fast.save_pretrained(out)
    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=66, type_vocab_size=1, pad_token_id=1,
        bos_token_id=0, eos_token_id=2, num_labels=1, initializer_range=0.3,
    )
    model = XLMRobertaForSequenceClassification(config).eval()
    model.save_pretrained(out)
    return out, model, fast


def test_xlm_roberta_parity(xlmr_dir):
    path, model, tokenizer = xlmr_dir
    ce = crossrank.CrossEncoder(str(path))
    assert ce.max_length == 64  # tokenizer_config model_max_length, within 66 - 2 positions
    ids = tokenizer([q for q, _ in PAIRS], [d for _, d in PAIRS], truncation="longest_first",
                    max_length=64)["input_ids"]
    assert ce.tokenize(PAIRS) == ids
    assert any(len(i) == 64 for i in ids)
    ours = ce.predict(PAIRS, activation_fn="identity")
    theirs = hf_pair_logits(model, tokenizer, PAIRS, 64, batch_size=len(PAIRS),
                            inputs=("input_ids", "attention_mask"))[:, 0]
    assert np.abs(theirs).max() > 0.05
    assert np.abs(ours - theirs).max() <= 1e-4
    with pytest.raises(ValueError, match="position table"):
        crossrank.CrossEncoder(str(path), max_length=65)


def test_sharded_and_pytorch_bin_and_unprefixed(xlmr_dir, tmp_path):
    path, model, tokenizer = xlmr_dir
    reference = crossrank.CrossEncoder(str(path)).predict(PAIRS)
    weights = load_file(str(path / "model.safetensors"))

    def copy_without_weights(name):
        d = tmp_path / name
        shutil.copytree(path, d)
        (d / "model.safetensors").unlink()
        return d

    sharded = copy_without_weights("sharded")
    names = sorted(weights)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for file, keys in shards.items():
        save_file({k: weights[k].contiguous() for k in keys}, str(sharded / file))
    index = {"metadata": {}, "weight_map": {k: f for f, ks in shards.items() for k in ks}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    assert np.array_equal(crossrank.CrossEncoder(str(sharded)).predict(PAIRS), reference)

    pth = copy_without_weights("pth")
    torch.save(model.state_dict(), pth / "pytorch_model.bin")
    assert np.allclose(crossrank.CrossEncoder(str(pth)).predict(PAIRS), reference, atol=1e-6)

    bare = copy_without_weights("unprefixed")
    save_file({k.removeprefix("roberta."): v.contiguous() for k, v in weights.items()}, str(bare / "model.safetensors"))
    assert np.array_equal(crossrank.CrossEncoder(str(bare)).predict(PAIRS), reference)


def test_bert_vocab_txt_tokenizer(tmp_path, cranfield):
    """A BERT cross-encoder with only a vocab.txt: token ids as transformers' BertTokenizer's."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    _, corpus = cranfield
    words = _words(d["text"] for d in corpus[:300])
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(words) | set("abcdefghijklmnopqrstuvwxyz.,-()"))
    vocab += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128, num_labels=2, initializer_range=0.3)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    for extra in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
        (tmp_path / extra).unlink(missing_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path))  # builds from vocab.txt
    ce = crossrank.CrossEncoder(str(tmp_path), max_length=48)
    ids = tokenizer([q for q, _ in PAIRS], [d for _, d in PAIRS], truncation="longest_first",
                    max_length=48)["input_ids"]
    assert ce.tokenize(PAIRS) == ids
    enc = tokenizer([q for q, _ in PAIRS], [d for _, d in PAIRS], truncation="longest_first",
                    max_length=48, padding=True, return_tensors="pt")
    with torch.inference_mode():
        theirs = model(**enc).logits.numpy()
    ours = ce.predict(PAIRS)
    assert ours.shape == (len(PAIRS), 2)
    assert np.abs(ours - theirs).max() <= 1e-4
    assert np.abs(theirs).max() > 0.05


def _fake_hub_cache(cache: Path, repo_id: str, model_dir: Path) -> None:
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(model_dir, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)


def test_hub_id_from_cache_offline(ce_dir, tmp_path, monkeypatch):
    _fake_hub_cache(tmp_path, "crossrank-test/minilm-ce", ce_dir)
    direct = crossrank.CrossEncoder(str(ce_dir)).predict(PAIRS)
    via_arg = crossrank.CrossEncoder("crossrank-test/minilm-ce", cache_folder=str(tmp_path), local_files_only=True)
    assert np.array_equal(via_arg.predict(PAIRS), direct)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    via_env = crossrank.CrossEncoder("crossrank-test/minilm-ce")
    assert np.array_equal(via_env.predict(PAIRS), direct)


def test_hub_missing_model_offline_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="local_files_only=True or HF_HUB_OFFLINE=1"):
        crossrank.CrossEncoder("crossrank-test/not-cached", local_files_only=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache"):
        crossrank.BiEncoder("crossrank-test/not-cached")


def test_hub_unreachable_fails_fast(tmp_path, monkeypatch):
    """Online mode with no reachable hub: a clear error, no hang (port 9 on loopback refuses)."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(FileNotFoundError, match="could not download"):
        crossrank.CrossEncoder("crossrank-test/not-cached")
