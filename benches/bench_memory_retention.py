"""Does memory held after scoring grow with the number of candidates?

Each size runs in a fresh process at a short max_length (16, so that large N are quick):
after a warm-up call it records the resident set (VmRSS), scores N pairs in one
``predict`` call, and prints how much the resident set grew. Allocator retention shows
up here as a constant; memory kept per candidate would grow with N.

    python benches/bench_memory_retention.py [--sizes 1000 10000 40000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))


def vm_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def child(n: int) -> None:
    import crossrank

    import fixtures

    corpus = [json.loads(line) for line in open(fixtures.DATA / "cranfield" / "corpus.jsonl")]
    docs = [d["text"] for d in corpus]
    ce = crossrank.CrossEncoder(str(fixtures.ensure_default_fixtures()[1]), max_length=16)
    pairs = [("what similarity laws must be obeyed", docs[i % len(docs)]) for i in range(n)]
    ce.predict(pairs[:8])
    before = vm_rss_mb()
    scores = ce.predict(pairs, batch_size=32)
    print(json.dumps({"n": n, "rss_growth_mb": vm_rss_mb() - before, "outputs_mb": scores.nbytes / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 40000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    print("| candidates | resident set growth after scoring (MB) | outputs (MB) |")
    print("|---|---|---|")
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--child", str(n)], check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {n} | {r['rss_growth_mb']:.1f} | {r['outputs_mb']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
