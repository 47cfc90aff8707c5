"""Serving throughput and latency: `crossrank serve` against the same model called
in-process, and against infinity-emb (the CPU rerank/embedding server peer), side by side.

Workload: BM25 top-100 Cranfield candidates for the first 10 queries, each request one query
with its 100 documents; 16 requests per level (the 10 queries, then the first 6 again), sent
by 1, 4 and 16 concurrent clients. The reranker is the cross-encoder fixture (real
all-MiniLM-L6-v2 encoder + seeded head), max_length 512, batch_size 32, 2 threads everywhere.
Systems alternate within each run; pairs/s and per-request p50/p99 latency are medians over
the runs.

- in-process: `CrossEncoder.rank` from N Python threads sharing one model (GIL released).
- crossrank serve: `crossrank serve` subprocess, TEI `POST /rerank` over HTTP (httpx).
- infinity: `infinity_emb v2` subprocess (torch engine, CPU), `POST /rerank`; needs a venv
  of its own (it pins numpy<2 and sentence-transformers<4):
      python3 -m venv .cache/infinity-venv
      .cache/infinity-venv/bin/pip install "infinity-emb[server,torch]==0.0.78" torch==2.15.0
  Skipped (and said so) when that venv is missing; `--infinity PATH` names another.

    python benches/bench_server.py [--runs 3] [--clients 1,4,16]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benches"))

import fixtures  # noqa: E402

THREADS = 2
os.environ.setdefault("RAYON_NUM_THREADS", str(THREADS))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))

import httpx  # noqa: E402
from bench_cross_encoder import bm25_candidates  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

import crossrank  # noqa: E402

MAX_LENGTH = 512
REQUESTS = 16
INFINITY = ROOT / ".cache" / "infinity-venv" / "bin" / "infinity_emb"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, seconds: float = 600) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url}: not healthy after {seconds} s")


def start_crossrank(model: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "crossrank", "serve", "--model", str(model), "--port", "0",
                             "--max-length", str(MAX_LENGTH), "--batch-size", "32"],
                            stdout=subprocess.PIPE, text=True)
    match = re.search(r"serving on (http://\S+)", proc.stdout.readline())
    if not match:
        proc.kill()
        raise RuntimeError("crossrank serve did not start")
    wait_healthy(match.group(1), proc)
    return proc, match.group(1)


def start_infinity(binary: Path, model: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([str(binary), "v2", "--model-id", str(model), "--engine", "torch", "--device", "cpu",
                             "--batch-size", "32", "--port", str(port), "--host", "127.0.0.1",
                             "--no-bettertransformer"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "INFINITY_ANONYMOUS_USAGE_STATS": "0"})
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc)
    return proc, url


def run_level(call, requests: list[tuple[str, list[str]]], clients: int) -> tuple[float, list[float], list]:
    """pairs/s over all requests and each request's latency, `clients` at a time."""
    def timed(request):
        start = time.perf_counter()
        scores = call(*request)
        return time.perf_counter() - start, scores

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(timed, requests))
    elapsed = time.perf_counter() - start
    pairs = sum(len(docs) for _, docs in requests)
    return pairs / elapsed, [r[0] for r in results], [r[1] for r in results]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--infinity", type=Path, default=INFINITY)
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]

    info = crossrank.runtime_info()
    print(f"# host: {info.get('cpu_features')} | f32 {info.get('f32_kernel')} | int8 {info.get('int8_kernel')} "
          f"| threads {THREADS}")
    _, model = fixtures.ensure_default_fixtures()
    workload = bm25_candidates(10)
    requests = (workload * 2)[:REQUESTS]

    library = crossrank.CrossEncoder(str(model), max_length=MAX_LENGTH)

    def in_process(query, docs):
        ranked = library.rank(query, docs, batch_size=32)
        return [r["score"] for r in sorted(ranked, key=lambda r: r["corpus_id"])]

    systems = {"in-process": in_process}
    procs = []
    proc, url = start_crossrank(model)
    procs.append(proc)
    http = httpx.Client(timeout=600, limits=httpx.Limits(max_connections=64))

    def crossrank_serve(query, docs):
        body = http.post(url + "/rerank", json={"query": query, "texts": docs}).json()
        return [r["score"] for r in sorted(body, key=lambda r: r["index"])]

    systems["crossrank serve"] = crossrank_serve
    if args.infinity.exists():
        proc, infinity_url = start_infinity(args.infinity, model)
        procs.append(proc)

        def infinity(query, docs):
            body = http.post(infinity_url + "/rerank", json={"query": query, "documents": docs,
                                                              "model": str(model)}).json()
            return [r["relevance_score"] for r in sorted(body["results"], key=lambda r: r["index"])]

        systems["infinity"] = infinity
    else:
        print(f"# infinity-emb: not installed at {args.infinity} (see the docstring); skipped")

    try:
        # Warm-up, and the scores each system gives for the same requests.
        reference = None
        for name, call in systems.items():
            scores = [call(*r) for r in workload[:2]]
            if reference is None:
                reference = scores
            else:
                diff = max(abs(a - b) for s, t in zip(scores, reference) for a, b in zip(s, t))
                rho = min(spearmanr(s, t).statistic for s, t in zip(scores, reference))
                print(f"# {name} vs in-process: max |score diff| {diff:.2e}, min Spearman {rho:.6f}")
        results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
        for run in range(args.runs):
            for clients in levels:
                for name, call in systems.items():
                    pairs_per_s, latencies, _ = run_level(call, requests, clients)
                    latencies.sort()
                    p50 = statistics.median(latencies)
                    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
                    results.setdefault((name, clients), []).append((pairs_per_s, p50, p99))
                    print(f"run {run + 1} clients {clients:2d} {name:16s} {pairs_per_s:7.1f} pairs/s "
                          f"p50 {p50:6.2f} s p99 {p99:6.2f} s", flush=True)
    finally:
        http.close()
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=60)

    print(f"\n| clients | system | pairs/s | vs in-process | p50 s | p99 s |  (medians of {args.runs} runs)")
    print("|---|---|---|---|---|---|")
    for clients in levels:
        base = statistics.median(r[0] for r in results[("in-process", clients)])
        for name in systems:
            rows = results[(name, clients)]
            rate = statistics.median(r[0] for r in rows)
            print(f"| {clients} | {name} | {rate:.1f} | {rate / base:.3f}x | "
                  f"{statistics.median(r[1] for r in rows):.2f} | {statistics.median(r[2] for r in rows):.2f} |")


if __name__ == "__main__":
    main()
