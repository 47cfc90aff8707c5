"""Shared fixtures: real model weights (fetched by scripts/fixtures.py), the shipped IR
collections in data/ (or $CROSSRANK_DATA), and tiny random checkpoints saved by transformers."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import fixtures  # noqa: E402

DATA = fixtures.DATA


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return fixtures.fetch_minilm()


@pytest.fixture(scope="session")
def ce_dir(minilm_dir) -> Path:
    _, path = fixtures.ensure_default_fixtures()
    return path


@pytest.fixture(scope="session")
def ce_multilabel_dir(minilm_dir, tmp_path_factory) -> Path:
    return fixtures.make_cross_encoder(tmp_path_factory.mktemp("ce3") / "model", num_labels=3, seed=1)


@pytest.fixture(scope="session")
def cranfield():
    corpus = read_jsonl(DATA / "cranfield" / "corpus.jsonl")
    queries = read_jsonl(DATA / "cranfield" / "queries.jsonl")
    return queries, corpus


@pytest.fixture(scope="session")
def cranfield_pairs(cranfield) -> list[tuple[str, str]]:
    """>= 300 (query, document) pairs of varied lengths, including documents far longer
    than 512 tokens (several abstracts joined) and a few empty strings."""
    queries, corpus = cranfield
    rng = random.Random(0)
    texts = [d["text"] for d in corpus]
    pairs = []
    for i in range(320):
        query = queries[i % len(queries)]["text"]
        kind = i % 8
        if kind == 0:
            doc = " ".join(rng.sample(texts, 5))  # > 512 tokens
        elif kind == 1:
            doc = texts[rng.randrange(len(texts))][:60]  # short
        else:
            doc = texts[rng.randrange(len(texts))]
        pairs.append((query, doc))
    pairs.append(("", "an empty query"))
    pairs.append(("an empty document", ""))
    pairs.append(("", ""))
    return pairs


@pytest.fixture(scope="session")
def ce(ce_dir):
    import crossrank

    return crossrank.CrossEncoder(str(ce_dir), max_length=512)


@pytest.fixture(scope="session")
def be(minilm_dir):
    """all-MiniLM-L6-v2 as crossrank's bi-encoder."""
    import crossrank

    return crossrank.BiEncoder(str(minilm_dir))
