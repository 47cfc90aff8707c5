"""The wheel users `pip install`: built by maturin, installed into a fresh venv with only its
declared dependencies (no torch, no transformers, no Rust), where it predicts, ranks,
encodes, runs BM25, metrics and the CLI; abi3, with a manylinux tag that auditwheel
confirms. And `import crossrank` itself imports none of the heavy optional packages."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ["torch", "transformers", "sentence_transformers", "matplotlib", "langchain_core", "llama_index",
         "httpx", "cohere", "openai", "ray", "pandas", "scipy", "sklearn"]

SMOKE = r"""
import importlib.util, json, sys
import crossrank
from crossrank import BM25, BiEncoder, CrossEncoder, metrics

ce_dir, be_dir = sys.argv[1], sys.argv[2]
ce = CrossEncoder(ce_dir, max_length=128)
scores = ce.predict([("what is lift", "lift is a force"), ("what is lift", "paris is in france")])
ranked = ce.rank("what is lift", ["lift is a force", "paris is in france"])
embeddings = BiEncoder(be_dir).encode(["lift is a force", "wings"])
bm25 = BM25(["lift is a force on a wing", "paris is in france"])
hits = bm25.search("wing lift", top_k=2)
ndcg = metrics.evaluate({"q": {"d1": 1}}, {"q": {"d1": 2.0, "d2": 1.0}}, ["ndcg@10"])
print(json.dumps({
    "scores": [float(s) for s in scores],
    "ranked": [r["corpus_id"] for r in ranked],
    "dim": int(embeddings.shape[1]),
    "bm25": [int(i) for i in hits[0]],
    "ndcg": ndcg["ndcg@10"],
    "heavy": [m for m in ("torch", "transformers", "sentence_transformers") if importlib.util.find_spec(m)],
}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([str(Path(sys.executable).with_name("maturin")), "build", "--release", "--quiet", "--out", str(out)],
                   cwd=ROOT, check=True, timeout=1800)
    wheels = list(out.glob("crossrank-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_is_abi3_and_manylinux(wheel):
    # One wheel for every CPython >= 3.9.
    assert "-cp39-abi3-" in wheel.name
    report = subprocess.run([str(Path(sys.executable).with_name("auditwheel")), "show", str(wheel)],
                            capture_output=True, text=True, check=True).stdout
    report = " ".join(report.split())
    assert re.search(r'is consistent with the following platform tag: "manylinux_2_\d+_\w+"', report), report


def test_wheel_in_a_fresh_venv(wheel, tmp_path, ce_dir, minilm_dir):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, timeout=900)
    out = subprocess.run([str(python), "-c", SMOKE, str(ce_dir), str(minilm_dir)], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["heavy"] == [], "the fresh venv must not have torch or transformers"
    # rank() gets the documents in predict()'s order, so corpus ids index the predict scores.
    assert len(got["scores"]) == 2 and got["ranked"] == sorted(range(2), key=lambda i: -got["scores"][i])
    # BM25 returns only the documents sharing a term with the query.
    assert got["dim"] == 384 and got["bm25"] == [0] and got["ndcg"] == pytest.approx(1.0)
    # The same scores as the development build here.
    import crossrank

    expected = crossrank.CrossEncoder(str(ce_dir), max_length=128).predict(
        [("what is lift", "lift is a force"), ("what is lift", "paris is in france")])
    assert got["scores"] == pytest.approx([float(s) for s in expected], abs=1e-6)
    help_text = subprocess.run([str(env_dir / "bin" / "crossrank"), "--help"], capture_output=True, text=True,
                               check=True).stdout
    assert "eval" in help_text and "rerank" in help_text and "serve" in help_text


def test_import_pulls_no_heavy_package():
    code = "import sys, crossrank, json; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in %r)))"
    out = subprocess.run([sys.executable, "-c", code % (HEAVY,)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
