"""The core's warnings reach Python's `logging` (pyo3-log), under the "crossrank" logger,
so an application filters and formats them as its own: a classification head created
for a checkpoint that has none (as transformers warns), and a CROSSRANK_ISA value that is
not understood."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import crossrank


def test_a_newly_initialized_head_is_a_logged_warning(minilm_dir, caplog):
    caplog.set_level(logging.WARNING, logger="crossrank")
    # all-MiniLM-L6-v2 is an encoder (with BERT's pooler) and no head: the trainer adds one.
    crossrank._core.Trainer(str(minilm_dir), num_examples=4)
    records = [r for r in caplog.records if r.name.startswith("crossrank")]
    assert records, "no warning logged under the crossrank logger"
    message = records[-1].getMessage()
    assert records[-1].levelno == logging.WARNING
    assert "newly initialized" in message and "classifier.weight" in message and "classifier.bias" in message
    assert str(minilm_dir.name) in message


def test_a_trained_head_logs_nothing(ce_dir, caplog):
    caplog.set_level(logging.WARNING, logger="crossrank")
    crossrank._core.Trainer(str(ce_dir), num_examples=4)
    assert not [r for r in caplog.records if "newly initialized" in r.getMessage()]


CHILD = """
import logging
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
import crossrank
crossrank.runtime_info()
"""


def test_an_unknown_isa_value_is_a_logged_warning():
    env = {**os.environ, "CROSSRANK_ISA": "bogus"}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if "CROSSRANK_ISA" in line]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("WARNING crossrank.")
    assert '"bogus" not understood' in lines[0]
