"""Every kernel path the host supports can be forced with CROSSRANK_ISA, is reported by
runtime_info(), and gives the same scores: float32 within float rounding; int8 equal among
the kernels that store the FFN output projections alike (their integer sums are identical),
and within int8's own tolerance of float32 on every kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import crossrank

FEATURES = crossrank.runtime_info()["cpu_features"]
# The levels this host can run, lowest first; a level the CPU lacks cannot be forced.
LEVELS = (["scalar"] + ["avx2"] * ("avx2" in FEATURES) + ["avxvnni"] * ("avxvnni" in FEATURES)
          + ["avx512"] * ("avx512f" in FEATURES))

CHILD = r"""
import json, sys
import crossrank
ce_dir, be_dir = sys.argv[1:3]
pairs = [("what is the boundary layer", "the boundary layer on a flat plate thickens downstream " * 20),
         ("heat transfer in slabs", "heat conduction in composite slabs has been solved"),
         ("shock wave", "")]
ce = crossrank.CrossEncoder(ce_dir, max_length=256)
ce8 = crossrank.CrossEncoder(ce_dir, max_length=256, precision="int8")
be8 = crossrank.BiEncoder(be_dir, precision="int8")
print(json.dumps({
    "info": crossrank.runtime_info(),
    "f32": ce.predict(pairs, activation_fn="identity").tolist(),
    "int8": ce8.predict(pairs, activation_fn="identity").tolist(),
    "int8_embeddings": be8.encode([p[1] for p in pairs]).tolist(),
}))
"""


def run_with(isa: str, ce_dir, minilm_dir) -> dict:
    env = {**os.environ, "CROSSRANK_ISA": isa}
    out = subprocess.run([sys.executable, "-c", CHILD, str(ce_dir), str(minilm_dir)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def results(ce_dir, minilm_dir):
    return {isa: run_with(isa, ce_dir, minilm_dir) for isa in LEVELS}


def test_each_forced_path_is_reported(results):
    assert results["scalar"]["info"]["f32_kernel"] == "generic"
    assert results["scalar"]["info"]["int8_kernel"] == "portable"
    assert results["scalar"]["info"]["isa_cap"] == "scalar"
    assert results["scalar"]["info"]["int8_ffn_output"] == "int8x2"
    if "avx2" in results:
        assert results["avx2"]["info"]["f32_kernel"] == "avx2"
        assert results["avx2"]["info"]["int8_kernel"] == "avx2"
        # The AVX2 kernel is not twice as fast as f32: two int8 terms would cost more.
        assert results["avx2"]["info"]["int8_ffn_output"] == "float32"
    if "avxvnni" in results:  # AVX2 float32 kernels, the 256-bit VNNI int8 kernel
        assert results["avxvnni"]["info"]["f32_kernel"] == "avx2"
        assert results["avxvnni"]["info"]["int8_kernel"] == "avxvnni"
    if "avx512" in results:
        assert results["avx512"]["info"]["f32_kernel"] == "avx512"


def test_every_path_gives_the_same_scores(results):
    reference = results["scalar"]
    for isa, result in results.items():
        assert np.abs(np.array(result["f32"]) - reference["f32"]).max() <= 1e-4, isa
        # int8 is close to float32 but really quantized (not a silent float32 run).
        f32, int8 = np.array(result["f32"]), np.array(result["int8"])
        assert 0 < np.abs(f32 - int8).max() <= 0.1, isa
        same_policy = [other for other in results.values()
                       if other["info"]["int8_ffn_output"] == result["info"]["int8_ffn_output"]]
        for other in same_policy:
            # Equal integer sums; only the f32 element-wise kernels differ.
            assert np.abs(np.array(result["int8"]) - other["int8"]).max() <= 1e-3, isa
            assert np.abs(np.array(result["int8_embeddings"]) - other["int8_embeddings"]).max() <= 1e-3, isa


def test_an_avx2_host_runs_a_simd_int8_kernel():
    info = crossrank.runtime_info()
    assert info["threads"] >= 1 and info["arch"]
    if info["arch"] == "x86_64" and "avx2" in info["cpu_features"] and not info["isa_cap"]:
        assert info["int8_kernel"] in ("avx2", "avxvnni", "avx512vnni") and info["int8_fast"]
    else:
        assert info["int8_fast"] == (info["int8_kernel"] != "portable")
