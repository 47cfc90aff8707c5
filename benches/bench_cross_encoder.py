"""Cross-encoder throughput: crossrank (float32 and int8) vs sentence-transformers, ONNX Runtime
(float32, and int8 by `quantize_dynamic` per channel) and OpenVINO (float32), side by side, in
one process. The CPU features and the kernels crossrank picked (`crossrank.runtime_info()`) are
printed first: every table says which ISA it ran on.

Workload: BM25 (crossrank.BM25, Lucene idf, k1=0.9, b=0.4; results up to session 3 used bm25s
with the same parameters) top-100 candidates for the first
N Cranfield queries, scored with the cross-encoder fixture (real all-MiniLM-L6-v2 encoder
+ seeded head) at max_length 512, batch_size 32, on 2 threads. Each query's 100 pairs are
one predict() call; runs alternate between the two libraries and medians are reported.

    python benches/bench_cross_encoder.py [--queries 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import fixtures  # noqa: E402

THREADS = 2
os.environ.setdefault("RAYON_NUM_THREADS", str(THREADS))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from sentence_transformers import CrossEncoder as STCrossEncoder  # noqa: E402

import crossrank  # noqa: E402

INT8 = "crossrank (int8)"
ORT_INT8 = "onnxruntime int8 (length-sorted)"
APPROXIMATE = (INT8, ORT_INT8)
DATA = fixtures.DATA / "cranfield"


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def bm25_candidates(num_queries: int, depth: int = 100) -> list[tuple[str, list[str]]]:
    corpus = read_jsonl(DATA / "corpus.jsonl")
    queries = read_jsonl(DATA / "queries.jsonl")[:num_queries]
    texts = [(d.get("title", "") + " " + d["text"]).strip() for d in corpus]
    retriever = crossrank.BM25(texts, k1=0.9, b=0.4)
    hits = retriever.search_batch([q["text"] for q in queries], top_k=depth)
    return [(q["text"], [texts[j] for j in ids]) for q, (ids, _) in zip(queries, hits)]


def encoder_flops(lengths: list[int], config: dict) -> float:
    """Multiply-adds x 2 of a full encoder pass over sequences of these lengths:
    QKV + output projections, the feed-forward block, and attention (QK^T and PV)."""
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    per_layer = sum(2 * n * (4 * h * h + 2 * h * i) + 4 * n * n * h for n in lengths)
    return float(per_layer * layers)


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """The machine's practical f32 limit: a large square matmul in PyTorch, same threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def onnx_export(model_dir: Path, tokenizer) -> Path:
    """The checkpoint exported by torch.onnx.export (cached under .cache/onnx)."""
    path = ROOT / ".cache" / "onnx" / (Path(model_dir).name + ".onnx")
    if not path.is_file():
        from transformers import AutoModelForSequenceClassification

        path.parent.mkdir(parents=True, exist_ok=True)
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
        enc = tokenizer(["a query"], ["a document"], return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        torch.onnx.export(
            model, (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]), str(path),
            input_names=names, output_names=["logits"], opset_version=17, dynamo=False,
            dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names}, "logits": {0: "batch"}},
        )
    return path


def onnx_int8_export(model_dir: Path, tokenizer) -> Path:
    """ONNX Runtime's dynamic int8 quantization of the export (per channel, as its docs
    recommend for transformers), cached beside it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = onnx_export(model_dir, tokenizer)
    path = source.with_name(source.stem + "-int8.onnx")
    if not path.is_file():
        quantize_dynamic(str(source), str(path), per_channel=True, weight_type=QuantType.QInt8)
    return path


def batched_scorer(tokenizer, run, max_length: int, batch_size: int, length_sorted: bool):
    """Feeds `run(feed) -> logits` batches tokenized by the HF fast tokenizer, in input order
    (as fastembed / FlashRank do) or sorted by length first (then restored)."""

    def score(pairs):
        order = list(range(len(pairs)))
        if length_sorted:
            lengths = [len(ids) for ids in tokenizer([q for q, _ in pairs], [d for _, d in pairs],
                                                     truncation="longest_first", max_length=max_length)["input_ids"]]
            order.sort(key=lambda i: -lengths[i])
        out = np.empty(len(pairs), dtype=np.float32)
        for start in range(0, len(pairs), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer([pairs[i][0] for i in idx], [pairs[i][1] for i in idx], truncation="longest_first",
                            max_length=max_length, padding=True, return_tensors="np")
            feed = {n: enc[n].astype(np.int64) for n in ("input_ids", "attention_mask", "token_type_ids")}
            out[idx] = run(feed)[:, 0]
        return out

    return score


def openvino_scorer(model_dir: Path, max_length: int, batch_size: int):
    """OpenVINO (CPU plugin, f32 inference precision, latency hint, same threads) on the ONNX
    export, length-sorted batches."""
    import openvino as ov
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    core = ov.Core()
    compiled = core.compile_model(str(onnx_export(model_dir, tokenizer)), "CPU", {
        "INFERENCE_NUM_THREADS": THREADS, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
    })
    request = compiled.create_infer_request()
    return batched_scorer(tokenizer, lambda feed: request.infer(feed)[compiled.output(0)], max_length, batch_size, True)


def onnx_scorer(model_dir: Path, max_length: int, batch_size: int, length_sorted: bool, int8: bool = False):
    """ONNX Runtime on the checkpoint exported by torch.onnx.export (cached under .cache/onnx),
    tokenized with the HF fast tokenizer (see `batched_scorer`); `int8`: the export quantized by
    `quantize_dynamic`."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    path = onnx_int8_export(model_dir, tokenizer) if int8 else onnx_export(model_dir, tokenizer)
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return batched_scorer(tokenizer, lambda feed: session.run(["logits"], feed)[0], max_length, batch_size,
                          length_sorted)


def timed_run(score, workload) -> tuple[float, list[float], list[np.ndarray]]:
    latencies, outputs = [], []
    for query, docs in workload:
        pairs = [(query, d) for d in docs]
        start = time.perf_counter()
        outputs.append(np.asarray(score(pairs), dtype=np.float32))
        latencies.append(time.perf_counter() - start)
    return sum(latencies), latencies, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime runs")
    parser.add_argument("--no-int8", action="store_true", help="skip crossrank's precision=\"int8\" runs")
    parser.add_argument("--no-openvino", action="store_true", help="skip the OpenVINO run")
    parser.add_argument("--skip", default="", help="comma-separated substrings of system names to leave out "
                                                   "(e.g. 'input order' to drop ONNX Runtime fed in input order)")
    parser.add_argument("--fixture", choices=sorted(fixtures.BENCH_FIXTURES), default="minilm-l6",
                        help="which cross-encoder fixture: the 6-layer MiniLM one, its layers repeated to 12, "
                             "or a TinyBERT-sized random one (2 layers, hidden 128)")
    args = parser.parse_args()

    torch.set_num_threads(THREADS)
    info = crossrank.runtime_info()
    print(f"host: {info['arch']}, CPU features {' '.join(info['cpu_features']) or 'none'}; crossrank kernels: "
          f"f32 {info['f32_kernel']}, int8 {info['int8_kernel']}; CROSSRANK_ISA={info['isa_cap'] or 'unset'}",
          flush=True)
    model_dir = fixtures.BENCH_FIXTURES[args.fixture]()
    workload = bm25_candidates(args.queries)
    n_pairs = sum(len(docs) for _, docs in workload)

    ours = crossrank.CrossEncoder(str(model_dir), max_length=args.max_length)
    ours_int8 = crossrank.CrossEncoder(str(model_dir), max_length=args.max_length, precision="int8")
    st = STCrossEncoder(str(model_dir), max_length=args.max_length, device="cpu")
    identity = torch.nn.Identity()
    systems = {
        "crossrank": lambda pairs: ours.predict(pairs, batch_size=args.batch_size, activation_fn="identity"),
        "sentence-transformers": lambda pairs: st.predict(pairs, batch_size=args.batch_size, activation_fn=identity),
    }
    if not args.no_int8:
        systems[INT8] = lambda pairs: ours_int8.predict(pairs, batch_size=args.batch_size, activation_fn="identity")
    if not args.no_onnx:
        systems["onnxruntime (input order)"] = onnx_scorer(model_dir, args.max_length, args.batch_size, False)
        systems["onnxruntime (length-sorted)"] = onnx_scorer(model_dir, args.max_length, args.batch_size, True)
        systems[ORT_INT8] = onnx_scorer(model_dir, args.max_length, args.batch_size, True, int8=True)
    if not args.no_openvino:
        systems["openvino (length-sorted)"] = openvino_scorer(model_dir, args.max_length, args.batch_size)
    for pattern in filter(None, args.skip.split(",")):
        for name in [n for n in systems if pattern in n and n not in ("crossrank", "sentence-transformers")]:
            del systems[name]
    warm = [(workload[0][0], workload[0][1][:8])]
    for score in systems.values():
        timed_run(score, warm)

    totals = {name: [] for name in systems}
    latencies = {name: [] for name in systems}
    outputs = {}
    for run in range(args.runs):
        for name, score in systems.items():
            total, lat, out = timed_run(score, workload)
            totals[name].append(total)
            latencies[name].extend(lat)
            outputs[name] = out
            print(f"run {run + 1}/{args.runs} {name:>28}: {n_pairs / total:7.1f} pairs/s", flush=True)

    config = json.loads((Path(model_dir) / "config.json").read_text())
    lengths = [len(ids) for query, docs in workload for ids in ours.tokenize([(query, d) for d in docs])]
    flops = encoder_flops(lengths, config)
    peak = matmul_gflops()
    exact_peers = [name for name in systems if name != "crossrank" and name not in APPROXIMATE]
    diff = max(np.abs(a - b).max() for name in exact_peers for a, b in zip(outputs["crossrank"], outputs[name]))
    print(f"\nfixture {args.fixture}: {args.queries} Cranfield queries x BM25 top-100 = {n_pairs} pairs, "
          f"max_length {args.max_length}, batch_size {args.batch_size}, {THREADS} threads, {args.runs} runs; "
          f"max |logit diff| vs crossrank = {diff:.2e}")
    print(f"mean tokens per pair {np.mean(lengths):.0f}; {flops / 1e9:.0f} GFLOP per run; "
          f"large f32 matmul (torch, {THREADS} threads): {peak:.0f} GFLOP/s")
    print(f"ISA: {' '.join(info['cpu_features'])} "
          f"(crossrank f32 kernels {info['f32_kernel']}, int8 kernel {info['int8_kernel']})")
    print("| system | pairs/s (median) | ms/query p50 | GFLOP/s | ratio vs sentence-transformers "
          "| ratio vs crossrank f32 |")
    print("|---|---|---|---|---|---|")
    ours_rate = n_pairs / statistics.median(totals["crossrank"])
    base = n_pairs / statistics.median(totals["sentence-transformers"])
    for name in systems:
        rate = n_pairs / statistics.median(totals[name])
        p50 = statistics.median(latencies[name]) * 1000
        gflops = flops / statistics.median(totals[name]) / 1e9
        print(f"| {name} | {rate:.1f} | {p50:.0f} | {gflops:.0f} | {rate / base:.2f}x | {rate / ours_rate:.2f}x |")
    print(f"| torch 2048^3 matmul | | | {peak:.0f} | | |")
    ours_total = statistics.median(totals["crossrank"])
    for name in exact_peers:
        print(f"crossrank vs {name}: {statistics.median(totals[name]) / ours_total:.2f}x pairs/s, "
              f"{statistics.median(latencies[name]) / statistics.median(latencies['crossrank']):.2f}x "
              "lower p50 latency")
    if INT8 in systems:
        rho = [spearmanr(a, b).statistic for a, b in zip(outputs["crossrank"], outputs[INT8])]
        drift = max(np.abs(a - b).max() for a, b in zip(outputs["crossrank"], outputs[INT8]))
        print(f"int8 vs float32 crossrank: per-query Spearman min {min(rho):.4f} / median {np.median(rho):.4f}, "
              f"max |logit diff| {drift:.3f} (logit std {np.std(np.concatenate(outputs['crossrank'])):.3f}); "
              "int8 vs sentence-transformers fp32: "
              f"{statistics.median(totals['sentence-transformers']) / statistics.median(totals[INT8]):.2f}x pairs/s")
    if ORT_INT8 in systems:
        rho = [spearmanr(a, b).statistic for a, b in zip(outputs["crossrank"], outputs[ORT_INT8])]
        print(f"onnxruntime int8 vs float32: per-query Spearman min {min(rho):.4f} / median {np.median(rho):.4f}")


if __name__ == "__main__":
    main()
