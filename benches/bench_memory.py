"""Peak memory of cross-encoder scoring: 1,000 vs 10,000 candidates.

Each size runs in a fresh process that loads the model, measures its resident set, then
scores N (query, document) pairs (Cranfield documents, cycled) at max_length 512 and
reports the peak resident set (ru_maxrss) above the loaded baseline. Inputs are
tokenized and run in chunks, so the peak should not grow with N beyond the inputs and
outputs themselves.

    python benches/bench_memory.py [--sizes 1000 10000] [--max-length 512]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))


def child(n: int, max_length: int) -> None:
    import crossrank

    import fixtures

    corpus = [json.loads(line) for line in open(fixtures.DATA / "cranfield" / "corpus.jsonl")]
    docs = [d["text"] for d in corpus]
    ce = crossrank.CrossEncoder(str(fixtures.ensure_default_fixtures()[1]), max_length=max_length)
    pairs = [("what similarity laws must be obeyed", docs[i % len(docs)]) for i in range(n)]
    ce.predict(pairs[:8])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scores = ce.predict(pairs, batch_size=32)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    input_bytes = sum(len(q) + len(d) for q, d in pairs)
    print(json.dumps({"n": n, "baseline_mb": before / 1024, "peak_mb": after / 1024,
                      "growth_mb": (after - before) / 1024, "outputs_mb": scores.nbytes / 2**20,
                      "input_text_mb": input_bytes / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.max_length)
        return
    print("| candidates | RSS after load (MB) | peak RSS while scoring (MB) | growth (MB) | outputs (MB) "
          "| input text (MB) |")
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--child", str(n), "--max-length", str(args.max_length)],
                             check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {n} | {r['baseline_mb']:.0f} | {r['peak_mb']:.0f} | {r['growth_mb']:.1f} | {r['outputs_mb']:.2f} "
              f"| {r['input_text_mb']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
