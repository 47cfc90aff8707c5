"""Decoder "yes/no" rerankers (Qwen3-Reranker's architecture): small random Qwen3ForCausalLM
checkpoints with a byte-level BPE tokenizer carrying the chat tokens and "yes"/"no", built by
transformers and saved by sentence-transformers 6.2 (scripts/qwen3_reranker.py), scored by
crossrank and compared with sentence-transformers' CrossEncoder (LogitScore) and with the
model card's transformers recipe, on Cranfield pairs around and beyond max_length."""

from __future__ import annotations

import numpy as np
import pytest
import qwen3_reranker as q3
import torch

import crossrank

torch.set_num_threads(2)

INSTRUCTION = "Given an aeronautics question, find the abstracts that answer it"


@pytest.fixture(scope="module")
def texts():
    return q3.cranfield_texts(n=400)


@pytest.fixture(scope="module")
def pairs():
    # Judged and random pairings, some short documents: lengths around and beyond 128 / 256.
    return q3.cranfield_pairs(n=200)


@pytest.fixture(scope="module")
def checkpoint(texts, tmp_path_factory):
    """A sentence-transformers reranker: chat template, LogitScore config, no stored prompt."""
    return q3.write_checkpoint(tmp_path_factory.mktemp("qwen3") / "st", texts)


@pytest.fixture(scope="module")
def plain_checkpoint(texts, tmp_path_factory):
    """As Qwen first published the reranker: the general Qwen3 chat template, no
    sentence-transformers files, untied head, GQA."""
    return q3.write_checkpoint(tmp_path_factory.mktemp("qwen3") / "plain", texts, st_config=False,
                               sizes=dict(tie_word_embeddings=False))


@pytest.mark.parametrize("max_length", [128, 256])
def test_scores_and_token_ids_equal_sentence_transformers(checkpoint, pairs, max_length):
    ce = crossrank.CrossEncoder(str(checkpoint), max_length=max_length)
    ids = ce.tokenize(pairs)
    assert ids == q3.st_token_ids(checkpoint, pairs, max_length)
    lengths = [len(x) for x in ids]
    assert max(lengths) == max_length and min(lengths) < max_length, "lengths around max_length"
    theirs = q3.st_scores(checkpoint, pairs, max_length)
    assert theirs.std() > 0.3, "the random model must separate pairs for the comparison to mean something"
    ours = ce.predict(pairs, activation_fn="identity")
    assert np.abs(ours - theirs).max() <= 1e-4
    # Default activation: sigmoid of logit(yes) - logit(no), as sentence-transformers returns.
    probabilities = ce.predict(pairs)
    expected = 1 / (1 + np.exp(-theirs))
    assert np.abs(probabilities - expected).max() <= 1e-3 * expected.max()
    assert ce.activation_fn == "sigmoid" and ce.num_labels == 1


def test_truncation_cuts_the_document_and_keeps_the_template_end(checkpoint, pairs):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    suffix = tokenizer(q3.SUFFIX, add_special_tokens=False)["input_ids"]
    ce = crossrank.CrossEncoder(str(checkpoint), max_length=128)
    full = crossrank.CrossEncoder(str(checkpoint), max_length=512)
    cut = [(i, x) for i, x in enumerate(ce.tokenize(pairs)) if len(x) == 128]
    assert len(cut) > 20
    for i, ids in cut:
        whole = full.tokenize([pairs[i]])[0]
        assert len(whole) > 128 and whole[-len(suffix):] == suffix
        assert ids[-len(suffix):] == suffix, "the template's end survives truncation"
        assert ids[:-len(suffix)] == whole[:128 - len(suffix)], "what is cut is the document's end"
    # And the scores of the cut pairs are the reference's.
    cut_pairs = [pairs[i] for i, _ in cut]
    theirs = q3.st_scores(checkpoint, cut_pairs, 128)
    assert np.abs(ce.predict(cut_pairs, activation_fn="identity") - theirs).max() <= 1e-4


def test_rank_order_equals_sentence_transformers(checkpoint, pairs):
    from sentence_transformers import CrossEncoder as STCrossEncoder

    st = STCrossEncoder(str(checkpoint), max_length=256, device="cpu")
    ce = crossrank.CrossEncoder(str(checkpoint), max_length=256)
    query = pairs[0][0]
    documents = [d for _, d in pairs[:40]]
    theirs = st.rank(query, documents)
    ours = ce.rank(query, documents)
    assert [r["corpus_id"] for r in ours] == [r["corpus_id"] for r in theirs]
    assert np.allclose([r["score"] for r in ours], [r["score"] for r in theirs], atol=1e-4)
    # Ranking the same query again reuses the cached prompt beginning: same answer.
    assert [r["score"] for r in ce.rank(query, documents)] == [r["score"] for r in ours]


def test_instruction_from_the_caller_and_from_the_checkpoint(checkpoint, texts, pairs, tmp_path):
    theirs = q3.st_scores(checkpoint, pairs[:60], 256, instruction=INSTRUCTION)
    ce = crossrank.CrossEncoder(str(checkpoint), max_length=256, instruction=INSTRUCTION)
    ours = ce.predict(pairs[:60], activation_fn="identity")
    assert np.abs(ours - theirs).max() <= 1e-4
    default = crossrank.CrossEncoder(str(checkpoint), max_length=256).predict(pairs[:60], activation_fn="identity")
    assert np.abs(default - ours).max() > 1e-2, "the instruction must change the prompt"
    # A checkpoint whose sentence-transformers config stores a default prompt.
    stored = q3.write_checkpoint(tmp_path / "stored", texts, instruction=INSTRUCTION)
    ours = crossrank.CrossEncoder(str(stored), max_length=256).predict(pairs[:60], activation_fn="identity")
    assert np.abs(ours - q3.st_scores(stored, pairs[:60], 256)).max() <= 1e-4


def test_a_checkpoint_without_sentence_transformers_files_uses_the_model_cards_format(plain_checkpoint, pairs):
    ce = crossrank.CrossEncoder(str(plain_checkpoint), max_length=200)
    assert ce.tokenize(pairs) == q3.hf_token_ids(plain_checkpoint, pairs, 200)
    theirs = q3.hf_scores(plain_checkpoint, pairs, 200)
    assert theirs.std() > 0.3
    assert np.abs(ce.predict(pairs, activation_fn="identity") - theirs).max() <= 1e-4
    ce = crossrank.CrossEncoder(str(plain_checkpoint), max_length=200, instruction=INSTRUCTION)
    theirs = q3.hf_scores(plain_checkpoint, pairs[:40], 200, instruction=INSTRUCTION)
    assert np.abs(ce.predict(pairs[:40], activation_fn="identity") - theirs).max() <= 1e-4


def test_bad_decoder_checkpoints_and_options_give_clear_errors(checkpoint, texts, tmp_path):
    no_tokens = q3.write_checkpoint(tmp_path / "noyes", texts, st_config=False, yes_no=False)
    with pytest.raises(ValueError, match='no "yes" and "no" tokens'):
        crossrank.CrossEncoder(str(no_tokens))
    with pytest.raises(ValueError, match="empty query and document, more than max_length 40"):
        crossrank.CrossEncoder(str(checkpoint), max_length=40)
    with pytest.raises(ValueError, match='long_document="max" is not available for decoder rerankers'):
        crossrank.CrossEncoder(str(checkpoint), long_document="max")
    ce = crossrank.CrossEncoder(str(checkpoint), max_length=128)
    with pytest.raises(ValueError, match="not available for decoder rerankers"):
        ce.compare("q", [("a", "b")])


def test_int8_ranks_like_float32(checkpoint, pairs):
    """precision="int8" quantizes the decoder's linear layers as the encoders': per query,
    ranked as float32 ranks (Spearman; RESULTS.md reports the 0.6B-sized model's)."""
    from scipy.stats import spearmanr

    f32 = crossrank.CrossEncoder(str(checkpoint), max_length=256)
    int8 = crossrank.CrossEncoder(str(checkpoint), max_length=256, precision="int8")
    rhos = []
    for chunk in range(0, 200, 40):
        block = pairs[chunk:chunk + 40]
        want, got = f32.predict(block, activation_fn="identity"), int8.predict(block, activation_fn="identity")
        assert not np.array_equal(want, got), "int8 must actually run"
        rhos.append(spearmanr(want, got).statistic)
    assert min(rhos) >= 0.9, rhos


def test_instruction_is_refused_for_encoders(ce_dir):
    with pytest.raises(ValueError, match="instruction applies to decoder rerankers"):
        crossrank.CrossEncoder(str(ce_dir), instruction="find it")
