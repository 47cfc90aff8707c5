"""The reference scores the parity tests compare crossrank with: transformers' logits of
(query, document) pairs, tokenized as sentence-transformers' CrossEncoder tokenizes them."""

from __future__ import annotations

import numpy as np
import torch


def hf_logits(model, tokenizer, pairs, max_length, batch_size=32, inputs=None) -> np.ndarray:
    """``(len(pairs), num_labels)`` float32 logits, in batches of ``batch_size``, padded
    and truncated longest-first to ``max_length``. ``inputs``: the tokenizer outputs the
    model gets (default: all of them; a tokenizer built by hand may return
    ``token_type_ids`` that an XLM-R model does not take)."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i:i + batch_size]
            enc = tokenizer([q for q, _ in chunk], [d for _, d in chunk], truncation="longest_first",
                            max_length=max_length, padding=True, return_tensors="pt")
            if inputs is not None:
                enc = {k: v for k, v in enc.items() if k in inputs}
            out.append(model(**enc).logits.float().numpy())
    return np.concatenate(out)
