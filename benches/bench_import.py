"""Import cost: `python -X importtime -c "import crossrank"` against the peers' imports, each
in a fresh interpreter, runs interleaved, medians reported. Also lists the heavy optional
packages that `import crossrank` pulled in (there should be none).

    python benches/bench_import.py [--runs 15]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import re
import statistics
import subprocess
import sys

PEERS = ["sentence_transformers", "flashrank", "fastembed"]
HEAVY = ["torch", "transformers", "sentence_transformers", "matplotlib", "langchain_core", "llama_index",
         "httpx", "cohere", "openai", "ray", "pandas", "scipy", "sklearn"]


def import_ms(module: str) -> float:
    """The cumulative import time of `module` as `-X importtime` reports it, in ms."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                         capture_output=True, text=True, check=True).stderr
    # "import time:  self [us] | cumulative | imported package"; the top-level line of the module.
    line = [ln for ln in out.splitlines() if re.search(rf"\|\s*{re.escape(module)}\s*$", ln)][-1]
    return int(line.split("|")[1]) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    modules = ["crossrank"] + [m for m in PEERS if importlib.util.find_spec(m)]
    print(f"python {platform.python_version()}, {platform.machine()}; modules: {', '.join(modules)}")
    times: dict[str, list[float]] = {m: [] for m in modules}
    for _ in range(args.runs):
        for module in modules:
            times[module].append(import_ms(module))
    code = "import sys, crossrank, json; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in %r)))"
    pulled = json.loads(subprocess.run([sys.executable, "-c", code % (HEAVY,)], capture_output=True, text=True,
                                       check=True).stdout)
    print(f"\nmedian of {args.runs} runs, each in a fresh interpreter\n")
    print("| module | import ms (median) | min | max |")
    print("|---|---|---|---|")
    for module in modules:
        t = times[module]
        print(f"| {module} | {statistics.median(t):.1f} | {min(t):.1f} | {max(t):.1f} |")
    print(f"\nheavy optional packages imported by `import crossrank`: {pulled or 'none'}")


if __name__ == "__main__":
    main()
