"""Variants of the demo's learned last stage (benches/TRAINING.md, "Learned final stage by
weighted RRF"): HybridReranker fusions of a trained cross-encoder with BM25 and the dense
cosine, weights fitted on the training queries' hybrid top DEPTH, measured on the test
queries of cranfield, cisi and cacm with the paired randomization p-value against hybrid.

    python benches/learned_stage_variants.py MODEL_DIR [DEPTH]     # DEPTH 100 by default
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import numpy as np  # noqa: E402

import crossrank  # noqa: E402
from crossrank.datasets import load_beir  # noqa: E402
from crossrank.evaluation import BM25Stage, DenseStage, FusionStage, RerankStage, evaluate  # noqa: E402
from crossrank.reranking import HybridReranker  # noqa: E402
from crossrank.retrieval import fuse  # noqa: E402

import demo_model  # noqa: E402
import fixtures  # noqa: E402

model = sys.argv[1]
depth = int(sys.argv[2]) if len(sys.argv) > 2 else 100
bi = crossrank.BiEncoder(str(fixtures.fetch_minilm()))
ce = crossrank.CrossEncoder(model, max_length=128, cache_size=200000)
VARIANTS = {
  "rrf_fit": dict(first_stage=False, fusion="rrf", fit=True),
  "rrf_fit_fs": dict(first_stage=True, fusion="rrf", fit=True),
  "rrf_equal": dict(first_stage=False, fusion="rrf", fit=False),
  "wsum_fit_fs": dict(first_stage=True, fusion="weighted", fit=True),
}
for coll in demo_model.COLLECTIONS:
    data = load_beir(fixtures.DATA / coll)
    train, test = demo_model.split(coll, data)
    bm25 = crossrank.BM25(train.doc_texts, ids=train.doc_ids)
    texts = [train.text(d) for d in train.doc_ids]
    index = crossrank.DenseIndex(bi.encode(texts, batch_size=64), ids=train.doc_ids)
    row_of_text = {t: i for i, t in reversed(list(enumerate(texts)))}
    def hybrid(queries, bm25=bm25, index=index):
        sparse = bm25.search_batch(queries, top_k=100)
        dense = index.search(bi.encode(queries), top_k=100)
        return [list(fuse([s, d], "rrf")) for s, d in zip(sparse, dense)]
    qids = list(train.queries)
    runs = hybrid([train.queries[q] for q in qids])
    candidates = {q: run[:depth] for q, run in zip(qids, runs)}
    stages = [BM25Stage(), DenseStage(bi), FusionStage(["bm25", "dense"], name="hybrid"),
              RerankStage(ce, name="ce", input="hybrid"), FusionStage(["bm25", "dense", "ce"], name="rrf3")]
    for name, v in VARIANTS.items():
        r = HybridReranker(cross_encoder=ce, bm25=bm25, bi_encoder=bi, first_stage=v["first_stage"], fusion=v["fusion"])
        if v["fit"]:
            f = r.fit(train, candidates=candidates, embeddings=index)
            weights = {k: round(w, 2) for k, w in f["weights"].items()}
            print(coll, name, weights, round(f["initial_score"], 4), round(f["score"], 4), flush=True)
        table = index.embeddings
        def score(query, documents, r=r, hybrid=hybrid, train=train, table=table, row_of_text=row_of_text):
            rank_of_text = {}
            for rank, doc_id in enumerate(hybrid([query])[0]):
                rank_of_text.setdefault(train.text(doc_id), rank)
            fs = [-float(rank_of_text.get(d, len(rank_of_text))) for d in documents]
            ranking = r.rerank(query, documents, first_stage_scores=fs if r.first_stage else None,
                               embeddings=table[[row_of_text[d] for d in documents]])
            s = np.empty(len(documents), dtype=np.float32)
            for hit in ranking:
                s[hit["corpus_id"]] = hit["score"]
            return s
        stages.append(RerankStage(score, name=name, input="hybrid"))
    res = evaluate(stages, test, metrics=["ndcg@10"], depth=100)
    out = {s.name: round(s.metrics["ndcg@10"], 4) for s in res.stages}
    p = {s.name: round(res.compare("hybrid", s.name)["ndcg@10"]["p_value"], 3) for s in res.stages[3:]}
    print(coll, out, p, flush=True)
