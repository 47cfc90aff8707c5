"""The unnormalized BiEncoder path: a model without a Normalize module (all-MiniLM-L6-v2
with that module removed from modules.json) gives sentence-transformers' raw mean-pooled
embeddings with ``normalize_embeddings=False``, and unit vectors only when asked."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import crossrank

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def unnormalized_dir(minilm_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("minilm-no-normalize") / "model"
    shutil.copytree(minilm_dir, out)
    modules = json.loads((out / "modules.json").read_text())
    (out / "modules.json").write_text(json.dumps([m for m in modules if not m["type"].endswith(".Normalize")]))
    return out


def test_raw_embeddings_equal_sentence_transformers(unnormalized_dir, cranfield):
    from sentence_transformers import SentenceTransformer

    _, corpus = cranfield
    docs = [d["text"] for d in corpus[:64]]
    st = SentenceTransformer(str(unnormalized_dir), device="cpu")
    be = crossrank.BiEncoder(str(unnormalized_dir))
    assert not be.normalize_embeddings
    ours = be.encode(docs, normalize_embeddings=False)
    theirs = st.encode(docs, batch_size=32, normalize_embeddings=False)
    assert np.abs(ours - theirs).max() <= 1e-5
    norms = np.linalg.norm(ours, axis=1)
    assert np.abs(norms - 1.0).min() > 0.05, "raw mean-pooled embeddings are not unit vectors"
    # The default follows the model (no Normalize module): raw as well.
    assert np.abs(be.encode(docs) - theirs).max() <= 1e-5
    # Asked for, normalization matches sentence-transformers' own.
    asked = be.encode(docs, normalize_embeddings=True)
    assert np.abs(asked - st.encode(docs, batch_size=32, normalize_embeddings=True)).max() <= 1e-5
    assert np.allclose(np.linalg.norm(asked, axis=1), 1.0, atol=1e-5)
