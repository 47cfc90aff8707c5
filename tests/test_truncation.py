"""Truncation you can see and control: `predict/rank(..., return_details=True)` report each
pair's length before truncation and whether it was cut (and the best window in long-document
modes), checked against the Hugging Face tokenizer; `truncation="only_second"` cuts as
transformers does; `truncation="error"` refuses a pair that does not fit."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import crossrank

MAX_LENGTH = 64


@pytest.fixture(scope="module")
def hf_tokenizer(ce_dir):
    return AutoTokenizer.from_pretrained(str(ce_dir))


@pytest.fixture(scope="module")
def hf_model(ce_dir):
    return AutoModelForSequenceClassification.from_pretrained(str(ce_dir)).eval()


@pytest.fixture(scope="module")
def pairs(cranfield_pairs):
    # Short and long documents, long queries among them (a query alone over the budget).
    picked = cranfield_pairs[:40] + [(" ".join([cranfield_pairs[0][0]] * 12), "a short document")]
    return picked


def test_details_count_tokens_as_the_hf_tokenizer(ce_dir, hf_tokenizer, pairs):
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=MAX_LENGTH)
    scores, details = ce.predict(pairs, return_details=True)
    np.testing.assert_array_equal(scores, ce.predict(pairs))
    expected = [len(hf_tokenizer(q, d, truncation=False)["input_ids"]) for q, d in pairs]
    assert [d["num_tokens"] for d in details] == expected
    assert [d["truncated"] for d in details] == [n > MAX_LENGTH for n in expected]
    assert any(d["truncated"] for d in details) and not all(d["truncated"] for d in details)
    assert all(set(d) == {"num_tokens", "truncated"} for d in details)
    # One pair in: one score and one dict.
    score, one = ce.predict(pairs[0], return_details=True)
    assert score == pytest.approx(float(scores[0]), abs=1e-6) and one == details[0]


def test_rank_details(ce_dir, hf_tokenizer, pairs):
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=MAX_LENGTH)
    query = pairs[0][0]
    documents = [d for _, d in pairs[:12]]
    ranked = ce.rank(query, documents, return_details=True)
    plain = ce.rank(query, documents)
    assert [(r["corpus_id"], r["score"]) for r in ranked] == [(r["corpus_id"], r["score"]) for r in plain]
    for r in ranked:
        n = len(hf_tokenizer(query, documents[r["corpus_id"]], truncation=False)["input_ids"])
        assert (r["num_tokens"], r["truncated"]) == (n, n > MAX_LENGTH)


def test_only_second_equals_transformers(ce_dir, hf_tokenizer, hf_model, pairs):
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=MAX_LENGTH, truncation="only_second")
    assert ce.truncation == "only_second"
    # Where the query fits (transformers' only_second cannot cut a query).
    fitting = [(q, d) for q, d in pairs if len(hf_tokenizer(q, truncation=False)["input_ids"]) < MAX_LENGTH - 1]
    assert len(fitting) >= 30
    expected = hf_tokenizer([q for q, _ in fitting], [d for _, d in fitting], truncation="only_second",
                            max_length=MAX_LENGTH)["input_ids"]
    assert ce.tokenize(fitting) == expected
    default = crossrank.CrossEncoder(str(ce_dir), max_length=MAX_LENGTH).tokenize(fitting)
    assert default != expected, "longest_first and only_second should differ on these pairs"
    batch = hf_tokenizer([q for q, _ in fitting], [d for _, d in fitting], truncation="only_second",
                         max_length=MAX_LENGTH, padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = torch.sigmoid(hf_model(**batch).logits[:, 0]).numpy()
    np.testing.assert_allclose(ce.predict(fitting), reference, atol=1e-4)
    # A query that alone does not fit is cut, and the document left out.
    long_query, doc = pairs[-1]
    ids = ce.tokenize([(long_query, doc)])[0]
    assert len(ids) == MAX_LENGTH
    # [CLS] query (cut) [SEP] [SEP]: no document tokens left.
    assert ids[-2:] == [hf_tokenizer.sep_token_id] * 2 and ids.count(hf_tokenizer.sep_token_id) == 2


def test_truncation_error(ce_dir, pairs, hf_tokenizer):
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=MAX_LENGTH, truncation="error")
    lengths = [len(hf_tokenizer(q, d, truncation=False)["input_ids"]) for q, d in pairs]
    first = next(i for i, n in enumerate(lengths) if n > MAX_LENGTH)
    with pytest.raises(ValueError, match=rf"pair {first} has {lengths[first]} tokens, more than max_length 64"):
        ce.predict(pairs)
    with pytest.raises(ValueError, match=r"truncation=\"error\""):
        ce.rank(pairs[first][0], ["short", pairs[first][1]])
    fitting = [p for p, n in zip(pairs, lengths) if n <= MAX_LENGTH]
    default = crossrank.CrossEncoder(str(ce_dir), max_length=MAX_LENGTH)
    np.testing.assert_array_equal(ce.predict(fitting), default.predict(fitting))


def test_bad_truncation_arguments(ce_dir):
    with pytest.raises(ValueError, match=r"unknown truncation \"middle\"; expected \"longest_first\""):
        crossrank.CrossEncoder(str(ce_dir), truncation="middle")
    with pytest.raises(ValueError, match=r"truncation=\"error\" applies to long_document=\"truncate\""):
        crossrank.CrossEncoder(str(ce_dir), truncation="error", long_document="max")
    with pytest.raises(TypeError):
        crossrank.CrossEncoder(str(ce_dir), truncation=3)


def test_truncation_survives_pickling(ce_dir):
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=MAX_LENGTH, truncation="only_second")
    again = pickle.loads(pickle.dumps(ce))
    assert again.truncation == "only_second" and again.max_length == MAX_LENGTH


def test_long_document_details_name_the_best_window(ce_dir, hf_tokenizer, hf_model, cranfield):
    queries, corpus = cranfield
    query = queries[0]["text"]
    document = " ".join(d["text"] for d in corpus[:3])
    stride = 16
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=MAX_LENGTH, long_document="max", stride=stride)
    score, details = ce.predict((query, document), return_details=True)
    windows = hf_tokenizer(query, document, truncation="only_second", max_length=MAX_LENGTH, stride=stride,
                           return_overflowing_tokens=True, padding=True, return_tensors="pt")
    windows.pop("overflow_to_sample_mapping")
    with torch.no_grad():
        logits = hf_model(**windows).logits[:, 0].numpy()
    assert details["num_windows"] == len(logits) > 2
    assert details["window"] == int(np.argmax(logits))
    assert score == pytest.approx(float(1 / (1 + np.exp(-logits.max()))), abs=1e-4)
    assert details["truncated"] is False
    assert details["num_tokens"] == len(hf_tokenizer(query, document, truncation=False)["input_ids"])
    # The span names the window's tokens in the document.
    start, end = details["window_span"]
    doc_ids = hf_tokenizer(document, add_special_tokens=False)["input_ids"]
    best = windows["input_ids"][details["window"]].tolist()
    second = best.index(hf_tokenizer.sep_token_id) + 1
    assert doc_ids[start:end] == [t for t in best[second:] if t not in (hf_tokenizer.sep_token_id,
                                                                       hf_tokenizer.pad_token_id)]
    first = crossrank.CrossEncoder(str(ce_dir), max_length=MAX_LENGTH, long_document="first", stride=stride)
    _, details = first.predict((query, document), return_details=True)
    assert (details["window"], details["num_windows"], details["truncated"]) == (0, 1, True)
