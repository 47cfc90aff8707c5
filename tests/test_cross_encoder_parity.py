"""The cross-encoder's token ids and logits equal Hugging Face's on real weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import crossrank

from parity_inputs import hf_pair_logits

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def hf_model(ce_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(ce_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(ce_dir))
    return model, tokenizer


@pytest.mark.parametrize("max_length", [128, 512])
def test_token_ids_equal_hf(ce_dir, hf_model, cranfield_pairs, max_length):
    _, tokenizer = hf_model
    ours = crossrank.CrossEncoder(str(ce_dir), max_length=max_length).tokenize(cranfield_pairs)
    # The batch call, as sentence-transformers makes it. (A single call tokenizer(q, "")
    # drops an empty second text; the batch call keeps it as an empty pair.)
    theirs = tokenizer(
        [q for q, _ in cranfield_pairs],
        [d for _, d in cranfield_pairs],
        truncation="longest_first",
        max_length=max_length,
    )["input_ids"]
    assert ours == theirs
    assert max(len(ids) for ids in ours) == max_length  # truncation happened
    assert any(len(ids) < 20 for ids in ours)


@pytest.mark.parametrize("max_length", [128, 512])
def test_logits_equal_transformers(ce_dir, hf_model, cranfield_pairs, max_length):
    model, tokenizer = hf_model
    ce = crossrank.CrossEncoder(str(ce_dir), max_length=max_length)
    ours = ce.predict(cranfield_pairs, activation_fn="identity")
    theirs = hf_pair_logits(model, tokenizer, cranfield_pairs, max_length, batch_size=32)[:, 0]
    assert ours.dtype == np.float32 and ours.shape == (len(cranfield_pairs),)
    assert np.abs(ours - theirs).max() <= 1e-4
    assert theirs.std() > 0.2  # the head separates pairs, so the comparison means something


def test_scores_and_rank_equal_sentence_transformers(ce_dir, cranfield, cranfield_pairs):
    from sentence_transformers import CrossEncoder as STCrossEncoder

    st = STCrossEncoder(str(ce_dir), max_length=512, device="cpu")
    ours_ce = crossrank.CrossEncoder(str(ce_dir), max_length=512)
    logits_st = st.predict(cranfield_pairs, activation_fn=torch.nn.Identity(), batch_size=32)
    logits_ours = ours_ce.predict(cranfield_pairs, activation_fn=torch.nn.Identity())
    assert np.abs(logits_ours - logits_st).max() <= 1e-4

    scores_st = st.predict(cranfield_pairs)  # default activation: sigmoid for one label
    scores_ours = ours_ce.predict(cranfield_pairs)
    assert ours_ce.activation_fn == "sigmoid"
    assert np.abs(scores_ours - scores_st).max() <= 1e-5

    queries, corpus = cranfield
    docs = [d["text"] for d in corpus[:60]]
    for query in [q["text"] for q in queries[:5]]:
        rank_st = st.rank(query, docs, return_documents=True)
        rank_ours = ours_ce.rank(query, docs, return_documents=True)
        assert [r["corpus_id"] for r in rank_ours] == [r["corpus_id"] for r in rank_st]
        assert [r["text"] for r in rank_ours] == [r["text"] for r in rank_st]
        assert np.allclose([r["score"] for r in rank_ours], [float(r["score"]) for r in rank_st], atol=1e-5)


def test_multilabel_softmax_equals_transformers(ce_multilabel_dir, cranfield_pairs):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    pairs = cranfield_pairs[:40]
    model = AutoModelForSequenceClassification.from_pretrained(str(ce_multilabel_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(ce_multilabel_dir))
    logits = hf_pair_logits(model, tokenizer, pairs, 256, batch_size=32)
    ce = crossrank.CrossEncoder(str(ce_multilabel_dir), max_length=256)
    assert ce.num_labels == 3 and ce.activation_fn == "identity"
    ours = ce.predict(pairs)
    assert ours.shape == (40, 3)
    assert np.abs(ours - logits).max() <= 1e-4
    probs = ce.predict(pairs, apply_softmax=True)
    assert np.abs(probs - torch.softmax(torch.from_numpy(logits), 1).numpy()).max() <= 1e-5
    single = ce.predict(pairs[0])
    assert single.shape == (3,)
