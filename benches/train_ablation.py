"""Issue 19's ablation: which training stages make the demo's cross-encoder help on held-out
queries (benches/TRAINING.md, "Ablation").

Each variant is `scripts/demo_model.py`'s recipe with one change; the model is trained the
way `make demo` trains it (and cached under the same name, so a variant that becomes the
demo's recipe is not trained twice), then measured on the test queries of cranfield, cisi
and cacm: the cross-encoder re-ranking the hybrid top-100, its intermediate model alone
(if any), and RRF of BM25, dense and the cross-encoder, beside BM25, dense and hybrid, with
the paired randomization p-value against hybrid.

    python benches/train_ablation.py u1 pq kd      # variants in order; one JSON line each
                                                   # appended to /tmp/crossrank-ablation.jsonl

Variants: u1 (the judged training queries only), pq (an intermediate listwise stage on
pseudo-queries of the corpora first), kd (the intermediate stage distilled from the
bi-encoder's cosine with the KL loss instead), kdm (the same with the margin-MSE loss).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import crossrank  # noqa: E402
from crossrank.evaluation import BM25Stage, DenseStage, FusionStage, RerankStage, evaluate  # noqa: E402

import demo_model  # noqa: E402
import fixtures  # noqa: E402

VARIANTS = {
    "u1": dict(demo_model.RECIPE, intermediate=None),
    "pq": dict(demo_model.RECIPE, intermediate=dict(demo_model.INTERMEDIATE_EXAMPLE)),
    "kd": dict(demo_model.RECIPE, intermediate=dict(demo_model.INTERMEDIATE_EXAMPLE, loss="kl")),
    "kdm": dict(demo_model.RECIPE, intermediate=dict(demo_model.INTERMEDIATE_EXAMPLE, loss="margin_mse")),
}


def measure(name: str, recipe: dict) -> dict:
    start = time.perf_counter()
    path = demo_model.ensure_demo_cross_encoder(recipe=recipe, show_progress_bar=False)
    report = demo_model.training_report(path)
    bi = crossrank.BiEncoder(str(fixtures.fetch_minilm()))
    models = {"ce": crossrank.CrossEncoder(str(path), max_length=recipe["max_length"])}
    intermediate = path.with_name(path.name + "-intermediate")
    if recipe["intermediate"] and intermediate.is_dir():
        models["intermediate"] = crossrank.CrossEncoder(str(intermediate), max_length=recipe["max_length"])
    row = {"variant": name, "recipe": recipe, "host": platform.processor() or platform.machine(),
           "training_seconds": report["training_seconds"], "ndcg@10": {}, "p_vs_hybrid": {}}
    for collection in demo_model.COLLECTIONS:
        _, test = demo_model.split(collection)
        stages = [BM25Stage(), DenseStage(bi), FusionStage(["bm25", "dense"], name="hybrid")]
        stages += [RerankStage(model, name=key, input="hybrid") for key, model in models.items()]
        stages.append(FusionStage(["bm25", "dense", "ce"], name="rrf_bm25_dense_ce"))
        result = evaluate(stages, test, metrics=["ndcg@10"], depth=100, show_progress_bar=False)
        row["ndcg@10"][collection] = {s.name: round(s.metrics["ndcg@10"], 4) for s in result.stages}
        row["p_vs_hybrid"][collection] = {
            s.name: round(result.compare("hybrid", s.name)["ndcg@10"]["p_value"], 4)
            for s in result.stages if s.name not in ("bm25", "dense", "hybrid")}
        print(name, collection, row["ndcg@10"][collection], row["p_vs_hybrid"][collection], flush=True)
    row["seconds"] = round(time.perf_counter() - start)
    return row


if __name__ == "__main__":
    for name in sys.argv[1:] or list(VARIANTS):
        row = measure(name, VARIANTS[name])
        print(json.dumps(row), flush=True)
        with open("/tmp/crossrank-ablation.jsonl", "a") as out:
            out.write(json.dumps(row) + "\n")
