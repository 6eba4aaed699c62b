"""The vote stage: several candidate answers to one question, reduced to one by agreement.

Candidates are compared by a canonical key of their values: numbers rounded to 2 decimals,
booleans as true/false, text stripped and case-folded, dates as ISO dates, short lists and
columns as sorted tuples of those (a one-element list counts as its element). Values that
cannot be compared (charts, long tables) have no key and never vote.
"""

from __future__ import annotations

import datetime as _dt
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dataask_jupyter.values import is_figure, is_null

__all__ = ["MAX_VOTING_VALUES", "Candidate", "Tally", "canonical", "choose"]

#: A list or table with more values than this is an answer to look at, not to vote on.
MAX_VOTING_VALUES = 50

Key = tuple[str, ...]


@dataclass
class Candidate:
    """One way of answering a question, and what it gave."""

    name: str  # "chat", "line", "described", "grounded"
    code: str = ""
    value: Any = None
    kind: str = "none"  # as ``RunOutcome.kind``
    stdout: str = ""
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    misfit: str | None = None  # the result check the value fails, if any
    seconds: float = 0.0
    columns: list[str] = field(default_factory=list)  # the columns it was pointed at (grounded)

    @property
    def key(self) -> Key | None:
        return None if self.error is not None else canonical(self.value)


@dataclass(frozen=True)
class Tally:
    """The candidate chosen, and how many candidates gave the same answer."""

    chosen: Candidate
    agree: int
    voters: int  # candidates with a comparable answer

    @property
    def majority(self) -> bool:
        return self.agree * 2 > self.voters


def _scalar(v: Any) -> str | None:
    if isinstance(v, np.generic):
        v = v.item()
    if is_null(v):
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, numbers.Number) and not isinstance(v, complex):
        f = float(v)  # type: ignore[arg-type]
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        r = round(f, 2)
        return str(int(r)) if r == int(r) else f"{r:.2f}"
    if isinstance(v, pd.Timestamp | _dt.datetime):
        ts = pd.Timestamp(v)
        return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, str):
        text = " ".join(v.split()).casefold()
        return _scalar_text_number(text) or text
    if isinstance(v, pd.Timedelta | _dt.timedelta):
        return str(pd.Timedelta(v))
    return None


def _scalar_text_number(text: str) -> str | None:
    """A number written as text ("42", "3.50") keyed as the number, so "42" and 42 agree."""
    try:
        f = float(text.replace(",", ""))
    except ValueError:
        return None
    return _scalar(f) if math.isfinite(f) else None


def _values(value: Any) -> list[Any] | None:
    """The values of a list-like answer, or None for a scalar; a long one is cut just past
    MAX_VOTING_VALUES (it will not vote, and a million rows are never copied to find that)."""
    if isinstance(value, pd.DataFrame | pd.Series | pd.Index | np.ndarray):
        value = value[: MAX_VOTING_VALUES + 1]
    if isinstance(value, pd.DataFrame):
        if value.shape[1] == 0:
            return []
        if value.shape[1] > 1 and value.shape[0] > 1:
            return None  # a real table: look at it, do not vote on it
        first = value.iloc[:, 0] if value.shape[1] == 1 else value.iloc[0]
        return first.tolist()
    if isinstance(value, pd.Series | pd.Index):
        return value.tolist()
    if isinstance(value, np.ndarray):
        return value.ravel().tolist() if value.ndim <= 2 else None
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    return None


def canonical(value: Any) -> Key | None:
    """The key two answers share when they say the same thing; None when not comparable."""
    if value is None or is_figure(value):
        return None
    items = _values(value)
    if items is None:
        one = _scalar(value)
        return None if one is None else (one,)
    if len(items) > MAX_VOTING_VALUES:
        return None
    keys = [_scalar(v) for v in items]
    if any(k is None for k in keys):
        return None
    return tuple(sorted(k for k in keys if k is not None))


def choose(candidates: Sequence[Candidate]) -> Tally:
    """The answer most candidates agree on.

    Only answers that pass the result checks vote, unless none does. Ties go to the group
    holding the earliest candidate (the order given is the order of preference). With no
    comparable answer at all, the first candidate without an error is chosen (else the first).
    """
    if not candidates:
        raise ValueError("no candidates")
    fits = [c.misfit is None and c.key is not None for c in candidates]
    groups: dict[Key, list[int]] = {}
    for i, c in enumerate(candidates):
        key = c.key
        if key is not None and (fits[i] or not any(fits)):
            groups.setdefault(key, []).append(i)
    voters = sum(len(g) for g in groups.values())
    if not groups:
        fallback = next((c for c in candidates if c.error is None), candidates[0])
        return Tally(fallback, 1 if fallback.error is None else 0, 0)

    best = min(groups.values(), key=lambda members: (-len(members), min(members)))
    return Tally(candidates[best[0]], len(best), voters)
