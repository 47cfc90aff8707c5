"""BiEncoder embeddings equal SentenceTransformer.encode on the real all-MiniLM-L6-v2."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import crossrank

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def st_model(minilm_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_dir), device="cpu")


def test_embeddings_equal_sentence_transformers(minilm_dir, st_model, cranfield):
    _, corpus = cranfield
    docs = [d["text"] for d in corpus[:520]]
    be = crossrank.BiEncoder(str(minilm_dir))
    assert be.max_length == 256 and be.pooling == "mean" and be.normalize_embeddings
    ours = be.encode(docs)
    theirs = st_model.encode(docs, batch_size=32)
    assert ours.shape == theirs.shape == (520, 384)
    assert np.abs(ours - theirs).max() <= 1e-5
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    # some documents were longer than max_seq_length, so truncation is covered
    assert max(len(ids) for ids in be.tokenize(docs)) == 256


def test_single_text_and_similarity(minilm_dir, st_model):
    be = crossrank.BiEncoder(str(minilm_dir))
    one = be.encode("flow over a flat plate")
    assert one.shape == (384,)
    many = be.encode(["flow over a flat plate", "boundary layer", "heat transfer in slabs"])
    assert np.allclose(one, many[0], atol=1e-6)
    sims = be.similarity(many, many)
    theirs = st_model.similarity(many, many).numpy()
    assert sims.shape == (3, 3) and np.allclose(sims, theirs, atol=1e-6)
    assert be.similarity(one, many).shape == (1, 3)


@pytest.mark.parametrize("pooling", ["cls", "max", "mean"])
def test_pooling_overrides_match_sentence_transformers(minilm_dir, cranfield, pooling):
    from sentence_transformers import SentenceTransformer, models

    _, corpus = cranfield
    docs = [d["text"] for d in corpus[:40]]
    word = models.Transformer(str(minilm_dir), max_seq_length=128)
    pool = models.Pooling(word.get_embedding_dimension(), pooling_mode=pooling)
    st = SentenceTransformer(modules=[word, pool], device="cpu")
    be = crossrank.BiEncoder(str(minilm_dir), max_length=128, pooling=pooling)
    ours = be.encode(docs, normalize_embeddings=False)
    # this model has a Normalize module, which sentence-transformers' modules list here lacks
    theirs = st.encode(docs, normalize_embeddings=True)
    assert np.abs(ours - theirs).max() <= 1e-5
