"""precision="int8": dynamic quantization of the encoder's linear layers. Scores are not
equal to float32 but must rank like them (per-query Spearman >= 0.99 on real candidates)
and retrieve like them (dense nDCG@10 within 1%)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.stats import spearmanr

import crossrank

import collections_beir as beir


@pytest.fixture(scope="module")
def cranfield_collection():
    return beir.load("cranfield")


@pytest.fixture(scope="module")
def dense_f32(minilm_dir, cranfield_collection):
    return beir.dense_run(crossrank.BiEncoder(str(minilm_dir)), cranfield_collection)


def test_int8_bi_encoder_retrieves_like_float32(minilm_dir, cranfield_collection, dense_f32):
    _, ndcg_f32 = dense_f32
    bi = crossrank.BiEncoder(str(minilm_dir), precision="int8")
    assert bi.precision == "int8"
    _, ndcg_int8 = beir.dense_run(bi, cranfield_collection)
    assert abs(ndcg_int8 - ndcg_f32) <= 0.01 * ndcg_f32, (ndcg_int8, ndcg_f32)
    # The quantized path really ran: embeddings differ, but little.
    texts = cranfield_collection.doc_texts[:64]
    exact = crossrank.BiEncoder(str(minilm_dir)).encode(texts)
    quantized = bi.encode(texts)
    cosines = np.sum(exact * quantized, axis=1)
    assert np.all(cosines > 0.99) and np.any(cosines < 1 - 1e-6), cosines.min()


def test_int8_cross_encoder_ranks_like_float32(ce_dir, cranfield_collection, dense_f32):
    run, _ = dense_f32
    text_of = dict(zip(cranfield_collection.doc_ids, cranfield_collection.doc_texts))
    exact = crossrank.CrossEncoder(str(ce_dir), max_length=512)
    fast = crossrank.CrossEncoder(str(ce_dir), max_length=512, precision="int8")
    assert (exact.precision, fast.precision) == ("float32", "int8")
    for query in cranfield_collection.queries[:5]:
        pairs = [(query["text"], text_of[d]) for d in run[query["_id"]]]
        want = exact.predict(pairs, activation_fn="identity")
        got = fast.predict(pairs, activation_fn="identity")
        assert np.all(np.isfinite(got))
        rho = spearmanr(want, got).statistic
        assert rho >= 0.99, (query["_id"], rho)
        assert 0 < np.abs(want - got).max() < 0.25 * want.std()


def test_int8_is_deterministic_and_batch_independent(ce_dir, cranfield_pairs):
    fast = crossrank.CrossEncoder(str(ce_dir), max_length=512, precision="int8")
    pairs = cranfield_pairs[:40]
    whole = fast.predict(pairs, batch_size=16)
    one_by_one = np.array([fast.predict(p) for p in pairs])
    np.testing.assert_array_equal(whole, fast.predict(pairs, batch_size=16))
    np.testing.assert_allclose(whole, one_by_one, rtol=0, atol=1e-6)


def test_precision_survives_pickle(ce_dir, minilm_dir):
    fast = crossrank.CrossEncoder(str(ce_dir), precision="int8")
    assert pickle.loads(pickle.dumps(fast)).precision == "int8"
    bi = crossrank.BiEncoder(str(minilm_dir), precision="int8")
    assert pickle.loads(pickle.dumps(bi)).precision == "int8"


@pytest.mark.parametrize("cls", ["CrossEncoder", "BiEncoder"])
def test_bad_precision(cls, ce_dir, minilm_dir):
    model = str(ce_dir if cls == "CrossEncoder" else minilm_dir)
    make = getattr(crossrank, cls)
    assert make(model, precision="FP32").precision == "float32"
    with pytest.raises(ValueError, match='unsupported precision "int4".*float32.*int8'):
        make(model, precision="int4")
    with pytest.raises(TypeError):
        make(model, precision=8)
