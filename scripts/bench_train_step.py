"""Seconds per training step, crossrank (Rust) vs PyTorch on the CPU, on the same batch.

One batch of 16 (query, relevant document) pairs from Cranfield (the longest documents, so
the batch fills max_length), the MiniLM-L6 cross-encoder fixture, 2 threads each. A step is
what transformers' Trainer does: forward, BCE loss, backward, clip_grad_norm_(1.0), AdamW
(Trainer's parameter groups), scheduler step, zero_grad. No dropout on either side (the
Rust binary sets dropout 0; PyTorch runs the model in eval mode). Medians of STEPS timed steps
after one untimed step, PyTorch and Rust alternating per max_length.

    cargo build --release --example train_step_bench
    .venv/bin/python scripts/bench_train_step.py [--max-lengths 128 256] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.optimization import get_linear_schedule_with_warmup

ROOT = Path(__file__).resolve().parent.parent


def cranfield_batch(data: Path, size: int) -> list[tuple[str, str, float]]:
    queries = {}
    for line in (data / "queries.jsonl").open():
        q = json.loads(line)
        queries[q["_id"]] = q["text"]
    docs = {}
    for line in (data / "corpus.jsonl").open():
        d = json.loads(line)
        docs[d["_id"]] = d["text"]
    pairs = []
    for line in list((data / "qrels.tsv").open())[1:]:
        qid, did, _ = line.split("\t")
        if qid in queries and did in docs:
            pairs.append((queries[qid], docs[did]))
    pairs.sort(key=lambda p: -len(p[1]))
    # Distinct documents, alternating labels.
    seen, batch = set(), []
    for q, d in pairs:
        if d not in seen:
            seen.add(d)
            batch.append((q, d, float(len(batch) % 2 == 0)))
        if len(batch) == size:
            break
    return batch


def torch_steps(model_dir: str, batch, max_length: int, steps: int) -> dict:
    torch.set_num_threads(2)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    try:
        from transformers import Trainer

        decay = set(Trainer.get_decay_parameter_names(None, model))
    except ImportError:
        decay = {n for n, _ in model.named_parameters() if "bias" not in n and "LayerNorm" not in n}
    params = dict(model.named_parameters())
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for n, p in params.items() if n in decay], "weight_decay": 0.01},
            {"params": [p for n, p in params.items() if n not in decay], "weight_decay": 0.0},
        ],
        lr=2e-5,
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, steps + 1)
    enc = tokenizer(
        [q for q, _, _ in batch],
        [d for _, d, _ in batch],
        padding=True,
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    labels = torch.tensor([label for _, _, label in batch]).view(-1, 1)
    fb, opt, total = [], [], []
    for step in range(steps + 1):
        t0 = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(model(**enc).logits, labels)
        loss.backward()
        t1 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        t2 = time.perf_counter()
        if step > 0:
            fb.append(t1 - t0)
            opt.append(t2 - t1)
            total.append(t2 - t0)
    return {
        "padded_length": enc["input_ids"].shape[1],
        "step_seconds": total,
        "forward_backward_seconds": fb,
        "optimizer_seconds": opt,
    }


def rust_steps(binary: Path, model_dir: str, batch, max_length: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.json"
        path.write_text(json.dumps(batch))
        env = dict(os.environ, RAYON_NUM_THREADS="2")
        out = subprocess.run(
            [str(binary), model_dir, str(path), str(max_length), str(steps)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / ".cache/models/minilm-l6-ce-seed0"))
    parser.add_argument("--data", default=str(ROOT / "data" / "cranfield"))
    parser.add_argument("--rust-bin", default=str(ROOT / "target/release/examples/train_step_bench"))
    parser.add_argument("--max-lengths", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()

    batch = cranfield_batch(Path(args.data), args.batch_size)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {len(batch)}")
    rows = []
    for max_length in args.max_lengths:
        t = torch_steps(args.model, batch, max_length, args.steps)
        r = rust_steps(Path(args.rust_bin), args.model, batch, max_length, args.steps)
        assert t["padded_length"] == r["padded_length"], (t, r)
        med = lambda d, k: statistics.median(d[k])  # noqa: E731
        rows.append(
            (
                max_length,
                t["padded_length"],
                med(r, "step_seconds"),
                med(t, "step_seconds"),
                med(r, "forward_backward_seconds"),
                med(t, "forward_backward_seconds"),
                med(r, "optimizer_seconds"),
                med(t, "optimizer_seconds"),
            )
        )
        print(json.dumps({"max_length": max_length, "rust": r, "torch": t}))
    print()
    print("| max_length | padded | crossrank s/step | PyTorch s/step | PyTorch time / crossrank time "
          "| fwd+bwd (crossrank / PyTorch) | optimizer (crossrank / PyTorch) |")
    print("|---|---|---|---|---|---|---|")
    for ml, pad, rs, ts, rfb, tfb, ro, to in rows:
        print(f"| {ml} | {pad} | {rs:.2f} | {ts:.2f} | {ts / rs:.2f}x | {rfb:.2f} / {tfb:.2f} | {ro:.3f} / {to:.3f} |")


if __name__ == "__main__":
    main()
