"""Batching, threads, pickling and progress bars."""

from __future__ import annotations

import pickle
import threading

import numpy as np

import crossrank


def test_batching_does_not_change_scores(ce, cranfield_pairs):
    pairs = cranfield_pairs[:64]
    reference = ce.predict(pairs, batch_size=1)
    for batch_size in (7, 32, 64):
        assert np.abs(ce.predict(pairs, batch_size=batch_size) - reference).max() <= 1e-5
    budgeted = crossrank.CrossEncoder(ce.model_name_or_path, max_length=512, max_batch_tokens=600)
    assert np.abs(budgeted.predict(pairs) - reference).max() <= 1e-5


def test_eight_threads_share_one_model(ce, cranfield_pairs):
    chunks = [cranfield_pairs[i * 12 : (i + 1) * 12] for i in range(8)]
    serial = [ce.predict(chunk, batch_size=4) for chunk in chunks]
    results = [None] * 8
    errors = []

    def work(i):
        try:
            results[i] = ce.predict(chunks[i], batch_size=4)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got, want in zip(results, serial):
        assert np.array_equal(got, want)


def test_pickle_round_trip(ce, minilm_dir, cranfield_pairs):
    pairs = cranfield_pairs[:10]
    clone = pickle.loads(pickle.dumps(ce))
    assert type(clone) is crossrank.CrossEncoder and clone.max_length == ce.max_length
    assert np.array_equal(clone.predict(pairs), ce.predict(pairs))
    be = crossrank.BiEncoder(str(minilm_dir), max_length=64, pooling="cls")
    be_clone = pickle.loads(pickle.dumps(be))
    assert be_clone.pooling == "cls" and be_clone.max_length == 64
    assert np.array_equal(be_clone.encode(["a b c"]), be.encode(["a b c"]))


def test_progress_bar(ce, minilm_dir, capfd):
    ce.predict([("q", "d")] * 5, batch_size=2, show_progress_bar=True)
    err = capfd.readouterr().err
    assert "Scoring" in err and "5/5" in err
    ce.predict([("q", "d")] * 5, batch_size=2, show_progress_bar=False)
    assert capfd.readouterr().err == ""
    crossrank.BiEncoder(str(minilm_dir)).encode(["a", "b"], show_progress_bar=True)
    assert "Encoding" in capfd.readouterr().err


def test_plain_python_outputs(ce):
    ranked = ce.rank("lift", ["lift on a wing", "heat in slabs"], top_k=1)
    assert len(ranked) == 1 and set(ranked[0]) == {"corpus_id", "score"}
    assert type(ranked[0]["score"]) is float and type(ranked[0]["corpus_id"]) is int
    as_list = ce.predict([("a", "b"), ("c", "d")], convert_to_numpy=False)
    assert isinstance(as_list, list) and all(type(x) is float for x in as_list)


def test_inputs_larger_than_a_chunk_keep_their_order(ce):
    """predict/rank copy and score inputs 1024 at a time; order must survive the chunks."""
    unique = [("lift on wings", "lift"), ("heat", "heat in slabs"), ("a", "b c d"), ("flow", ""),
              ("boundary layer", "the boundary layer over a plate"), ("", "x"), ("shock waves", "shock")]
    want = ce.predict(unique)
    n = 2 * 1024 + 100
    got = ce.predict([unique[i % 7] for i in range(n)], batch_size=64)
    assert np.allclose(got, want[np.arange(n) % 7], atol=1e-5)
    docs = [unique[i % 7][1] for i in range(n)]
    ranked = ce.rank("lift on wings", docs, top_k=5)
    alone = ce.predict([("lift on wings", d) for d in docs[:7]])
    best = int(np.argmax(alone))
    assert ranked[0]["corpus_id"] == best and ranked[1]["corpus_id"] == best + 7
