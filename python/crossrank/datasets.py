"""Test collections in BEIR layout: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels.tsv``
(or ``qrels/<split>.tsv``).

>>> from crossrank.datasets import load_beir
>>> data = load_beir("data/cranfield")
>>> data
Dataset('cranfield': 1400 documents, 225 judged queries, 1837 judgments)

Documents are read as ``title + " " + text`` (BEIR's convention; ``title_field=False``
reads the text alone). Only queries with judgments are kept (``data.queries``), as BEIR
evaluates. Malformed files raise ``ValueError`` naming the file and line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["Dataset", "load_beir"]


@dataclass
class Dataset:
    """A corpus, its judged queries and the relevance judgments."""

    name: str
    doc_ids: list[str]
    doc_texts: list[str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    titles: dict[str, str] = field(default_factory=dict, repr=False)
    """Document titles where the corpus has them (``load_beir`` keeps them whether or not
    it prepends them to the texts); pseudo-queries use them."""
    _text_of: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._text_of = dict(zip(self.doc_ids, self.doc_texts))

    def text(self, doc_id: str) -> str:
        return self._text_of[doc_id]

    def subset(self, query_ids: list[str]) -> "Dataset":
        """The same corpus with only ``query_ids`` (for train/test splits)."""
        missing = [q for q in query_ids if q not in self.queries]
        if missing:
            raise ValueError(f"unknown query ids: {missing[:5]}")
        return Dataset(self.name, self.doc_ids, self.doc_texts, {q: self.queries[q] for q in query_ids},
                       {q: self.qrels[q] for q in query_ids}, self.titles)

    def __repr__(self) -> str:
        judgments = sum(len(d) for d in self.qrels.values())
        return (f"Dataset({self.name!r}: {len(self.doc_ids)} documents, {len(self.queries)} judged queries, "
                f"{judgments} judgments)")


def _jsonl(path: Path, required: tuple[str, ...]):
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {number}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}, line {number}: expected a JSON object, got {type(row).__name__}")
            for key in required:
                if key not in row:
                    raise ValueError(f"{path}, line {number}: missing field {key!r}")
                if not isinstance(row[key], (str, int)):
                    raise ValueError(f"{path}, line {number}: field {key!r} must be a string")
            yield number, row


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("\t")
            if number == 1 and fields and fields[0] == "query-id":
                continue  # header
            if not line.strip():
                continue
            if len(fields) == 4:  # TREC qrels: qid iter docid rel
                fields = [fields[0], fields[2], fields[3]]
            if len(fields) != 3:
                raise ValueError(f"{path}, line {number}: expected 'query-id<TAB>corpus-id<TAB>score', "
                                 f"got {len(fields)} fields")
            qid, docid, rel = fields
            try:
                relevance = int(rel)
            except ValueError:
                raise ValueError(f"{path}, line {number}: relevance {rel!r} is not an integer") from None
            if docid in qrels.setdefault(qid, {}):
                raise ValueError(f"{path}, line {number}: query {qid!r} judges document {docid!r} twice")
            qrels[qid][docid] = relevance
    return qrels


def load_beir(
    path: str | Path,
    split: str = "test",
    title_field: bool = True,
    missing_documents: Literal["error", "drop", "keep"] = "error",
) -> Dataset:
    """Load a BEIR-layout directory.

    Args:
        path: the directory.
        split: which ``qrels/<split>.tsv`` to read when there is no top-level ``qrels.tsv``.
        title_field: prepend each document's ``title`` to its ``text``.
        missing_documents: judgments of documents that are not in the corpus:
            ``"error"`` (default) raises ``ValueError`` naming one; ``"drop"`` removes them;
            ``"keep"`` keeps them (they then count as relevant documents no run can find,
            as trec_eval counts them).
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"no dataset directory at {root}")
    qrels_path = root / "qrels.tsv"
    if not qrels_path.exists():
        qrels_path = root / "qrels" / f"{split}.tsv"
    for needed in (root / "corpus.jsonl", root / "queries.jsonl", qrels_path):
        if not needed.exists():
            raise FileNotFoundError(f"{root} is not a BEIR dataset: {needed.relative_to(root)} is missing")
    if missing_documents not in ("error", "drop", "keep"):
        raise ValueError(f"missing_documents must be 'error', 'drop' or 'keep', got {missing_documents!r}")

    doc_ids, doc_texts, titles, seen = [], [], {}, set()
    for number, row in _jsonl(root / "corpus.jsonl", ("_id", "text")):
        doc_id = str(row["_id"])
        if doc_id in seen:
            raise ValueError(f"{root / 'corpus.jsonl'}, line {number}: duplicate document id {doc_id!r}")
        seen.add(doc_id)
        title = str(row.get("title") or "")
        if title.strip():
            titles[doc_id] = title
        doc_ids.append(doc_id)
        doc_texts.append(f"{title} {row['text']}".strip() if title_field and title else str(row["text"]))
    if not doc_ids:
        raise ValueError(f"{root / 'corpus.jsonl'} holds no documents")

    all_queries = {str(row["_id"]): str(row["text"]) for _, row in _jsonl(root / "queries.jsonl", ("_id", "text"))}
    qrels = _qrels(qrels_path)
    unknown = [q for q in qrels if q not in all_queries]
    if unknown:
        raise ValueError(f"{qrels_path}: queries {unknown[:5]} are judged but not in queries.jsonl")
    if missing_documents != "keep":
        for qid, docs in qrels.items():
            gone = [d for d in docs if d not in seen]
            if gone and missing_documents == "error":
                raise ValueError(f"{qrels_path}: query {qid!r} judges document {gone[0]!r}, which is not in "
                                 "corpus.jsonl (missing_documents='drop' or 'keep' to accept)")
            for d in gone:
                del docs[d]
    queries = {q: all_queries[q] for q in all_queries if q in qrels}
    return Dataset(root.name, doc_ids, doc_texts, queries, {q: qrels[q] for q in queries}, titles)
