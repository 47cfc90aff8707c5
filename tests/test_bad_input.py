"""Bad input gets a clear Python exception naming the problem; never a panic, hang or NaN."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import crossrank


@pytest.fixture()
def ce_copy(ce_dir, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(ce_dir, dst)
    return dst


def test_empty_inputs_give_empty_arrays(ce, ce_multilabel_dir, minilm_dir):
    out = ce.predict([])
    assert out.shape == (0,) and out.dtype == np.float32
    assert ce.rank("q", []) == []
    multi = crossrank.CrossEncoder(str(ce_multilabel_dir), max_length=64).predict([])
    assert multi.shape == (0, 3)
    emb = crossrank.BiEncoder(str(minilm_dir)).encode([])
    assert emb.shape == (0, 384) and emb.dtype == np.float32


def test_single_pair_gives_float(ce):
    score = ce.predict(("what is lift", "lift is a force"))
    assert type(score) is float
    assert score == pytest.approx(float(ce.predict([("what is lift", "lift is a force")])[0]), abs=1e-6)
    assert type(ce.predict(["what is lift", "lift is a force"])) is float


@pytest.mark.parametrize(
    "sentences, exc, message",
    [
        (None, TypeError, "sentences is None"),
        ("just a string", TypeError, "single str"),
        (42, TypeError, "must be a list, got int"),
        ([None], TypeError, r"sentences\[0\] is None"),
        ([("q", "d"), ("q", 1)], TypeError, r"sentences\[1\]\[1\] must be str, got int"),
        ([("q", None)], TypeError, r"sentences\[0\]\[1\] is None"),
        ([("a", "b", "c")], ValueError, r"sentences\[0\] has 3 elements"),
        ([("a",)], ValueError, r"sentences\[0\] has 1 elements"),
        ([{"q": "d"}], TypeError,
         r"sentences\[0\] must be a \(query, document\) pair \(tuple, list or array of 2 str\), got dict"),
        (["q", "d", "e"], ValueError, "a single pair must have 2 elements"),
    ],
)
def test_bad_sentences(ce, sentences, exc, message):
    with pytest.raises(exc, match=message):
        ce.predict(sentences)


@pytest.mark.parametrize("batch_size", [0, -1])
def test_bad_batch_size(ce, minilm_dir, batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        ce.predict([("q", "d")], batch_size=batch_size)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        ce.rank("q", ["d"], batch_size=batch_size)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        crossrank.BiEncoder(str(minilm_dir)).encode(["x"], batch_size=batch_size)


def test_bad_rank_arguments(ce, ce_multilabel_dir):
    with pytest.raises(TypeError, match="query is None"):
        ce.rank(None, ["d"])
    with pytest.raises(TypeError, match=r"documents\[1\] must be str, got int"):
        ce.rank("q", ["d", 3])
    with pytest.raises(TypeError, match="documents must be a list, got a single str"):
        ce.rank("q", "d")
    with pytest.raises(ValueError, match="top_k must be >= 0"):
        ce.rank("q", ["d"], top_k=-1)
    with pytest.raises(ValueError, match="one output label"):
        crossrank.CrossEncoder(str(ce_multilabel_dir)).rank("q", ["d"])


def test_bad_encode_inputs(minilm_dir):
    be = crossrank.BiEncoder(str(minilm_dir))
    with pytest.raises(TypeError, match=r"sentences\[1\] is None"):
        be.encode(["a", None])
    with pytest.raises(TypeError, match=r"sentences\[0\] must be str, got bytes"):
        be.encode([b"a"])
    with pytest.raises(ValueError, match="dimensions differ"):
        be.similarity(np.ones((2, 3), np.float32), np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="unknown pooling"):
        crossrank.BiEncoder(str(minilm_dir), pooling="median")


def test_bad_constructor_arguments(ce_dir, minilm_dir):
    with pytest.raises(ValueError, match="max_length 1000 exceeds the model's position table: at most 512"):
        crossrank.CrossEncoder(str(ce_dir), max_length=1000)
    with pytest.raises(ValueError, match="max_length must be a positive integer"):
        crossrank.CrossEncoder(str(ce_dir), max_length=0)
    with pytest.raises(ValueError, match="max_length 1000 exceeds"):
        crossrank.BiEncoder(str(minilm_dir), max_length=1000)
    with pytest.raises(ValueError, match="unknown activation_fn"):
        crossrank.CrossEncoder(str(ce_dir), activation_fn="relu6")
    with pytest.raises(ValueError, match="device \"cuda\" is not available"):
        crossrank.CrossEncoder(str(ce_dir), device="cuda")
    with pytest.raises(TypeError, match="model_name_or_path must be a str or os.PathLike, got int"):
        crossrank.CrossEncoder(3)


def test_missing_model_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        crossrank.CrossEncoder(str(tmp_path / "no" / "such" / "model"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        crossrank.BiEncoder("./no/such/model")


def test_missing_and_broken_files(ce_copy):
    (ce_copy / "config.json").write_text("{ this is not json")
    with pytest.raises(ValueError, match="config.json: not valid JSON"):
        crossrank.CrossEncoder(str(ce_copy))
    (ce_copy / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        crossrank.CrossEncoder(str(ce_copy))


def test_missing_corrupt_and_truncated_weights(ce_dir, ce_copy):
    weights = ce_copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.safetensors: not a valid safetensors file"):
        crossrank.CrossEncoder(str(ce_copy))
    weights.write_bytes(b"\x00" * 1000)
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        crossrank.CrossEncoder(str(ce_copy))
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="has no weights"):
        crossrank.CrossEncoder(str(ce_copy))
    (ce_copy / "pytorch_model.bin").write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="pytorch_model.bin: cannot read PyTorch weights"):
        crossrank.CrossEncoder(str(ce_copy))


def test_missing_tensor_is_named(ce_dir, ce_copy):
    tensors = load_file(str(ce_dir / "model.safetensors"))
    del tensors["classifier.weight"]
    save_file(tensors, str(ce_copy / "model.safetensors"))
    with pytest.raises(ValueError, match="classifier.weight"):
        crossrank.CrossEncoder(str(ce_copy))


def test_nan_weights_raise_instead_of_nan_scores(ce_dir, ce_copy):
    tensors = load_file(str(ce_dir / "model.safetensors"))
    tensors["classifier.bias"] = np.array([np.nan], dtype=np.float32)
    save_file(tensors, str(ce_copy / "model.safetensors"))
    model = crossrank.CrossEncoder(str(ce_copy))
    with pytest.raises(ValueError, match="non-finite score"):
        model.predict([("q", "d")])


def test_unsupported_architecture_is_named(ce_copy, minilm_dir):
    config = json.loads((ce_copy / "config.json").read_text())
    config["architectures"] = ["GPT2LMHeadModel"]
    (ce_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"unsupported architecture \"GPT2LMHeadModel\"; supported: "
                                         r"BertForSequenceClassification, XLMRobertaForSequenceClassification"):
        crossrank.CrossEncoder(str(ce_copy))
    with pytest.raises(ValueError, match="unsupported architecture \"BertModel\""):
        crossrank.CrossEncoder(str(minilm_dir))


def test_megabyte_document_is_truncated(ce):
    doc = "the pressure distribution over the wing " * 26000  # ~1 MB
    assert len(doc) > 1_000_000
    (ids,) = ce.tokenize([("pressure on wings", doc)])
    assert len(ids) == ce.max_length
    score = ce.predict(("pressure on wings", doc))
    assert np.isfinite(score)
