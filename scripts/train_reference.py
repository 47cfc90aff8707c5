"""PyTorch reference for crossrank's training core (src/train), used by tests/train_parity.rs.

``steps SPEC.json OUT_DIR``
    Runs the training steps of SPEC with transformers' BertForSequenceClassification (eval
    mode: no dropout, gradients on), the loss, ``clip_grad_norm_``, ``torch.optim.AdamW`` with
    transformers' Trainer parameter groups (``Trainer.get_decay_parameter_names``) and
    ``get_linear_schedule_with_warmup``, stepping optimizer then scheduler as Trainer does.
    Writes OUT_DIR/reference.safetensors (``step{k}.input_ids``, ``step{k}.grad.{name}`` before
    clipping, ``step{k}.param.{name}`` after step k, and ``step{k}.grad64.{name}``: the same
    gradient computed in float64 from the same weights, stored as float32, as the exact value
    both float32 implementations are measured against) and OUT_DIR/reference.json (losses,
    grad norms, learning rates, the decay group, versions).

``logits MODEL_DIR PAIRS.json OUT.json MAX_LENGTH``
    Loads MODEL_DIR with AutoModelForSequenceClassification as a user would and writes the
    logits of the pairs, with the config it read.

SPEC: {"model", "max_length", "loss": "bce"|"listwise"|"kl"|"margin_mse", "learning_rate", "betas",
"eps", "weight_decay", "max_grad_norm" (null: no clipping), "warmup_steps", "total_steps",
"threads", "steps": [{"pairs": [[q, d], ...], "labels": [...]} | {"groups": [{"query",
"documents": [positive, negatives...], "teacher": [score, ...] (kl, margin_mse)}]}]}
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.optimization import get_linear_schedule_with_warmup


def decay_parameter_names(model) -> set[str]:
    try:
        from transformers import Trainer

        # An instance method that does not use the instance.
        return set(Trainer.get_decay_parameter_names(None, model))
    except ImportError:  # Trainer needs accelerate; fall back to the same rule.
        from transformers.trainer_pt_utils import get_parameter_names

        patterns = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]
        return set(get_parameter_names(model, [torch.nn.LayerNorm], patterns))


def pairs_of(step: dict) -> tuple[list[tuple[str, str]], list[int] | None]:
    if "pairs" in step:
        return [tuple(p) for p in step["pairs"]], None
    pairs, sizes = [], []
    for group in step["groups"]:
        pairs += [(group["query"], d) for d in group["documents"]]
        sizes.append(len(group["documents"]))
    return pairs, sizes


def run_steps(spec_path: str, out_dir: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec.get("threads", 2))
    model = AutoModelForSequenceClassification.from_pretrained(
        spec["model"], attn_implementation="eager", dtype=torch.float32
    )
    model.eval()  # no dropout, as crossrank's training forward
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    names = [n for n, _ in model.named_parameters()]
    decay = decay_parameter_names(model)
    params = dict(model.named_parameters())
    groups = [
        {"params": [params[n] for n in names if n in decay], "weight_decay": spec["weight_decay"]},
        {"params": [params[n] for n in names if n not in decay], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(
        groups, lr=spec["learning_rate"], betas=tuple(spec["betas"]), eps=spec["eps"]
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, spec["warmup_steps"], spec["total_steps"])

    model64 = copy.deepcopy(model).double()

    def compute_loss(model, step, enc, sizes):
        logits = model(**enc).logits
        if spec["loss"] == "bce":
            labels = torch.tensor(step["labels"], dtype=logits.dtype).view_as(logits)
            return F.binary_cross_entropy_with_logits(logits, labels)
        scores = logits.view(-1)
        teacher = [t for g in step["groups"] for t in g.get("teacher", [])]
        teacher = torch.tensor(teacher, dtype=scores.dtype)
        per_group, start = [], 0
        for size in sizes:
            group = scores[start : start + size].unsqueeze(0)
            if spec["loss"] == "listwise":
                per_group.append(F.cross_entropy(group, torch.zeros(1, dtype=torch.long)))
            elif spec["loss"] == "kl":
                target = F.softmax(teacher[start : start + size].unsqueeze(0), dim=-1)
                per_group.append(F.kl_div(F.log_softmax(group, dim=-1), target, reduction="sum"))
            else:  # margin_mse: the first document's margin over each other one
                t = teacher[start : start + size]
                per_group.append((group[0, 0] - group[0, 1:]) - (t[0] - t[1:]))
            start += size
        if spec["loss"] == "margin_mse":
            return F.mse_loss(torch.cat(per_group), torch.zeros(sum(sizes) - len(sizes), dtype=scores.dtype))
        return torch.stack(per_group).mean()

    tensors: dict[str, torch.Tensor] = {}
    losses, grad_norms, lrs = [], [], []
    for k, step in enumerate(spec["steps"]):
        pairs, sizes = pairs_of(step)
        enc = tokenizer(
            [q for q, _ in pairs],
            [d for _, d in pairs],
            padding=True,
            truncation=True,
            max_length=spec["max_length"],
            return_tensors="pt",
        )
        # The exact gradient at the current weights, for judging float32 rounding.
        model64.load_state_dict(model.state_dict())
        model64.zero_grad()
        compute_loss(model64, step, enc, sizes).backward()
        for n, p in model64.named_parameters():
            tensors[f"step{k}.grad64.{n}"] = p.grad.float().contiguous()

        loss = compute_loss(model, step, enc, sizes)
        loss.backward()
        tensors[f"step{k}.input_ids"] = enc["input_ids"].contiguous()
        for n in names:
            tensors[f"step{k}.grad.{n}"] = params[n].grad.detach().clone().contiguous()
        lrs.append(scheduler.get_last_lr()[0])
        if spec["max_grad_norm"] is not None:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), spec["max_grad_norm"])
        else:
            norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(p.grad) for p in model.parameters()])
            )
        grad_norms.append(float(norm))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(float(loss))
        for n in names:
            tensors[f"step{k}.param.{n}"] = params[n].detach().clone().contiguous()

    out = Path(out_dir)
    save_file(tensors, str(out / "reference.safetensors"))
    (out / "reference.json").write_text(
        json.dumps(
            {
                "losses": losses,
                "grad_norms": grad_norms,
                "lrs": lrs,
                "decay": sorted(decay),
                "parameters": names,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
            }
        )
    )


def logits(model_dir: str, pairs_path: str, out_path: str, max_length: str) -> None:
    torch.set_num_threads(2)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    pairs = json.loads(Path(pairs_path).read_text())
    enc = tokenizer(
        [q for q, _ in pairs],
        [d for _, d in pairs],
        padding=True,
        truncation=True,
        max_length=int(max_length),
        return_tensors="pt",
    )
    with torch.no_grad():
        values = model(**enc).logits
    Path(out_path).write_text(
        json.dumps(
            {
                "logits": values.flatten().tolist(),
                "num_labels": model.config.num_labels,
                "architectures": model.config.architectures,
                "model_class": type(model).__name__,
            }
        )
    )


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"steps": run_steps, "logits": logits}[command](*args)
