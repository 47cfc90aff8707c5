"""Metadata rules for :class:`~crossrank.reranking.HybridReranker`'s ``"metadata"`` signal:
each maps one document's metadata dict to a value in [0, 1] (:class:`Recency`,
:class:`SourceTrust`, :class:`FieldMatch`); the signal is their weighted mean."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Literal, Mapping

_MISSING = object()


@dataclass
class _Rule:
    field: str
    missing: float | Literal["error"] = "error"
    weight: float = 1.0

    def score_document(self, query: str, metadata: Mapping[str, Any], i: int) -> float:
        """This rule's value in [0, 1] for document i's metadata."""
        raw = metadata.get(self.field, _MISSING) if isinstance(metadata, Mapping) else _MISSING
        if raw is _MISSING or raw is None:
            if self.missing == "error":
                raise ValueError(f"{type(self).__name__}: document {i} has no metadata field {self.field!r} "
                                 f"(pass missing=<value> to score such documents)")
            return float(self.missing)
        return self.evaluate(query, raw, i)

    def evaluate(self, query: str, raw: Any, i: int) -> float:
        raise NotImplementedError


def _as_datetime(raw: Any, field_name: str, i: int) -> datetime:
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, date):
        value = datetime(raw.year, raw.month, raw.day)
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = datetime.fromtimestamp(float(raw), tz=timezone.utc)
    elif isinstance(raw, str):
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"document {i}: {field_name}={raw!r} is not an ISO date") from None
    else:
        raise TypeError(f"document {i}: {field_name} must be a date, datetime, ISO string or timestamp")
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


@dataclass
class Recency(_Rule):
    """``0.5 ** (age_days / half_life_days)``: 1 for a document dated now, 0.5 one half-life
    ago. Dates: ``datetime``/``date``, ISO strings or Unix timestamps; ``now`` defaults to
    the current time. Future dates count as age 0."""

    half_life_days: float = 30.0
    now: datetime | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.half_life_days, (int, float)) and self.half_life_days > 0):
            raise ValueError(f"half_life_days must be a positive number, got {self.half_life_days!r}")

    def evaluate(self, query: str, raw: Any, i: int) -> float:
        now = _as_datetime(self.now, "now", -1) if self.now is not None else datetime.now(timezone.utc)
        age = max(0.0, (now - _as_datetime(raw, self.field, i)).total_seconds() / 86400)
        return 0.5 ** (age / self.half_life_days)


@dataclass
class SourceTrust(_Rule):
    """``trust[metadata[field]]``, or ``default`` for sources not in the map."""

    trust: Mapping[str, float] = field(default_factory=dict)
    default: float = 0.0

    def evaluate(self, query: str, raw: Any, i: int) -> float:
        return float(self.trust.get(raw, self.default))


@dataclass
class FieldMatch(_Rule):
    """1.0 when the field matches, else 0.0: equal to ``value`` when one is given, otherwise
    when the field's text (or any item of a list) occurs in the query, case-insensitively."""

    value: Any = None

    def evaluate(self, query: str, raw: Any, i: int) -> float:
        if self.value is not None:
            return float(raw == self.value)
        items = raw if isinstance(raw, (list, tuple, set)) else [raw]
        q = query.lower()
        return float(any(str(item).lower() in q for item in items if str(item)))
