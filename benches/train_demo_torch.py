"""The demo model's recipe (scripts/demo_model.py) trained by PyTorch instead of crossrank:
same groups, same shuffling, listwise softmax loss, AdamW with Trainer's groups, linear
warmup/decay, clipping 1.0, dropout (train mode). Prints nDCG@10 on the same test queries
with the cross-encoder re-ranking the hybrid top-100, to tell what the recipe can do from
what crossrank's trainer does with it.

    python benches/train_demo_torch.py
"""

from __future__ import annotations

import math
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from crossrank import BiEncoder, CrossEncoder  # noqa: E402
from crossrank.evaluation import BM25Stage, DenseStage, FusionStage, RerankStage, evaluate  # noqa: E402

import demo_model  # noqa: E402
import fixtures  # noqa: E402

R = demo_model.RECIPE


def main() -> None:
    torch.manual_seed(R["seed"])
    torch.set_num_threads(2)
    groups, _ = demo_model.training_examples()
    base = str(fixtures.fetch_minilm())
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, hidden_dropout_prob=R["dropout"])
    model.train()
    named = list(model.named_parameters())
    no_decay = [p for n, p in named if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in named if not (n.endswith("bias") or "LayerNorm" in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=R["learning_rate"])
    bs = R["batch_size"]
    steps = math.ceil(len(groups) / bs) * R["epochs"]
    sched = get_linear_schedule_with_warmup(opt, math.ceil(0.1 * steps), steps)
    rng, start, losses = random.Random(R["seed"]), time.perf_counter(), []
    for _ in range(R["epochs"]):
        order = list(range(len(groups)))
        rng.shuffle(order)
        for at in range(0, len(order), bs):
            batch = [groups[i] for i in order[at: at + bs]]
            queries = [q for q, p, negs in batch for _ in range(1 + len(negs))]
            docs = [d for q, p, negs in batch for d in [p, *negs]]
            enc = tok(queries, docs, truncation="longest_first", max_length=R["max_length"], padding=True,
                      return_tensors="pt")
            scores = model(**enc).logits[:, 0].split([1 + len(negs) for _, _, negs in batch])
            loss = torch.stack([torch.logsumexp(s, 0) - s[0] for s in scores]).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            losses.append(loss.item())
    seconds = time.perf_counter() - start
    print(f"PyTorch: {steps} steps in {seconds / 60:.1f} min, mean loss {sum(losses) / len(losses):.4f}")
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        ce = CrossEncoder(tmp, max_length=R["max_length"])
        bi = BiEncoder(base)
        for name in R["collections"]:
            _, test = demo_model.split(name)
            res = evaluate([BM25Stage(), DenseStage(bi), FusionStage(["bm25", "dense"], name="hybrid"),
                            RerankStage(ce, name="cross-encoder", input="hybrid")],
                           test, metrics=["ndcg@10"], depth=100)
            print(name, {s.name: round(s.metrics["ndcg@10"], 4) for s in res.stages}, flush=True)


if __name__ == "__main__":
    main()
