"""A tiny, locally built Qwen3 "yes/no" decoder reranker (shaped like Qwen/Qwen3-Reranker-0.6B)
and the two reference scorers the tests compare crossrank against.

No Qwen checkpoint is reachable offline, so the fixture is built here from scratch:

* ``write_tokenizer``: a byte-level BPE trained on the caller's texts (e.g. Cranfield documents)
  with Qwen2's exact pipeline (NFC, Qwen's split regex, ByteLevel without its own regex,
  ByteLevel decoder) and Qwen3's added tokens, saved as a ``Qwen2Tokenizer`` so that transformers
  rebuilds the same pipeline on load. "yes" and "no" are single tokens, as in Qwen's vocabulary,
  because the reranker's score is ``logit(yes) - logit(no)`` at the last position.
* ``write_checkpoint``: that tokenizer plus a random ``Qwen3ForCausalLM`` (GQA, tied embeddings,
  weights scaled up so that scores differ clearly between pairs). With ``st_config=True`` the
  directory is then loaded and saved by sentence-transformers itself, so its files
  (modules.json, sentence_bert_config.json, config_sentence_transformers.json,
  1_LogitScore/config.json, chat_template.jinja) are genuine; with ``st_config=False`` it is a
  plain transformers checkpoint as Qwen first published the reranker (config, weights, a
  tokenizer whose chat template is Qwen3's ordinary chat template, kept in
  tokenizer_config.json).
* ``st_scores``: sentence-transformers' ``CrossEncoder.predict`` with the identity activation
  (raw ``logit(yes) - logit(no)``).
* ``hf_scores`` / ``hf_token_ids``: the model card's transformers recipe (fixed prefix and suffix
  token ids around the tokenized ``<Instruct>/<Query>/<Document>`` text, the text truncated to
  ``max_length - len(prefix) - len(suffix)`` tokens, left padding, last-position logits).

Truncation, sentence-transformers against the model card: sentence-transformers renders the whole
chat template, tokenizes it, cuts the *rendered* sequence on the right to ``max_length`` tokens and
then writes the template's suffix (the tokens after the document, derived by rendering two skeleton
conversations and taking their common token tail) back over the last tokens of every row that
reached ``max_length`` (``Transformer._restore_chat_template_suffix``). The model card cuts the
``<Instruct>: ...<Document>: ...`` text alone to ``max_length - len(prefix) - len(suffix)`` tokens
and puts prefix and suffix around it. Both give ``prefix + text[:budget] + suffix``, so the ids are
the same as long as (a) the text's tokens do not merge across the prefix/suffix boundaries (they
cannot here: the boundaries are special tokens or "\\n" before "<", which Qwen's regex always
splits), (b) the suffix ST derives equals the model card's suffix (it does: the skeleton documents
"0" and "1 2 3 4" end in different tokens, so the common tail starts at ``<|im_end|>``), and (c) the
tokenizer truncates on the right (Qwen's default). ``python scripts/qwen3_reranker.py`` checks it.
A row that fits exactly at ``max_length`` gets the suffix rewritten by ST with the same tokens
(no change); a budget at or below zero (``max_length <= len(prefix) + len(suffix)``) differs: the
reference here raises, ST keeps ``prefix[:max_length - len(suffix)] + suffix``. Rows shorter than
``max_length`` are not touched. Note that the fixed part is long: with this tokenizer PREFIX is 38
tokens and SUFFIX 9 (as with Qwen's own: the filler makes the template's words single tokens), so
at ``max_length=64`` the 17-token budget ends inside the default instruction and every pair gets
the same ids; a short instruction (or ``max_length`` >= ~100) leaves room for query and document.

    python scripts/qwen3_reranker.py   # build a checkpoint in a temp dir and check the agreement
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# Same convention as scripts/fixtures.py: the shipped copies in data/, or $CROSSRANK_DATA.
CRANFIELD = Path(os.environ.get("CROSSRANK_DATA") or ROOT / "data") / "cranfield"

# Qwen2/Qwen3's pre-tokenizer split (transformers' Qwen2Tokenizer.PRETOKENIZE_REGEX).
QWEN_SPLIT_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# Qwen3's added tokens used by the reranker, in Qwen's id order (after the BPE vocabulary).
ENDOFTEXT, IM_START, IM_END, THINK, END_THINK = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<think>",
    "</think>",
)
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END, THINK, END_THINK)
VOCAB_SIZE = 1500
TEMPLATE_REPEATS = 1000

# Qwen3-Reranker's published format (model card).
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
SYSTEM_PROMPT = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
PREFIX = f"{IM_START}system\n{SYSTEM_PROMPT}{IM_END}\n{IM_START}user\n"
SUFFIX = f"{IM_END}\n{IM_START}assistant\n{THINK}\n\n{END_THINK}\n\n"
# The name under which write_checkpoint(instruction=...) stores the instruction as the default
# sentence-transformers prompt (config_sentence_transformers.json "prompts"/"default_prompt_name").
PROMPT_NAME = "instruction"


def format_instruction(query: str, document: str, instruction: str | None = None) -> str:
    """The model card's ``format_instruction``: the user text between PREFIX and SUFFIX."""
    if instruction is None:
        instruction = DEFAULT_INSTRUCTION
    return f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"


# The chat template for sentence-transformers >= 5.4/6.x. ST maps a (query, document) pair to
# [{"role": "query", ...}, {"role": "document", ...}] (modality.pair_to_messages) and a prompt to a
# leading {"role": "system", "content": prompt} (prepend_prompt_to_messages); "flat" content (a
# plain string) because the template contains none of the patterns (".type", "content[0]", ...)
# that make ST infer the structured format. ST checks that query and document content reach the
# render (_verify_pair_roles_supported) and, on truncation, restores the tail after the document
# (_restore_chat_template_suffix), which is why the fixed text after the document must be exactly
# the model card's SUFFIX. Everything is emitted from Jinja string literals ("\n" escapes), so
# transformers' trim_blocks/lstrip_blocks and the dropped trailing newline cannot alter it.
# The tail is emitted whether or not add_generation_prompt is passed: ST passes none, and the
# model card always ends with the assistant's empty think block.
RERANKER_TEMPLATE = (
    r"""{%- for message in messages -%}
    {%- if message.role not in ['system', 'query', 'document'] -%}
        {{- raise_exception('Qwen3-Reranker takes system, query and document messages, not ' + message.role) -}}
    {%- endif -%}
{%- endfor -%}
{%- set instruction = messages | selectattr('role', 'eq', 'system') | map(attribute='content') | first"""
    + f" | default('{DEFAULT_INSTRUCTION}') -%}}"
    + r"""
{%- set query = messages | selectattr('role', 'eq', 'query') | map(attribute='content') | first | default('') -%}
{%- set document = messages | selectattr('role', 'eq', 'document') | map(attribute='content') | first | default('') -%}
{{- '<|im_start|>system\n"""
    + SYSTEM_PROMPT
    + r"""<|im_end|>\n<|im_start|>user\n' -}}
{{- '<Instruct>: ' + instruction + '\n<Query>: ' + query + '\n<Document>: ' + document -}}
{{- '<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n' -}}
"""
)

# Qwen3's ordinary chat template, condensed (no tools): what the reranker's tokenizer carried
# before the sentence-transformers integration. It renders only system/user/assistant messages,
# so sentence-transformers refuses pairs with it ("cannot carry a 'query'/'document' pair").
QWEN3_CHAT_TEMPLATE = r"""{%- if messages[0].role == 'system' -%}
    {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' -}}
{%- endif -%}
{%- for message in messages -%}
    {%- if message.role == 'user' or (message.role == 'system' and not loop.first) -%}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' -}}
    {%- elif message.role == 'assistant' -%}
        {%- set content = message.content -%}
        {%- if '</think>' in content -%}
            {%- set content = content.split('</think>')[-1].lstrip('\n') -%}
        {%- endif -%}
        {{- '<|im_start|>assistant\n' + content + '<|im_end|>\n' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|im_start|>assistant\n' -}}
    {%- if enable_thinking is defined and enable_thinking is false -%}
        {{- '<think>\n\n</think>\n\n' -}}
    {%- endif -%}
{%- endif -%}
"""


# ---------------------------------------------------------------------------------------------
# Data


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def cranfield_texts(data_dir: Path = CRANFIELD, n: int | None = None) -> list[str]:
    """Cranfield documents as "title text" strings (the tokenizer's training texts)."""
    docs = _read_jsonl(Path(data_dir) / "corpus.jsonl")[:n]
    return [(d.get("title", "") + " " + d["text"]).strip() for d in docs]


def cranfield_pairs(data_dir: Path = CRANFIELD, n: int = 50, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (query, document) pairs: judged pairs from the qrels and as many random pairings,
    alternating, plus a few short documents (first sentence only) so that not every pair is
    truncated at moderate lengths."""
    data_dir = Path(data_dir)
    docs = {d["_id"]: (d.get("title", "") + " " + d["text"]).strip() for d in _read_jsonl(data_dir / "corpus.jsonl")}
    queries = {q["_id"]: q["text"] for q in _read_jsonl(data_dir / "queries.jsonl")}
    with open(data_dir / "qrels.tsv", encoding="utf-8") as f:
        next(f)
        judged = [tuple(line.rstrip("\n").split("\t")[:2]) for line in f if line.strip()]
    judged = [(q, d) for q, d in judged if q in queries and d in docs]
    rng = random.Random(seed)
    doc_ids, query_ids = sorted(docs), sorted(queries)
    pairs = []
    for i in range(n):
        if i % 2 == 0:
            qid, did = rng.choice(judged)
        else:
            qid, did = rng.choice(query_ids), rng.choice(doc_ids)
        doc = docs[did]
        if i % 5 == 4:
            doc = doc.split(" . ")[0]
        pairs.append((queries[qid], doc))
    return pairs


# ---------------------------------------------------------------------------------------------
# Tokenizer


def _filler(yes_no: bool) -> list[str]:
    """Extra training text. The template's fixed words (so that PREFIX/SUFFIX tokenize compactly,
    as in Qwen's real vocabulary, leaving room for content at small ``max_length``) and, with
    ``yes_no``, many lines holding only "yes" or "no": after "\\n" the regex starts a new piece, so
    BPE learns "yes" and "no" without the space prefix ("Ġ"), which are the tokens the reranker
    reads (``convert_tokens_to_ids("yes")``)."""
    template = f"{SYSTEM_PROMPT}\nuser\n{format_instruction('query', 'document')}\nassistant\nsystem\n\n"
    texts = [template] * TEMPLATE_REPEATS
    if yes_no:
        texts += ["yes\nno\nyes\nno\n"] * 300
    return texts


def _drop_tokens(vocab: dict[str, int], merges: list[tuple[str, str]], drop: set[str]):
    """Removes ``drop`` from a BPE model: the tokens, the merges producing them, and (recursively)
    the merges that consume them along with their products, which could no longer be reached.
    Ids are renumbered in their original order so the vocabulary stays dense."""
    drop = {t for t in drop if t in vocab}
    while True:
        kept = []
        grew = False
        for a, b in merges:
            if a in drop or b in drop or a + b in drop:
                if a + b not in drop and a + b in vocab:
                    drop.add(a + b)
                    grew = True
            else:
                kept.append((a, b))
        merges = kept
        if not grew:
            break
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if t not in drop]
    return {t: i for i, t in enumerate(tokens)}, merges


def _train_bpe(texts: list[str], vocab_size: int):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False, fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return dict(model["vocab"]), merges


def write_tokenizer(
    path: str | Path,
    texts: list[str],
    *,
    yes_no: bool = True,
    vocab_size: int = VOCAB_SIZE,
    chat_template: str | None = RERANKER_TEMPLATE,
    model_max_length: int = 512,
    save_jinja_files: bool = True,
):
    """Trains a ~``vocab_size`` byte-level BPE on ``texts`` plus filler and saves it to ``path``
    as a transformers ``Qwen2Tokenizer`` (tokenizer.json + tokenizer_config.json [+
    chat_template.jinja]); returns the loaded tokenizer.

    Qwen's layout: BPE ids first, then the added special tokens <|endoftext|>, <|im_start|>,
    <|im_end|>, <think>, </think> (single ids, never split); eos <|im_end|>, pad <|endoftext|>,
    no bos, no unk (so ``convert_tokens_to_ids`` of a missing token is None, which is what makes
    sentence-transformers reject a tokenizer without "yes"/"no"); left padding, as decoder
    rerankers need the last position to be real.

    ``yes_no=False``: neither "yes" nor "no" is a token (trained without the yes/no filler; if BPE
    still learns them from ``texts``, they are removed with the merges that make or use them).
    ``save_jinja_files=False`` keeps the chat template inside tokenizer_config.json, as tokenizers
    saved by transformers 4 (the original Qwen3-Reranker) did.
    """
    from tokenizers import AddedToken
    from transformers import AutoTokenizer, Qwen2Tokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab, merges = _train_bpe(list(texts) + _filler(yes_no), vocab_size)
    if not yes_no:
        vocab, merges = _drop_tokens(vocab, merges, {"yes", "no"})
    # Qwen's id order for the added tokens, right after the BPE vocabulary (Qwen2Tokenizer would
    # otherwise register eos and pad first).
    added = {len(vocab) + i: AddedToken(t, special=True, normalized=False) for i, t in enumerate(SPECIAL_TOKENS)}
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        added_tokens_decoder=added,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        errors="replace",
        add_prefix_space=False,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        padding_side="left",
        model_max_length=model_max_length,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [added[i] for i in sorted(added)]})
    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    if ids != sorted(added):
        raise RuntimeError(f"added token ids {ids}, wanted {sorted(added)}")
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(str(path), save_jinja_files=save_jinja_files)

    loaded = AutoTokenizer.from_pretrained(str(path))
    for token in SPECIAL_TOKENS:
        if len(loaded.encode(token, add_special_tokens=False)) != 1:
            raise RuntimeError(f"{token} is not a single token")
    has = [loaded.convert_tokens_to_ids(w) is not None for w in ("yes", "no")]
    if has != [yes_no, yes_no]:
        raise RuntimeError(f"'yes'/'no' in the vocabulary: {has}, wanted {yes_no}")
    if yes_no and [len(loaded.encode(w, add_special_tokens=False)) for w in ("yes", "no")] != [1, 1]:
        raise RuntimeError("'yes'/'no' do not encode to one token each")
    return loaded


# ---------------------------------------------------------------------------------------------
# Checkpoint

DEFAULT_SIZES = dict(
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=512,
)
WEIGHT_STD = 0.2
NORM_RANGE = (0.5, 1.5)


def _randomize(model, seed: int) -> None:
    """Random weights large enough that the last position's yes/no logit difference varies
    clearly between pairs (the default init, std 0.02, makes every score ~0): RMSNorm scales
    (input/post-attention/final norms and q_norm/k_norm) uniform in NORM_RANGE, so that a wrong
    norm weight shows; everything else (embeddings, projections, the LM head when not tied, biases
    when ``attention_bias``) normal with std WEIGHT_STD. Seeded, in parameter-name order."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    lo, hi = NORM_RANGE
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if "norm" in name:
                param.copy_(lo + (hi - lo) * torch.rand(param.shape, generator=gen))
            else:
                param.copy_(torch.randn(param.shape, generator=gen) * WEIGHT_STD)


def write_checkpoint(
    path: str | Path,
    texts: list[str],
    *,
    st_config: bool = True,
    yes_no: bool = True,
    seed: int = 0,
    sizes: dict | None = None,
    instruction: str | None = None,
) -> Path:
    """Writes a random Qwen3-Reranker-shaped checkpoint to ``path`` and returns ``path``.

    config.json is transformers 5's Qwen3Config (``rope_parameters: {"rope_type": "default",
    "rope_theta": 1e6}``; no top-level ``rope_theta``), float32 weights in model.safetensors,
    ``tie_word_embeddings: true`` (no lm_head tensor), bos/eos ids <|endoftext|>/<|im_end|> as
    Qwen3's. ``sizes`` overrides DEFAULT_SIZES and these (any Qwen3Config field), e.g.
    ``vocab_size`` above ``len(tokenizer)`` (Qwen pads its embedding matrix: 151936 rows for 151669
    ids), ``tie_word_embeddings=False`` (as Qwen3-Reranker-4B/8B) or ``attention_bias=True``.

    ``st_config=True``: tokenizer with RERANKER_TEMPLATE (chat_template.jinja), then the directory
    is loaded with ``sentence_transformers.CrossEncoder`` (which sees ``*ForCausalLM`` and appends
    ``LogitScore(yes, no)``) and saved back with ``save_pretrained``, so every sentence-transformers
    file is the library's own. ``instruction`` becomes the default prompt (prompts
    ``{PROMPT_NAME: instruction}``, default_prompt_name PROMPT_NAME), which ST sends as the system
    message, i.e. the template's <Instruct>. ``yes_no=False`` cannot take this route (ST refuses a
    tokenizer without "yes"/"no"), so it raises.

    ``st_config=False``: only config.json, model.safetensors and the tokenizer, whose chat
    template is Qwen3's plain one (QWEN3_CHAT_TEMPLATE) stored in tokenizer_config.json, like
    Qwen/Qwen3-Reranker-0.6B before its sentence-transformers integration.
    """
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    if st_config and not yes_no:
        raise ValueError("sentence-transformers cannot save a reranker without 'yes'/'no' tokens")
    path = Path(path)
    config_sizes = {**DEFAULT_SIZES, **(sizes or {})}
    tokenizer = write_tokenizer(
        path,
        texts,
        yes_no=yes_no,
        chat_template=RERANKER_TEMPLATE if st_config else QWEN3_CHAT_TEMPLATE,
        model_max_length=config_sizes["max_position_embeddings"],
        save_jinja_files=st_config,
    )
    fields = dict(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        rms_norm_eps=1e-6,
        hidden_act="silu",
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        bos_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=None,
        use_cache=True,
        dtype="float32",
        architectures=["Qwen3ForCausalLM"],
    )
    fields.update(config_sizes)
    if fields["vocab_size"] < len(tokenizer):
        raise ValueError(f"vocab_size {fields['vocab_size']} < {len(tokenizer)} tokenizer ids")
    config = Qwen3Config(**fields)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config).eval()
    _randomize(model, seed)
    model.save_pretrained(str(path), safe_serialization=True)
    if st_config:
        from sentence_transformers import CrossEncoder

        prompts = {PROMPT_NAME: instruction} if instruction is not None else None
        # Not local_files_only=True: it would be written into tokenizer_config.json by the save.
        ce = CrossEncoder(
            str(path),
            device="cpu",
            prompts=prompts,
            default_prompt_name=PROMPT_NAME if instruction is not None else None,
        )
        ce.save_pretrained(str(path), create_model_card=False)
    return path


# ---------------------------------------------------------------------------------------------
# Reference scorers


def checkpoint_instruction(path: str | Path) -> str | None:
    """The default sentence-transformers prompt stored with the checkpoint, if any."""
    config = Path(path) / "config_sentence_transformers.json"
    if not config.is_file():
        return None
    data = json.loads(config.read_text())
    name = data.get("default_prompt_name")
    return (data.get("prompts") or {}).get(name) if name else None


def _resolve_instruction(path, instruction: str | None) -> str:
    """The instruction the reference uses, with sentence-transformers' semantics for ``prompt=``:
    the caller's; None: the checkpoint's default ST prompt (what CrossEncoder.predict applies by
    default), else the model card's DEFAULT_INSTRUCTION; "" (ST then adds no system message, so
    the template falls back to its default): DEFAULT_INSTRUCTION, not an empty <Instruct>."""
    if instruction is None:
        instruction = checkpoint_instruction(path)
    return instruction or DEFAULT_INSTRUCTION


def st_scores(path, pairs, max_length: int, instruction: str | None = None, batch_size: int = 16) -> np.ndarray:
    """sentence-transformers' raw scores, ``logit(yes) - logit(no)`` at the last position:
    ``CrossEncoder(path, max_length=...).predict(pairs, activation_fn=Identity())`` (the default
    activation for one label is a sigmoid). ``instruction`` is passed as ``prompt=`` (the system
    message); None leaves ST's default prompt (the checkpoint's, or none -> the template default).
    """
    import torch
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(path), max_length=max_length, device="cpu", local_files_only=True)
    scores = model.predict(
        [tuple(p) for p in pairs],
        prompt=instruction,
        activation_fn=torch.nn.Identity(),
        batch_size=batch_size,
        show_progress_bar=False,
    )
    return np.asarray(scores, dtype=np.float32)


def st_token_ids(path, pairs, max_length: int, instruction: str | None = None) -> list[list[int]]:
    """The ids sentence-transformers feeds for each pair (unpadded), from ``CrossEncoder.preprocess``
    with the same prompt resolution as ``predict``."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(path), max_length=max_length, device="cpu", local_files_only=True)
    prompt = model._resolve_prompt(instruction, None)  # predict's own resolution (private in 6.2)
    features = model.preprocess([tuple(p) for p in pairs], prompt=prompt)
    return [ids[mask.bool()].tolist() for ids, mask in zip(features["input_ids"], features["attention_mask"])]


def _hf_reference(path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), padding_side="left")
    prefix = tokenizer.encode(PREFIX, add_special_tokens=False)
    suffix = tokenizer.encode(SUFFIX, add_special_tokens=False)
    return tokenizer, prefix, suffix


def _hf_inputs(tokenizer, prefix, suffix, pairs, max_length, instruction) -> list[list[int]]:
    """The model card's ``process_inputs`` before padding."""
    budget = max_length - len(prefix) - len(suffix)
    if budget <= 0:
        raise ValueError(f"max_length {max_length} leaves no room after {len(prefix)}+{len(suffix)} template tokens")
    texts = [format_instruction(q, d, instruction) for q, d in pairs]
    enc = tokenizer(texts, padding=False, truncation="longest_first", return_attention_mask=False, max_length=budget)
    return [prefix + ids + suffix for ids in enc["input_ids"]]


def hf_token_ids(path, pairs, max_length: int, instruction: str | None = None) -> list[list[int]]:
    """The ids of each pair as the model card's transformers code feeds them (unpadded): prefix
    ids + ``format_instruction`` ids cut to ``max_length - len(prefix) - len(suffix)`` + suffix
    ids. ``instruction`` None: the checkpoint's default ST prompt, else DEFAULT_INSTRUCTION."""
    tokenizer, prefix, suffix = _hf_reference(path)
    return _hf_inputs(tokenizer, prefix, suffix, pairs, max_length, _resolve_instruction(path, instruction))


def hf_scores(path, pairs, max_length: int, instruction: str | None = None, batch_size: int = 8) -> np.ndarray:
    """Raw ``logit(yes) - logit(no)`` the model card's way: ``AutoModelForCausalLM`` in float32,
    the ids of ``hf_token_ids`` left-padded per batch (``tokenizer.pad``), logits at position -1.
    (The model card then takes softmax([no, yes])[yes] = sigmoid of this difference.)"""
    import torch
    from transformers import AutoModelForCausalLM

    instruction = _resolve_instruction(path, instruction)
    tokenizer, prefix, suffix = _hf_reference(path)
    yes = tokenizer.convert_tokens_to_ids("yes")
    no = tokenizer.convert_tokens_to_ids("no")
    if yes is None or no is None:
        raise ValueError("the tokenizer has no 'yes'/'no' token")
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(pairs), batch_size):
            ids = _hf_inputs(tokenizer, prefix, suffix, pairs[i : i + batch_size], max_length, instruction)
            # The model card also passes max_length=max_length here, which padding=True ignores (with a warning).
            batch = tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt")
            logits = model(**batch).logits[:, -1, :]
            out.append((logits[:, yes] - logits[:, no]).float().numpy())
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


# ---------------------------------------------------------------------------------------------
# Self-check


def main() -> None:
    import tempfile

    import torch
    import transformers
    from sentence_transformers import CrossEncoder

    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    texts = cranfield_texts()
    pairs = cranfield_pairs(n=50)

    def compare(label, ckpt, max_length, instruction=None):
        t0 = time.perf_counter()
        st = st_scores(ckpt, pairs, max_length, instruction)
        hf = hf_scores(ckpt, pairs, max_length, instruction)
        ids_st = st_token_ids(ckpt, pairs, max_length, instruction)
        ids_hf = hf_token_ids(ckpt, pairs, max_length, instruction)
        n_trunc = sum(len(x) == max_length for x in ids_hf)
        print(
            f"[{label}] max_length {max_length}: max |st-hf| {np.abs(st - hf).max():.2e}, "
            f"ids equal {ids_st == ids_hf}, {n_trunc}/{len(pairs)} at max_length, "
            f"score std {st.std():.3f}, ({time.perf_counter() - t0:.1f}s)"
        )

    with tempfile.TemporaryDirectory() as tmp:
        checkpoints = (("default", {}), ("instruction", {"instruction": "Given an aeronautics query, find abstracts"}))
        for name, kwargs in checkpoints:
            ckpt = Path(tmp) / name
            t0 = time.perf_counter()
            write_checkpoint(ckpt, texts, **kwargs)
            print(f"[{name}] checkpoint built in {time.perf_counter() - t0:.2f}s")
            for max_length in (64, 256):
                compare(name, ckpt, max_length)
            # At 64 the default instruction alone fills the 64 - len(PREFIX) - len(SUFFIX) budget.
            compare(f"{name}, per-call instruction 'Find'", ckpt, 64, "Find")
        ckpt = Path(tmp) / "plain"
        write_checkpoint(ckpt, texts, st_config=False)
        hf = hf_scores(ckpt, pairs, 256)
        print(f"[plain] files {sorted(p.name for p in ckpt.iterdir())}, hf score std {hf.std():.3f}")
        try:
            CrossEncoder(str(ckpt), device="cpu").predict(pairs[:1])
            print("[plain] sentence-transformers accepted it")
        except ValueError as e:
            print(f"[plain] sentence-transformers: {str(e).splitlines()[0][:120]}")
        ckpt = Path(tmp) / "noyes"
        write_checkpoint(ckpt, texts, st_config=False, yes_no=False)
        try:
            CrossEncoder(str(ckpt), device="cpu")
            print("[yes_no=False] sentence-transformers accepted it")
        except ValueError as e:
            print(f"[yes_no=False] sentence-transformers: {str(e)[:100]}")


if __name__ == "__main__":
    main()
