"""The BEIR loader, the evaluation harness, the randomization test and the CLI.

Reference numbers come from ../shared/README.md (computed independently of crossrank):
nDCG@10 / MRR@10 / R@100, BM25 k1 0.9 b 0.4 without stemming, all-MiniLM-L6-v2 cosine,
and RRF (k 60) of both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval
import scipy.stats

import crossrank
from crossrank import cli
from crossrank.datasets import load_beir
from crossrank.evaluation import (
    BM25Stage,
    DenseStage,
    FusionStage,
    RerankStage,
    RetrieverStage,
    evaluate,
    randomization_test,
)

from conftest import DATA

REFERENCE = {  # ../shared/README.md (where data/ was copied from)
    "cranfield": {"bm25": (0.328, 0.487, 0.685), "dense": (0.382, 0.538, 0.772), "hybrid": (0.408, 0.571, 0.771)},
    "cisi": {"bm25": (0.295, 0.548, 0.389)},
    "cacm": {"bm25": (0.371, 0.643, 0.575)},
}
SHORT = ["ndcg@10", "mrr@10", "recall@100"]


def write_beir(root: Path, corpus: list[dict], queries: list[dict], qrels: list[tuple[str, str, int]],
               nested: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    qrels_path = root / "qrels" / "test.tsv" if nested else root / "qrels.tsv"
    qrels_path.parent.mkdir(exist_ok=True)
    qrels_path.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{r}\n" for q, d, r in qrels))
    return root


@pytest.fixture()
def tiny(tmp_path) -> Path:
    corpus = [
        {"_id": "d1", "title": "Wings", "text": "lift of a swept wing at high speed"},
        {"_id": "d2", "title": "", "text": "boundary layer transition on a flat plate"},
        {"_id": "d3", "title": "Heat", "text": "heat transfer in hypersonic flow over a wing"},
        {"_id": "d4", "title": "", "text": "buckling of thin cylindrical shells"},
    ]
    queries = [{"_id": "q1", "text": "wing lift"}, {"_id": "q2", "text": "boundary layer"},
               {"_id": "q3", "text": "unjudged query"}]
    return write_beir(tmp_path / "tiny", corpus, queries, [("q1", "d1", 2), ("q1", "d3", 1), ("q2", "d2", 1)])


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return crossrank.BiEncoder(str(minilm_dir))


@pytest.mark.parametrize("name", ["cranfield", "cisi", "cacm"])
def test_bm25_stage_matches_the_reference_numbers(name):
    data = load_beir(DATA / name)
    result = evaluate([BM25Stage()], data, metrics=SHORT)
    got = tuple(round(result["bm25"].metrics[m], 3) for m in SHORT)
    assert got == REFERENCE[name]["bm25"]


def test_cranfield_pipeline_reference_numbers_and_trec_eval(minilm):
    data = load_beir(DATA / "cranfield")
    result = evaluate([BM25Stage(), DenseStage(minilm), FusionStage(["bm25", "dense"])], data,
                      metrics=[*SHORT, "map@100"])
    for stage in ("dense", "hybrid"):
        got = tuple(round(result[stage].metrics[m], 3) for m in SHORT)
        assert got == pytest.approx(REFERENCE["cranfield"][stage], abs=0.0015), stage
    # The table's numbers are trec_eval's on the stage's run.
    for stage in result.stages:
        want = pytrec_eval.RelevanceEvaluator(data.qrels, {"ndcg_cut.10", "map_cut.100"}).evaluate(stage.run)
        assert stage.metrics["ndcg@10"] == pytest.approx(np.mean([v["ndcg_cut_10"] for v in want.values()]), abs=1e-9)
        assert stage.metrics["map@100"] == pytest.approx(np.mean([v["map_cut_100"] for v in want.values()]), abs=1e-9)
        assert all(len(docs) <= 100 for docs in stage.run.values())
        assert stage.ms_per_query > 0
    assert result["hybrid"].total_ms_per_query >= result["dense"].ms_per_query + result["bm25"].ms_per_query
    assert result["hybrid"].metrics["ndcg@10"] > result["bm25"].metrics["ndcg@10"]
    changes = result.compare("bm25", "hybrid")
    assert changes["ndcg@10"]["p_value"] < 0.01 and changes["ndcg@10"]["better"] > changes["ndcg@10"]["worse"]
    assert changes["ndcg@10"]["delta"] == pytest.approx(
        result["hybrid"].metrics["ndcg@10"] - result["bm25"].metrics["ndcg@10"], abs=1e-12)


def test_rerank_stage_with_an_oracle_and_a_cross_encoder(ce_dir):
    data = load_beir(DATA / "cranfield")
    data = data.subset(list(data.queries)[:8])

    def oracle(query, texts):
        qid = next(q for q, t in data.queries.items() if t == query)
        rel = {data.text(d): r for d, r in data.qrels[qid].items()}
        return [rel.get(t, 0) for t in texts]

    ce = crossrank.CrossEncoder(str(ce_dir), max_length=256)
    result = evaluate([BM25Stage(), RerankStage(oracle, name="oracle"),
                       RerankStage(ce, name="ce", input="bm25", depth=20)], data, metrics=["ndcg@10", "recall@100"])
    bm25, best, ce_stage = result["bm25"], result["oracle"], result["ce"]
    # Same candidates, best possible order: recall unchanged, nDCG@10 at least BM25's.
    assert best.metrics["recall@100"] == bm25.metrics["recall@100"]
    assert best.metrics["ndcg@10"] > bm25.metrics["ndcg@10"]
    for qid, docs in ce_stage.run.items():
        top20 = sorted(bm25.run[qid].items(), key=lambda kv: (-kv[1], kv[0]))[:20]
        assert set(docs) == {d for d, _ in top20}
        ids = [d for d, _ in top20]
        want = ce.predict([(data.queries[qid], data.text(d)) for d in ids])
        np.testing.assert_allclose([docs[d] for d in ids], want, rtol=1e-6)
    assert ce_stage.pairs_per_second > 0 and bm25.pairs_per_second is None


def test_result_formats(tiny):
    data = load_beir(tiny)
    result = evaluate([BM25Stage(), BM25Stage(name="bm25-stem", stemmer="english")], data, metrics=["ndcg@10"])
    d = result.to_dict()
    assert [s["name"] for s in d["stages"]] == ["bm25", "bm25-stem"]
    assert set(d["stages"][0]) >= {"name", "metrics", "ms_per_query"} and "ndcg@10" in d["stages"][0]["metrics"]
    json.dumps(d)
    text = str(result)
    assert "bm25-stem" in text and "ndcg@10" in text
    assert result._repr_html_().startswith("<table>") and "bm25-stem" in result._repr_html_()
    assert result.to_markdown().count("\n") == 3


def test_beir_loader(tiny, tmp_path):
    data = load_beir(tiny)
    assert data.doc_ids == ["d1", "d2", "d3", "d4"]
    assert data.text("d1") == "Wings lift of a swept wing at high speed"
    assert data.text("d2") == "boundary layer transition on a flat plate"
    assert list(data.queries) == ["q1", "q2"], "only judged queries are evaluated"
    assert load_beir(tiny, title_field=False).text("d1") == "lift of a swept wing at high speed"

    corpus = [json.loads(line) for line in (tiny / "corpus.jsonl").read_text().splitlines()]
    queries = [json.loads(line) for line in (tiny / "queries.jsonl").read_text().splitlines()]
    nested = write_beir(tmp_path / "nested", corpus, queries, [("q1", "d1", 1)], nested=True)
    assert load_beir(nested).qrels == {"q1": {"d1": 1}}

    bad = write_beir(tmp_path / "bad", corpus, queries, [("q1", "d1", 1), ("q1", "d9", 1)])
    with pytest.raises(ValueError, match="'d9'"):
        load_beir(bad)
    assert load_beir(bad, missing_documents="drop").qrels == {"q1": {"d1": 1}}
    assert load_beir(bad, missing_documents="keep").qrels == {"q1": {"d1": 1, "d9": 1}}

    (bad / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n{"_id": "d2", "text": "y"\n')
    with pytest.raises(ValueError, match="corpus.jsonl, line 2: not valid JSON"):
        load_beir(bad)
    (bad / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n{"text": "y"}\n')
    with pytest.raises(ValueError, match="line 2: missing field '_id'"):
        load_beir(bad)
    (bad / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n{"_id": "d1", "text": "y"}\n')
    with pytest.raises(ValueError, match="line 2: duplicate document id 'd1'"):
        load_beir(bad)
    (bad / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n')
    (bad / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\tvery\n")
    with pytest.raises(ValueError, match="qrels.tsv, line 2: relevance 'very'"):
        load_beir(bad)
    (bad / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\n")
    with pytest.raises(ValueError, match="line 2: expected"):
        load_beir(bad)
    (bad / "corpus.jsonl").write_text("")
    with pytest.raises(ValueError, match="no documents"):
        load_beir(bad)
    with pytest.raises(FileNotFoundError, match="no dataset directory at .*nowhere"):
        load_beir(tmp_path / "nowhere")
    (bad / "queries.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="queries.jsonl"):
        load_beir(bad)


def test_harness_bad_input(tiny):
    data = load_beir(tiny)
    with pytest.raises(ValueError, match="depth"):
        evaluate([BM25Stage()], data, depth=0)
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate([BM25Stage()], data, metrics=["ndgc@10"])
    with pytest.raises(ValueError, match="no stages"):
        evaluate([], data)
    with pytest.raises(ValueError, match="unique"):
        evaluate([BM25Stage(), BM25Stage()], data)
    with pytest.raises(ValueError, match="no earlier stage"):
        evaluate([RerankStage(lambda q, d: [0.0] * len(d))], data)
    with pytest.raises(ValueError, match="'dense'"):
        evaluate([BM25Stage(), FusionStage(["bm25", "dense"])], data)
    with pytest.raises(ValueError, match=r"stage 'rerank', query 'q1' returned a non-finite score \(nan\) "
                                         r"for document 0"):
        evaluate([BM25Stage(), RerankStage(lambda q, d: [float("nan")] * len(d))], data)
    with pytest.raises(ValueError, match=r"stage 'rerank', query 'q1' returned scores of shape \(1,\) "
                                         r"for \d+ documents"):
        evaluate([BM25Stage(), RerankStage(lambda q, d: [1.0])], data)
    with pytest.raises(TypeError, match="pipeline stages must be BM25Stage, .* or RerankStage objects, got str"):
        evaluate(["bm25"], data)
    with pytest.raises(TypeError, match="model must be a CrossEncoder, a BiEncoder or a callable, got str"):
        RerankStage("not a model")
    with pytest.raises(ValueError, match="at least two"):
        FusionStage(["bm25"])
    with pytest.raises(ValueError, match="weights"):
        FusionStage(["bm25", "dense"], weights=[1.0, -1.0])
    # A ready-made retriever whose ids are positions works too.
    bm25 = crossrank.BM25(data.doc_texts)
    result = evaluate([RetrieverStage(bm25, name="positions"), BM25Stage()], data, metrics=["ndcg@10"])
    assert result["positions"].run == result["bm25"].run


def test_randomization_test_against_scipy():
    rng = np.random.default_rng(0)
    for n in (6, 12):  # exact in both
        a, b = rng.random(n), rng.random(n) + 0.2
        want = scipy.stats.permutation_test((a, b), lambda x, y: np.mean(x - y), permutation_type="samples",
                                            n_resamples=np.inf).pvalue
        assert randomization_test(a, b) == pytest.approx(want, abs=1e-12)
    a, b = rng.random(60), rng.random(60) + 0.05
    want = scipy.stats.permutation_test((a, b), lambda x, y: np.mean(x - y), permutation_type="samples",
                                        n_resamples=20000, random_state=1).pvalue
    assert randomization_test(a, b, n_resamples=20000) == pytest.approx(want, abs=0.02)
    assert randomization_test(a, a) == 1.0
    with pytest.raises(ValueError, match="need two equal-length, non-empty sequences"):
        randomization_test([], [])
    with pytest.raises(ValueError, match="per-query values must be finite"):
        randomization_test([1.0, np.nan], [1.0, 2.0])


def test_cli_eval(tiny, tmp_path, capsys):
    out = tmp_path / "out.json"
    assert cli.main(["eval", str(tiny), "--stages", "bm25", "--metrics", "ndcg@10,mrr@10", "--json", str(out),
                     "--no-progress"]) == 0
    report = json.loads(out.read_text())
    stage = report["stages"][0]
    assert stage["name"] == "bm25" and set(stage["metrics"]) == {"ndcg@10", "mrr@10"}
    assert stage["metrics"]["ndcg@10"] == pytest.approx(
        evaluate([BM25Stage()], load_beir(tiny), metrics=["ndcg@10"])["bm25"].metrics["ndcg@10"])
    assert "ndcg@10" in capsys.readouterr().out
    assert cli.main(["eval", str(tiny), "--stages", "bm25,ce", "--no-progress"]) == 2
    assert "--ce-model" in capsys.readouterr().err
    assert cli.main(["eval", str(tiny), "--stages", "bm25,hybrid", "--no-progress"]) == 2
    assert "the hybrid stage fuses bm25 and dense: list both before it" in capsys.readouterr().err
    assert cli.main(["eval", str(tiny / "missing"), "--stages", "bm25"]) == 2
    assert "crossrank eval: error: no dataset directory at" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        cli.main(["eval", str(tiny), "--depth", "0"])
    assert exited.value.code == 2 and "argument --depth: must be a positive integer, got 0" in capsys.readouterr().err


def test_cli_eval_with_models(tiny, tmp_path, minilm_dir, ce_dir):
    out = tmp_path / "out.json"
    assert cli.main(["eval", str(tiny), "--stages", "bm25,dense,hybrid,ce", "--dense-model", str(minilm_dir),
                     "--ce-model", str(ce_dir), "--depth", "3", "--json", str(out), "--no-progress"]) == 0
    stages = json.loads(out.read_text())["stages"]
    assert [s["name"] for s in stages] == ["bm25", "dense", "hybrid", "ce"]
    assert stages[3]["pairs_per_second"] > 0
    # Each stage's run rebuilt by hand (BM25 k1 0.9 b 0.4 top 3, cosine top 3, RRF k 60 of
    # both cut to 3, the cross-encoder's scores on those 3) and scored by trec_eval.
    data = load_beir(tiny)
    bm25 = crossrank.BM25(data.doc_texts, ids=data.doc_ids, k1=0.9, b=0.4)
    be, ce = crossrank.BiEncoder(str(minilm_dir)), crossrank.CrossEncoder(str(ce_dir))
    embeddings = be.encode(data.doc_texts).astype(np.float64)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    runs = {name: {} for name in ("bm25", "dense", "hybrid", "ce")}
    for qid, text in data.queries.items():
        ids, scores = bm25.search(text, top_k=3)
        runs["bm25"][qid] = {d: float(s) for d, s in zip(ids, scores)}
        q = be.encode([text])[0].astype(np.float64)
        cosine = embeddings @ q / np.linalg.norm(q)
        runs["dense"][qid] = {data.doc_ids[i]: float(cosine[i]) for i in np.argsort(-cosine)[:3]}
        rrf = {}
        for run in (runs["bm25"][qid], runs["dense"][qid]):
            for rank, d in enumerate(sorted(run, key=lambda d: (-run[d], d)), 1):
                rrf[d] = rrf.get(d, 0.0) + 1 / (60 + rank)
        hybrid = sorted(rrf, key=lambda d: (-rrf[d], d))[:3]
        runs["hybrid"][qid] = {d: rrf[d] for d in hybrid}
        runs["ce"][qid] = dict(zip(hybrid, map(float, ce.predict([(text, data.text(d)) for d in hybrid]))))
    evaluator = pytrec_eval.RelevanceEvaluator(data.qrels, {"ndcg_cut.10", "recip_rank", "map_cut.100", "recall.100"})
    for stage in stages:
        want = evaluator.evaluate(runs[stage["name"]])
        assert set(want) == {"q1", "q2"}
        for ours, theirs in (("ndcg@10", "ndcg_cut_10"), ("mrr@10", "recip_rank"), ("map@100", "map_cut_100"),
                             ("recall@100", "recall_100")):
            assert stage["metrics"][ours] == pytest.approx(np.mean([v[theirs] for v in want.values()]), abs=1e-9), \
                (stage["name"], ours)
    assert stages[3]["metrics"]["ndcg@10"] < 1.0  # the fixture's random head misorders: not a trivial 1.0


def test_cli_rerank(ce_dir, tmp_path):
    ce = crossrank.CrossEncoder(str(ce_dir))
    docs = ["lift of a swept wing", "boundary layers", "heat transfer on wings", ""]
    lines = [json.dumps({"qid": "q1", "query": "wing lift", "documents": docs, "ids": ["a", "b", "c", "d"]}),
             json.dumps({"query": "boundary", "documents": docs[:2]}),
             json.dumps({"query": "nothing", "documents": []})]
    script = Path(sys.executable).parent / "crossrank"
    assert script.exists(), "the console script is installed"
    proc = subprocess.run([str(script), "rerank", "--model", str(ce_dir), "--top-k", "3"], input="\n".join(lines),
                          capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    want = ce.rank("wing lift", docs, top_k=3)
    assert rows[0]["qid"] == "q1" and "documents" not in rows[0]
    assert rows[0]["ids"] == [["a", "b", "c", "d"][r["corpus_id"]] for r in want]
    np.testing.assert_allclose(rows[0]["scores"], [r["score"] for r in want], rtol=1e-6)
    assert rows[1]["ids"] == [r["corpus_id"] for r in ce.rank("boundary", docs[:2])]
    assert rows[2] == {"query": "nothing", "ids": [], "scores": []}

    bad = subprocess.run([str(script), "rerank", "--model", str(ce_dir)], input=lines[0] + "\n{oops\n",
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "line 2" in bad.stderr
    assert len(bad.stdout.splitlines()) == 1
    help_text = subprocess.run([str(script), "eval", "--help"], capture_output=True, text=True, check=True).stdout
    for option in ("--stages", "--dense-model", "--ce-model", "--depth", "--metrics", "--json"):
        assert option in help_text
