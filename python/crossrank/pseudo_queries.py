"""Training examples from the corpus itself, no judgments needed: pseudo-queries whose
relevant document is known by construction, each with hard negatives mined from a first
stage, as :func:`crossrank.training_data.mine_examples` mines them for judged queries.

* ``"title"``: a document's title is the query, the document's body without the title is
  the positive (documents that have both; ``load_beir`` keeps the titles in
  ``Dataset.titles``).
* ``"inverse_cloze"``: one sentence of a document is the query, the rest of the document
  (title included) the positive (the inverse cloze task of Lee et al., 2019, "Latent
  Retrieval for Weakly Supervised Open Domain Question Answering").

>>> from crossrank.datasets import load_beir
>>> from crossrank.training_data import pseudo_queries
>>> examples = pseudo_queries(load_beir("data/cranfield"), kinds=("title", "inverse_cloze"), seed=0)
>>> examples.groups(negatives_per_group=4)[:1]    # [(query, positive, [negative, ...])]

The source document is never among its query's negatives, nor is any document with the
same text or one that holds the query verbatim (corpora hold near duplicates).
"""

from __future__ import annotations

import random
import re
from typing import Literal, Sequence

from crossrank._core import BiEncoder
from crossrank.datasets import Dataset

__all__ = ["pseudo_queries", "split_sentences", "KINDS"]

KINDS = ("title", "inverse_cloze")
Kind = Literal["title", "inverse_cloze"]

# A sentence ends at ., ! or ? followed by white space; abbreviations split too, which only
# makes a few queries shorter.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, stripped, empty ones dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _normalized(text: str) -> str:
    return " ".join(text.lower().split())


def _body_without_title(title: str, text: str) -> str:
    """``text`` less its leading copies of ``title``, compared without case and spacing:
    ``load_beir`` prepends the title, and some corpora (e.g. Cranfield) also repeat it as
    the text's first sentence."""
    words, title_words = text.split(), title.split()
    cut = 0
    while title_words and _normalized(" ".join(words[cut:cut + len(title_words)])) == _normalized(title):
        cut += len(title_words)
    return " ".join(words[cut:]) if cut else text.strip()


def pseudo_queries(data: Dataset, kinds: Sequence[Kind] = KINDS, sentences_per_document: int = 1,
                   min_query_words: int = 3, max_documents: int | None = None,
                   hard_negatives: Literal["bm25", "dense"] = "bm25", negatives_per_query: int = 4,
                   depth: int = 30, bi_encoder: BiEncoder | None = None, seed: int = 0):
    """Pseudo-queries of ``data``'s corpus as :class:`~crossrank.training_data.TrainingExamples`
    (one positive each), negatives drawn (seeded) from the first stage's top ``depth`` for
    the pseudo-query, other than the source document.

    Args:
        kinds: which pseudo-queries to make (see the module's docstring).
        sentences_per_document: inverse-cloze queries per document (distinct sentences).
        min_query_words: shorter titles and sentences are not used as queries, and a
            positive must keep at least this many words.
        max_documents: use a seeded sample of this many documents (all by default).
        hard_negatives: ``"bm25"`` over the corpus, or ``"dense"`` with ``bi_encoder``.
        seed: the same seed gives the same examples on every machine.
    """
    from crossrank.training_data import TrainingExamples, _first_stage

    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty list of {KINDS}, got {kinds!r}")
    for name, value, least in (("sentences_per_document", sentences_per_document, 1),
                               ("min_query_words", min_query_words, 1), ("negatives_per_query", negatives_per_query, 1),
                               ("depth", depth, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    if max_documents is not None and (isinstance(max_documents, bool) or not isinstance(max_documents, int)
                                      or max_documents <= 0):
        raise ValueError(f"max_documents must be a positive integer or None, got {max_documents!r}")
    if hard_negatives not in ("bm25", "dense"):
        raise ValueError(f'hard_negatives must be "bm25" or "dense", got {hard_negatives!r}')
    if hard_negatives == "dense" and not isinstance(bi_encoder, BiEncoder):
        raise ValueError('hard_negatives="dense" needs bi_encoder=crossrank.BiEncoder(...)')
    if "title" in kinds and not data.titles:
        raise ValueError(f"kinds includes 'title' but {data.name!r} has no document titles "
                         "(load it with crossrank.datasets.load_beir from a corpus.jsonl with 'title' fields)")

    rng = random.Random(seed)
    doc_ids = list(data.doc_ids)
    if max_documents is not None and max_documents < len(doc_ids):
        position = {d: i for i, d in enumerate(doc_ids)}
        doc_ids = sorted(rng.sample(doc_ids, max_documents), key=position.__getitem__)
    # (source document, query, positive)
    made: list[tuple[str, str, str]] = []
    for doc_id in doc_ids:
        title = data.titles.get(doc_id, "").strip()
        body = _body_without_title(title, data.text(doc_id))
        if "title" in kinds and len(title.split()) >= min_query_words and len(body.split()) >= min_query_words:
            made.append((doc_id, title, body))
        if "inverse_cloze" in kinds:
            sentences = split_sentences(body)
            usable = [i for i, s in enumerate(sentences) if len(s.split()) >= min_query_words]
            for i in sorted(rng.sample(usable, min(sentences_per_document, len(usable)))):
                rest = " ".join(([title] if title else []) + sentences[:i] + sentences[i + 1:])
                if len(rest.split()) >= min_query_words:
                    made.append((doc_id, sentences[i], rest))
    if not made:
        raise ValueError(f"no pseudo-query of kinds {kinds} in {data.name!r}: no document has a title or sentence "
                         f"of >= {min_query_words} words with enough text left")

    queries = {f"pq{i}": query for i, (_, query, _) in enumerate(made)}
    mining = Dataset(data.name, data.doc_ids, data.doc_texts, queries, {})
    candidates = _first_stage(mining, list(queries), hard_negatives, depth, bi_encoder)
    examples = TrainingExamples()
    for i, (source, query, positive) in enumerate(made):
        same = (_normalized(data.text(source)), _normalized(positive))
        # A document that holds the whole query (a title or sentence) verbatim is most likely
        # another copy of the source (Cranfield has such near duplicates): not a negative.
        quoted = _normalized(query)
        pool = [d for d in candidates[f"pq{i}"] if d != source and data.text(d).strip()
                and _normalized(data.text(d)) not in same and quoted not in _normalized(data.text(d))]
        examples.queries.append(query)
        examples.positives.append([positive])
        examples.negatives.append([data.text(d) for d in rng.sample(pool, min(negatives_per_query, len(pool)))])
    return examples
