"""Ctrl-C during a long call: predict / rank / compare / encode raise KeyboardInterrupt
within about one batch (the call no longer sits inside Rust until it finishes), and the
model answers normally afterwards. Each case runs in a subprocess that gets a real SIGINT
mid-call."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

CHILD = r"""
import sys, time
import crossrank

kind, ce_dir, be_dir = sys.argv[1:4]
text = "the boundary layer on a flat plate thickens downstream of the leading edge " * 60
query = "what is the boundary layer"
ce = crossrank.CrossEncoder(ce_dir, max_length=512)
be = crossrank.BiEncoder(be_dir)
calls = {
    "predict": lambda: ce.predict([(query, text)] * 3000, batch_size=8),
    "rank": lambda: ce.rank(query, [text] * 3000, batch_size=8),
    "compare": lambda: ce.compare(query, [(text, text)] * 3000, batch_size=8),
    "encode": lambda: be.encode([text] * 6000, batch_size=8),
}
print("ready", flush=True)
start = time.monotonic()
try:
    calls[kind]()
    print("finished", flush=True)
except KeyboardInterrupt:
    print(f"interrupted {time.monotonic() - start:.1f}", flush=True)
print("predict", float(ce.predict((query, "the boundary layer"))), flush=True)
print("encode", be.encode(["the boundary layer"]).shape, flush=True)
"""


@pytest.mark.parametrize("kind", ["predict", "rank", "compare", "encode"])
def test_ctrl_c_interrupts_a_long_call(ce_dir, minilm_dir, kind):
    child = subprocess.Popen([sys.executable, "-c", CHILD, kind, str(ce_dir), str(minilm_dir)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(1.5)  # well inside the call: uninterrupted it runs for minutes
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("interrupted"), out
    # Within about one batch of the signal (generous: batches of 8 take well under 2 s).
    assert float(lines[0].split()[1]) < 30
    assert lines[1].startswith("predict ") and 0.0 < float(lines[1].split()[1]) < 1.0
    assert lines[2] == "encode (1, 384)"
