"""Inputs and references for parity checks over the input space, shared by the
property-based tests (tests/test_parity_properties.py) and the sweep
(benches/parity_sweep.py).

Texts mix scripts (Latin, CJK, Devanagari, emoji, combining marks, control characters,
special-token strings) and whitespace runs, and run from empty to several times
``max_length`` tokens, so that truncation splits a budget between two long texts, cuts
one text only, or keeps everything.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

ALPHABETS = {
    "latin": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789éèüñßøå.,;:!?'\"-()",
    "cjk": "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对",
    "devanagari": "अआइईउऊऋएऐओऔकखगघङचछजझञटठडढणतथदधनपफबभमयरलवशषसहािीुूृेैोौंः्",
    "emoji": "😀😂🤖🚀🌍🔥👍🏽❤️🎉🧪",
    "combining": "e\u0301a\u0300o\u0308c\u0327\u0323\u0301",
    "control": "\x00\x01\x07\x1b\x7f\u200b\u200d\ufeff\u2028",
}
SPECIAL_WORDS = ["[SEP]", "[CLS]", "[PAD]", "[MASK]", "[UNK]", "<s>", "</s>", "<pad>", "<unk>", "<mask>"]
WHITESPACE = [" ", " ", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", " \n\n "]
SCRIPTS = sorted(ALPHABETS) + ["special"]


def random_text(rng: random.Random, length: int, scripts: list[str]) -> str:
    """About ``length`` characters of words from ``scripts``, separated by whitespace runs
    (a run may also lead or trail)."""
    parts: list[str] = []
    size = 0
    if length and rng.random() < 0.1:
        parts.append(rng.choice(WHITESPACE))
    while size < length:
        script = rng.choice(scripts)
        if script == "special":
            word = rng.choice(SPECIAL_WORDS)
        else:
            alphabet = ALPHABETS[script]
            word = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
        parts.append(word)
        parts.append(rng.choice(WHITESPACE))
        size += len(word) + 1
    if parts and rng.random() < 0.8:
        parts.pop()  # usually no trailing whitespace
    return "".join(parts)


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def held_out_mix(data_dir: Path, n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (query, document) pairs in the mix that found issue 14: real queries against
    real documents of cisi, cacm and cranfield (CISI's queries run to 380 tokens), document
    against document, several documents joined, and random mixed-script texts."""
    rng = random.Random(seed)
    collections = []
    for name in ("cisi", "cacm", "cranfield"):
        queries = [q["text"] for q in read_jsonl(data_dir / name / "queries.jsonl")]
        docs = [d["text"] for d in read_jsonl(data_dir / name / "corpus.jsonl") if d["text"].strip()]
        collections.append((queries, docs))
    pairs = []
    for i in range(n):
        queries, docs = collections[i % len(collections)]
        kind = i % 6
        if kind == 0:  # long query, long document
            pairs.append((max(rng.sample(queries, 3), key=len), " ".join(rng.sample(docs, 3))))
        elif kind == 1:  # document to document
            pairs.append((rng.choice(docs), rng.choice(docs)))
        elif kind == 2:  # random scripts on both sides
            scripts = rng.sample(SCRIPTS, rng.randint(1, 3))
            pairs.append((random_text(rng, rng.randint(0, 1500), scripts),
                          random_text(rng, rng.randint(0, 1500), scripts)))
        elif kind == 3:  # an empty side
            text = rng.choice(docs)
            pairs.append(("", text) if rng.random() < 0.5 else (rng.choice(queries), ""))
        else:
            pairs.append((rng.choice(queries), rng.choice(docs)))
    return pairs


def frequent_words(texts, n: int = 400) -> list[str]:
    """The ``n`` most frequent whitespace-separated words of ``texts`` (a vocabulary for
    the tiny XLM-R tokenizer)."""
    counts: dict[str, int] = {}
    for text in texts:
        for w in text.split():
            counts[w] = counts.get(w, 0) + 1
    return sorted(counts, key=lambda w: -counts[w])[:n]


def make_xlmr_cross_encoder(out: Path, words: list[str], max_positions: int = 514):
    """A tiny random XLMRobertaForSequenceClassification with a Unigram tokenizer whose
    vocabulary covers ``words`` and every character of ``ALPHABETS`` (others are
    ``<unk>``), with a position table for ``max_positions - 2`` tokens. Returns
    (path, model, tokenizer)."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaForSequenceClassification

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab = [(t, 0.0) for t in specials] + [("▁" + w, -float(i + 1)) for i, w in enumerate(words)]
    chars = sorted(set("".join(ALPHABETS.values())) - {"\x00"})
    vocab += [(c, -1000.0) for c in chars] + [("▁", -500.0)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        pad_token="<pad>", unk_token="<unk>", model_max_length=max_positions - 2,
    )
    fast.model_input_names = ["input_ids", "attention_mask"]
    fast.save_pretrained(out)
    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=max_positions, type_vocab_size=1,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, num_labels=1, initializer_range=0.3,
    )
    model = XLMRobertaForSequenceClassification(config).eval()
    model.save_pretrained(out)
    return out, model, fast


def hf_pair_ids(tokenizer, pairs, max_length) -> list[list[int]]:
    """Token ids from the batch call, as sentence-transformers makes it."""
    return tokenizer([q for q, _ in pairs], [d for _, d in pairs], truncation="longest_first",
                     max_length=max_length)["input_ids"]


def hf_pair_logits(model, tokenizer, pairs, max_length, batch_size=16, inputs=None):
    """transformers' logits, (n, num_labels), for (query, document) pairs. ``inputs``: the
    tokenizer outputs the model gets (default: all; a tokenizer built by hand may return
    ``token_type_ids`` that an XLM-R model does not take)."""
    import numpy as np
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i : i + batch_size]
            enc = tokenizer([q for q, _ in chunk], [d for _, d in chunk], truncation="longest_first",
                            max_length=max_length, padding=True, return_tensors="pt")
            if inputs is not None:
                enc = {k: v for k, v in enc.items() if k in inputs}
            out.append(model(**enc).logits.float().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels), np.float32)
