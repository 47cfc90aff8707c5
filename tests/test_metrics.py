"""crossrank.metrics.evaluate against trec_eval (pytrec-eval-terrier) on random runs
with ties, unjudged documents, graded judgments and queries without relevant documents."""

from __future__ import annotations

import math
import random

import pytest
import pytrec_eval

from crossrank.metrics import evaluate

CUTS = [1, 3, 5, 10, 20, 100]


def random_case(seed: int, n_queries: int = 250):
    rng = random.Random(seed)
    qrels, run = {}, {}
    for q in range(n_queries):
        qid = f"q{q}"
        docs = [f"d{i}" for i in range(rng.randint(1, 60))]
        judged = rng.sample(docs, rng.randint(1, len(docs)))
        # Graded; every tenth query has no relevant document at all.
        qrels[qid] = {d: (0 if q % 10 == 0 else rng.choice([0, 0, 1, 2, 3])) for d in judged}
        retrieved = rng.sample(docs, rng.randint(0, len(docs)))
        # Few distinct scores, so ties are common and trec_eval's tie rule matters.
        run[qid] = {d: float(rng.choice([0.1, 0.5, 0.5, 1.0, 2.0, rng.random()])) for d in retrieved}
    return qrels, run


def cut(scores: dict[str, float], k: int) -> dict[str, float]:
    """The top k in trec_eval's order: score descending, ties by document id descending."""
    ranked = sorted(scores.items(), key=lambda kv: kv[0], reverse=True)
    ranked.sort(key=lambda kv: -kv[1])
    return dict(ranked[:k])


@pytest.mark.parametrize("seed", [0, 1])
def test_equal_to_trec_eval(seed):
    qrels, run = random_case(seed)
    measures = {f"{m}.{','.join(map(str, CUTS))}" for m in ("ndcg_cut", "map_cut", "recall", "P")}
    measures |= {"recip_rank", "ndcg", "map", "success.1,5,10"}
    want = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    names = [f"{m}@{k}" for m in ("ndcg", "map", "recall", "precision") for k in CUTS]
    names += ["mrr", "ndcg", "map", "hit_rate@1", "hit_rate@5", "hit_rate@10"]
    got = evaluate(qrels, run, names, per_query=True)
    pairs = {"mrr": "recip_rank", "ndcg": "ndcg", "map": "map"}
    for k in CUTS:
        pairs |= {f"ndcg@{k}": f"ndcg_cut_{k}", f"map@{k}": f"map_cut_{k}", f"recall@{k}": f"recall_{k}",
                  f"precision@{k}": f"P_{k}"}
    pairs |= {f"hit_rate@{k}": f"success_{k}" for k in (1, 5, 10)}
    checked = 0
    for ours, theirs in pairs.items():
        for qid, values in want.items():
            assert got[ours][qid] == pytest.approx(values[theirs], abs=1e-9), (ours, qid)
            checked += 1
    assert checked >= 200 * len(pairs)

    # mrr@k is trec_eval's recip_rank on the run cut at k.
    for k in (1, 10):
        cut_run = {qid: cut(scores, k) for qid, scores in run.items()}
        want_k = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut_run)
        got_k = evaluate(qrels, run, [f"mrr@{k}"], per_query=True)[f"mrr@{k}"]
        for qid, values in want_k.items():
            assert got_k[qid] == pytest.approx(values["recip_rank"], abs=1e-9)


def test_means_count_missing_queries_as_zero():
    qrels = {"a": {"d1": 1}, "b": {"d1": 1}}
    run = {"a": {"d1": 3.0, "d2": 1.0}}
    assert evaluate(qrels, run, ["ndcg@10", "mrr@10"]) == {"ndcg@10": 0.5, "mrr@10": 0.5}
    assert evaluate(qrels, run, "recall@1", per_query=True) == {"recall@1": {"a": 1.0, "b": 0.0}}


def test_trec_files_equal_dicts(tmp_path):
    qrels, run = random_case(3, n_queries=20)
    qrels_file, run_file = tmp_path / "qrels.txt", tmp_path / "run.txt"
    qrels_file.write_text("".join(f"{q} 0 {d} {r}\n" for q, docs in qrels.items() for d, r in docs.items()))
    run_file.write_text("".join(f"{q} Q0 {d} {i + 1} {s!r} test\n" for q, docs in run.items()
                                for i, (d, s) in enumerate(docs.items())))
    metrics = ["ndcg@10", "map@100", "recall@100", "precision@10", "mrr@10"]
    assert evaluate(str(qrels_file), run_file, metrics) == evaluate(qrels, run, metrics)


def test_bad_input(tmp_path):
    qrels = {"q": {"d": 1}}
    with pytest.raises(ValueError, match='unknown metric "ndgc@10"'):
        evaluate(qrels, {"q": {"d": 1.0}}, ["ndgc@10"])
    with pytest.raises(ValueError, match="positive integer"):
        evaluate(qrels, {"q": {"d": 1.0}}, ["ndcg@0"])
    with pytest.raises(ValueError, match="finite"):
        evaluate(qrels, {"q": {"d": math.nan}}, ["ndcg@10"])
    with pytest.raises(ValueError, match="no queries"):
        evaluate({}, {}, ["ndcg@10"])
    with pytest.raises(TypeError, match=r"run must map query ids \(str\) to \{document id \(str\): value\} dicts"):
        evaluate(qrels, {"q": {"d": "high"}}, ["ndcg@10"])
    with pytest.raises(TypeError, match="run must be a dict or the path of a TREC run file, got list"):
        evaluate(qrels, [("q", "d", 1.0)], ["ndcg@10"])
    with pytest.raises(FileNotFoundError, match="missing.run: no such file"):
        evaluate(qrels, tmp_path / "missing.run", ["ndcg@10"])
    bad = tmp_path / "bad.run"
    bad.write_text("q Q0 d 1 0.5 tag\nq Q0 e 2 high tag\n")
    with pytest.raises(ValueError, match="line 2: score 'high'|line 2: score \"high\""):
        evaluate(qrels, bad, ["ndcg@10"])
    bad.write_text("q Q0 d 1 0.5 tag\nq Q0 d 2 0.4 tag\n")
    with pytest.raises(ValueError, match="line 2: document \"d\" appears twice"):
        evaluate(qrels, bad, ["ndcg@10"])
