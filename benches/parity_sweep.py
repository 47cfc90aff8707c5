"""Parity sweep: crossrank against transformers on many (query, document) pairs in the
held-out-style mix that found issue 14 (long CISI queries, document-to-document pairs,
mixed scripts, empty sides), for a BERT (WordPiece) and an XLM-R (Unigram) cross-encoder
and the BiEncoder, at several max_length. Prints the worst |logit diff| per model and
the pair that produced it; exits 1 if a token id differs or a diff exceeds 1e-4.

    python benches/parity_sweep.py --pairs 2000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import crossrank  # noqa: E402

import fixtures  # noqa: E402
from parity_inputs import frequent_words, held_out_mix, hf_pair_ids, hf_pair_logits, make_xlmr_cross_encoder, read_jsonl  # noqa: E402

TOLERANCE = 1e-4


def sweep_cross_encoder(name, path, model, tokenizer, pairs, max_lengths) -> bool:
    ok = True
    for max_length in max_lengths:
        start = time.perf_counter()
        ce = crossrank.CrossEncoder(str(path), max_length=max_length)
        ours_ids = ce.tokenize(pairs)
        theirs_ids = hf_pair_ids(tokenizer, pairs, max_length)
        id_mismatches = [i for i, (a, b) in enumerate(zip(ours_ids, theirs_ids)) if a != b]
        ours = ce.predict(pairs, activation_fn="identity", batch_size=16)
        theirs = hf_pair_logits(model, tokenizer, pairs, max_length)[:, 0]
        diff = np.abs(ours - theirs)
        worst = int(diff.argmax())
        query, document = pairs[worst]
        print(f"{name:<6} max_length {max_length:>3}: {len(pairs)} pairs, token-id mismatches "
              f"{len(id_mismatches)}, worst |logit diff| {diff[worst]:.2e} at pair {worst} "
              f"(query {len(tokenizer(query, add_special_tokens=False)['input_ids'])} tokens, "
              f"document {len(tokenizer(document, add_special_tokens=False)['input_ids'])} tokens; "
              f"{query[:40]!r} / {document[:40]!r}) [{time.perf_counter() - start:.0f} s]", flush=True)
        ok &= not id_mismatches and diff[worst] <= TOLERANCE
    return ok


def sweep_bi_encoder(path, texts, max_lengths) -> bool:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(path), device="cpu")
    ok = True
    for max_length in max_lengths:
        be = crossrank.BiEncoder(str(path), max_length=max_length)
        st.max_seq_length = max_length
        same_ids = be.tokenize(texts) == st.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        diff = np.abs(be.encode(texts) - st.encode(texts, batch_size=32)).max(axis=1)
        worst = int(diff.argmax())
        print(f"bi-enc max_length {max_length:>3}: {len(texts)} texts, token ids equal: {same_ids}, "
              f"worst |embedding diff| {diff[worst]:.2e} at text {worst} ({texts[worst][:40]!r})", flush=True)
        ok &= same_ids and diff[worst] <= TOLERANCE
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--max-lengths", default="128,512", help="comma-separated (default 128,512)")
    parser.add_argument("--data", type=Path, default=fixtures.DATA)
    parser.add_argument("--models", default="bert,xlmr,bi-encoder",
                        help="comma-separated subset of bert,xlmr,bi-encoder (default all)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    max_lengths = [int(x) for x in args.max_lengths.split(",")]
    pairs = held_out_mix(args.data, args.pairs)
    print(f"crossrank {crossrank.__version__}; {crossrank.runtime_info()}")
    print(f"{len(pairs)} pairs from {args.data} (cisi/cacm/cranfield queries and documents, "
          f"document pairs, mixed scripts, empty sides)")

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    models = set(args.models.split(","))
    ok = True
    if "bert" in models:
        _, ce_dir = fixtures.ensure_default_fixtures()
        bert = AutoModelForSequenceClassification.from_pretrained(str(ce_dir)).eval()
        ok &= sweep_cross_encoder("bert", ce_dir, bert, AutoTokenizer.from_pretrained(str(ce_dir)), pairs,
                                  max_lengths)
    if "xlmr" in models:
        corpus = read_jsonl(args.data / "cranfield" / "corpus.jsonl")
        words = frequent_words(d["text"] for d in corpus[:300])
        with tempfile.TemporaryDirectory() as tmp:
            path, xlmr, tokenizer = make_xlmr_cross_encoder(Path(tmp) / "xlmr", words)
            ok &= sweep_cross_encoder("xlm-r", path, xlmr, tokenizer, pairs, max_lengths)
    if "bi-encoder" in models:
        texts = [t for pair in pairs[: args.pairs // 2] for t in pair]
        ok &= sweep_bi_encoder(fixtures.fetch_minilm(), texts, max_lengths)
    print("PASS" if ok else "FAIL", f"(tolerance {TOLERANCE})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
