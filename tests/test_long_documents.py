"""long_document="max" | "mean" | "first" on CrossEncoder: windows and logits equal to
transformers on the windows its own tokenizer makes (return_overflowing_tokens), and a
relevant sentence at the end of a long document is found by "max" and missed by "truncate"."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import crossrank

FILLER = ("The committee reviewed the annual budget and discussed the parking arrangements for the "
          "new office building, the cafeteria menu and the holiday schedule. ")
RELEVANT = "Boundary layer transition on a swept wing is delayed by suction through a porous surface."
QUERY = "how does suction delay boundary layer transition on swept wings"


def hf_window_logits(model_dir, pairs, max_length, stride):
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    out = []
    for q, d in pairs:
        # The batch call, as sentence-transformers makes it: a single call would drop an
        # empty second text, the batch call keeps it as [CLS] q [SEP] [SEP].
        enc = tok([q], [d], truncation="only_second", max_length=max_length, stride=stride,
                  return_overflowing_tokens=True, padding=True, return_tensors="pt")
        enc.pop("overflow_to_sample_mapping", None)
        with torch.no_grad():
            out.append(model(**enc).logits[:, 0].numpy())
    return out


@pytest.fixture(scope="module")
def long_pairs(cranfield):
    queries, corpus = cranfield
    texts = [d["text"] for d in corpus]
    long_doc = " ".join(texts[:6])  # several abstracts: many windows at max_length 96
    return [(queries[0]["text"], long_doc), (queries[1]["text"], texts[7]), (queries[2]["text"], ""),
            (queries[3]["text"], " ".join(texts[10:13]))]


@pytest.mark.parametrize("mode", ["max", "mean", "first"])
def test_windows_equal_transformers(ce_dir, long_pairs, mode):
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=96, long_document=mode, stride=24, activation_fn="identity")
    got = ce.predict(long_pairs, batch_size=8)
    windows = hf_window_logits(ce_dir, long_pairs, 96, 24)
    assert len(windows[0]) > 5, "the long document spans many windows"
    want = [{"max": w.max(), "mean": w.mean(), "first": w[0]}[mode] for w in windows]
    np.testing.assert_allclose(got, want, atol=1e-4)
    if mode == "first":
        truncate = crossrank.CrossEncoder(str(ce_dir), max_length=96, activation_fn="identity")
        np.testing.assert_allclose(got, truncate.predict(long_pairs), atol=1e-5)


@pytest.fixture(scope="module")
def probe_dir(ce_dir, tmp_path_factory):
    """The real MiniLM encoder with a linear probe as head: the direction from the pooled
    output of filler text to that of filler text ending in the relevant sentence, so the
    score says "this window contains the relevant sentence" (> 0) or not (< 0)."""
    target = tmp_path_factory.mktemp("probe") / "model"
    shutil.copytree(ce_dir, target)
    tok = AutoTokenizer.from_pretrained(str(target))
    model = AutoModelForSequenceClassification.from_pretrained(str(target)).eval()
    with torch.no_grad():
        pooled = [model.bert(**tok([QUERY], [text], return_tensors="pt")).pooler_output[0]
                  for text in (FILLER * 2 + RELEVANT, FILLER * 3)]
        direction = pooled[0] - pooled[1]
        direction /= direction.norm()
        model.classifier.weight.copy_(direction[None, :] * 20)
        model.classifier.bias.fill_(float(-(20 * direction @ (pooled[0] + pooled[1]) / 2)))
    model.save_pretrained(str(target))
    (target / "fixture.json").write_text(json.dumps({"probe": True}))
    return target


def test_relevant_sentence_at_the_end_found_by_max_missed_by_truncate(probe_dir):
    document = FILLER * 12 + RELEVANT
    truncate = crossrank.CrossEncoder(str(probe_dir), max_length=128, activation_fn="identity")
    windows = crossrank.CrossEncoder(str(probe_dir), max_length=128, long_document="max", stride=32,
                                     activation_fn="identity")
    assert len(truncate.tokenize([(QUERY, document)])[0]) == 128, "the document does not fit"
    assert truncate.predict((QUERY, document)) < 0, "truncation cuts the relevant sentence off"
    assert windows.predict((QUERY, document)) > 0, "a window holds the relevant sentence"
    assert windows.predict((QUERY, FILLER * 13)) < 0
    # rank(): with "max" the long relevant document beats a long irrelevant one.
    ranked = windows.rank(QUERY, [FILLER * 13, document])
    assert ranked[0]["corpus_id"] == 1


def test_bad_long_document_options(ce_dir):
    with pytest.raises(ValueError, match="long_document"):
        crossrank.CrossEncoder(str(ce_dir), long_document="longest")
    with pytest.raises(ValueError, match="stride"):
        crossrank.CrossEncoder(str(ce_dir), max_length=64, long_document="max", stride=32)
    with pytest.raises(ValueError, match="stride"):
        crossrank.CrossEncoder(str(ce_dir), long_document="max", stride=-1)
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=64, long_document="mean", stride=8)
    assert ce.long_document == "mean" and ce.stride == 8
    import pickle

    again = pickle.loads(pickle.dumps(ce))
    assert again.long_document == "mean" and again.stride == 8
    # A query too long to leave room for a window falls back to one truncated input.
    long_query = "wing " * 200
    assert np.isfinite(ce.predict((long_query, "short document")))
