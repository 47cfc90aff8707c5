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
from crossrank.datasets import Dataset, load_beir  # noqa: E402
from crossrank.train import CrossEncoderTrainer  # noqa: E402
from crossrank.training_data import mine_examples, split_queries  # noqa: E402

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
}


def split(name: str, data: Dataset | None = None) -> tuple[Dataset, Dataset]:
    """(train, test) queries of a shipped collection, as the demo model was trained."""
    data = data if data is not None else load_beir(SHARED / name)
    return split_queries(data, n_train=RECIPE["n_train"].get(name), seed=RECIPE["split_seed"])


def model_dir() -> Path:
    digest = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:10]
    return fixtures.CACHE / "models" / f"demo-ce-minilm-l6-{digest}"


def training_examples() -> tuple[list[tuple], dict[str, str]]:
    """The recipe's training examples (pairs for ``"bce"``, groups for ``"listwise"``) from
    the training queries of every collection, and what was mined per collection."""
    examples_of, counts = [], {}
    for name in RECIPE["collections"]:
        train, _ = split(name)
        examples = mine_examples(train, hard_negatives=RECIPE["first_stage"], depth=RECIPE["depth"],
                                 negatives_per_query=RECIPE["negatives_per_query"], positives=RECIPE["positives"],
                                 seed=RECIPE["seed"])
        counts[name] = repr(examples)
        examples_of += (examples.pairs() if RECIPE["loss"] == "bce" else
                        examples.groups(RECIPE["negatives_per_group"], RECIPE["max_positives_per_query"],
                                        RECIPE["seed"]))
    return examples_of, counts


def ensure_demo_cross_encoder(force: bool = False, show_progress_bar: bool = True) -> Path:
    """The trained model's directory, training it first when it is not cached."""
    target = model_dir()
    if (target / "training.json").is_file() and not force:
        return target
    base = fixtures.fetch_minilm()
    groups, counts = training_examples()
    print(f"training the demo cross-encoder ({len(groups)} groups (a positive and {RECIPE['negatives_per_group']} "
          f"negatives) from the training queries of {', '.join(RECIPE['collections'])}; cached in {target})")
    trainer = CrossEncoderTrainer(base, max_length=RECIPE["max_length"], learning_rate=RECIPE["learning_rate"],
                                  batch_size=RECIPE["batch_size"], epochs=RECIPE["epochs"], loss=RECIPE["loss"],
                                  dropout=RECIPE["dropout"], seed=RECIPE["seed"], show_progress_bar=show_progress_bar)
    start = time.perf_counter()
    history = trainer.fit(groups)
    seconds = time.perf_counter() - start
    trainer.save(target, overwrite=True)
    report = {"recipe": RECIPE, "examples": counts, "steps": sum(r.steps for r in history),
              "loss_per_epoch": [r.loss for r in history], "training_seconds": round(seconds, 1)}
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
