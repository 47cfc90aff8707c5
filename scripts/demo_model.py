"""The demo's trained cross-encoder.

No trained cross-encoder is reachable offline, so `make demo` makes one: the real
all-MiniLM-L6-v2 encoder plus a new classification head, fine-tuned with crossrank's own
trainer (`crossrank.train`, Rust, no PyTorch) on the training queries of cranfield, cisi and
cacm (seeded splits: cranfield 150 training / 75 test queries, cisi and cacm two thirds /
one third). The demo then evaluates it on the test queries only.

    python scripts/demo_model.py [--force]     # train (or find in the cache) and print the path

The model is cached under `.cache/models/` in a directory named after a hash of `RECIPE`,
so changing the recipe trains a new one. `training.json` beside the weights records the
recipe, the examples, the loss per epoch and the training time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crossrank import BiEncoder  # noqa: E402
from crossrank.datasets import Dataset, load_beir  # noqa: E402
from crossrank.train import DISTILLATION, CrossEncoderTrainer  # noqa: E402
from crossrank.training_data import distillation_groups, mine_examples, pseudo_queries, split_queries  # noqa: E402

import fixtures  # noqa: E402

SHARED = fixtures.DATA
COLLECTIONS = ("cranfield", "cisi", "cacm")
# Changing any value retrains (the cache directory is named after its hash). Why these
# values: benches/TRAINING.md, "Recipe".
RECIPE = {
    "base": "all-MiniLM-L6-v2",
    "collections": list(COLLECTIONS),
    "split_seed": 0,
    "n_train": {"cranfield": 150},
    "first_stage": "bm25",
    "depth": 100,
    "positives": "retrieved",
    "negatives_per_query": 16,
    "negatives_per_group": 4,
    "max_positives_per_query": 12,
    "loss": "listwise",
    "learning_rate": 2e-4,
    "epochs": 1,
    "batch_size": 16,
    "max_length": 128,
    "dropout": 0.1,
    "seed": 0,
    # An intermediate stage before the judged queries (benches/TRAINING.md, "Ablation"):
    # None, or a dict as in INTERMEDIATE_EXAMPLE.
    "intermediate": None,
}
INTERMEDIATE_EXAMPLE = {
    "collections": list(COLLECTIONS),
    "kinds": ["title", "inverse_cloze"],
    "max_documents": 200,      # per collection, seeded sample
    "negatives": 4,            # BM25-mined, from the pseudo-query's top `depth`
    "depth": 30,
    "loss": "listwise",        # or "kl" / "margin_mse": distillation from the bi-encoder
    "teacher_scale": 20.0,     # the teacher's scores: scale * cosine (kl, margin_mse)
    "learning_rate": 2e-4,
}


def split(name: str, data: Dataset | None = None) -> tuple[Dataset, Dataset]:
    """(train, test) queries of a shipped collection, as the demo model was trained."""
    data = data if data is not None else load_beir(SHARED / name)
    return split_queries(data, n_train=RECIPE["n_train"].get(name), seed=RECIPE["split_seed"])


def model_dir(recipe: dict | None = None) -> Path:
    recipe = RECIPE if recipe is None else recipe
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
    return fixtures.CACHE / "models" / f"demo-ce-minilm-l6-{digest}"


def training_examples(recipe: dict | None = None) -> tuple[list[tuple], dict[str, str]]:
    """The recipe's training examples (pairs for ``"bce"``, groups for ``"listwise"``) from
    the training queries of every collection, and what was mined per collection."""
    recipe = RECIPE if recipe is None else recipe
    examples_of, counts = [], {}
    for name in recipe["collections"]:
        train, _ = split(name)
        examples = mine_examples(train, hard_negatives=recipe["first_stage"], depth=recipe["depth"],
                                 negatives_per_query=recipe["negatives_per_query"], positives=recipe["positives"],
                                 seed=recipe["seed"])
        counts[name] = repr(examples)
        examples_of += (examples.pairs() if recipe["loss"] == "bce" else
                        examples.groups(recipe["negatives_per_group"], recipe["max_positives_per_query"],
                                        recipe["seed"]))
    return examples_of, counts


def pseudo_query_examples(stage: dict, seed: int) -> tuple[list[tuple], dict[str, str]]:
    """An intermediate stage's examples: pseudo-queries (titles, inverse-cloze sentences) of
    every collection's corpus with BM25-mined negatives, no judgments used; as listwise
    groups, or with the bi-encoder's scaled cosine as the teacher's scores (``"kl"``)."""
    examples_of, counts = [], {}
    teacher = None
    if stage["loss"] in DISTILLATION:
        bi = BiEncoder(str(fixtures.fetch_minilm()))
        scale = stage["teacher_scale"]

        def teacher(query: str, documents: list[str]) -> list[float]:
            q = bi.encode([query], normalize_embeddings=True)
            d = bi.encode(documents, batch_size=32, normalize_embeddings=True)
            return [scale * float(v) for v in (d @ q[0])]
    for name in stage["collections"]:
        examples = pseudo_queries(load_beir(SHARED / name), kinds=stage["kinds"],
                                  max_documents=stage["max_documents"], negatives_per_query=stage["negatives"],
                                  depth=stage["depth"], seed=seed)
        counts[name] = repr(examples)
        examples_of += (examples.groups(seed=seed) if teacher is None else
                        distillation_groups(examples, teacher, seed=seed))
    return examples_of, counts


def _fit(base: Path, examples: list[tuple], loss: str, learning_rate: float, recipe: dict,
         show_progress_bar: bool, what: str) -> tuple[CrossEncoderTrainer, list, float]:
    print(f"training the demo cross-encoder, {what}: {len(examples)} groups")
    trainer = CrossEncoderTrainer(base, max_length=recipe["max_length"], learning_rate=learning_rate,
                                  batch_size=recipe["batch_size"], epochs=recipe["epochs"], loss=loss,
                                  dropout=recipe["dropout"], seed=recipe["seed"], show_progress_bar=show_progress_bar)
    start = time.perf_counter()
    history = trainer.fit(examples)
    return trainer, history, time.perf_counter() - start


def _summary(history: list) -> dict:
    """What training.json records of one stage's epochs."""
    return {"steps": sum(r.steps for r in history), "loss_per_epoch": [r.loss for r in history]}


def ensure_demo_cross_encoder(force: bool = False, show_progress_bar: bool = True,
                              recipe: dict | None = None) -> Path:
    """The trained model's directory, training it first when it is not cached."""
    recipe = RECIPE if recipe is None else recipe
    target = model_dir(recipe)
    if (target / "training.json").is_file() and not force:
        return target
    print(f"training the demo cross-encoder (cached in {target})")
    base, report, seconds = fixtures.fetch_minilm(), {"recipe": recipe}, 0.0
    stage = recipe.get("intermediate")
    if stage:
        examples, counts = pseudo_query_examples(stage, recipe["seed"])
        trainer, history, took = _fit(base, examples, stage["loss"], stage["learning_rate"], recipe,
                                      show_progress_bar, "intermediate stage on pseudo-queries of the corpora")
        # Beside the final model's directory, which saving that model replaces whole.
        base, seconds = target.with_name(target.name + "-intermediate"), seconds + took
        trainer.save(base, overwrite=True)
        report["intermediate"] = {"examples": counts, **_summary(history), "training_seconds": round(took, 1)}
    groups, counts = training_examples(recipe)
    trainer, history, took = _fit(base, groups, recipe["loss"], recipe["learning_rate"], recipe, show_progress_bar,
                                  f"on the training queries of {', '.join(recipe['collections'])}")
    seconds += took
    trainer.save(target, overwrite=True)
    report.update({"examples": counts, **_summary(history), "training_seconds": round(seconds, 1)})
    (target / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"trained in {seconds / 60:.1f} min ({report['steps']} steps); loss per epoch "
          + ", ".join(f"{loss:.4f}" for loss in report["loss_per_epoch"]))
    return target


def training_report(path: Path) -> dict:
    return json.loads((path / "training.json").read_text())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="train again even when cached")
    print(ensure_demo_cross_encoder(force=parser.parse_args().force))
