"""Column names (blank, duplicate, padded) and light type fixes shared by every format."""

from __future__ import annotations

import datetime as _dt
import re
import warnings
from collections.abc import Hashable, Sequence

import pandas as pd

from .common import quote

_UNNAMED_RE = re.compile(r"^Unnamed: \d+(_level_\d+)?$")
_MANGLED_RE = re.compile(r"^(.*)\.(\d+)$", re.DOTALL)


def _is_blank_name(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and value != value:
        return True
    text = str(value)
    return not text.strip() or bool(_UNNAMED_RE.match(text))


def _flatten(col: Hashable) -> object:
    if isinstance(col, tuple):
        parts = [str(p).strip() for p in col if not _is_blank_name(p)]
        return "_".join(parts)
    return col


def _unmangle(names: list[str]) -> list[str]:
    """Undo pandas' "price", "price.1" renaming of duplicate headers (we rename our own way)."""
    out: list[str] = []
    for n in names:
        m = _MANGLED_RE.match(n)
        out.append(m.group(1) if m and m.group(1) in out else n)
    return out


def clean_columns(
    columns: Sequence[Hashable], raw: Sequence[str] | None, notes: list[str]
) -> list[str]:
    flat = [_flatten(c) for c in columns]
    if raw is not None:
        names: list[str] = [str(r) for r in raw]
    else:
        names = _unmangle(["" if _is_blank_name(c) else str(c) for c in flat])
    out: list[str] = []
    blank: list[str] = []
    trimmed: list[str] = []
    renamed: list[str] = []
    for i, n in enumerate(names):
        if _is_blank_name(n):
            out.append(f"unnamed_{i + 1}")
            blank.append(out[-1])
        elif n != n.strip():
            out.append(n.strip())
            trimmed.append(quote(n))
        else:
            out.append(n)
    taken = set(out)
    seen: set[str] = set()
    for i, n in enumerate(out):
        if n in seen:
            k = 2
            while f"{n}_{k}" in taken:
                k += 1
            new = f"{n}_{k}"
            taken.add(new)
            out[i] = new
            renamed.append(f"{quote(n)} to {quote(new)}")
            seen.add(new)
        else:
            seen.add(n)
    if blank:
        notes.append(f"Named the columns without a name {_listed([quote(b) for b in blank])}.")
    if trimmed:
        notes.append(f"Removed the spaces around the column names {_listed(trimmed)}.")
    if renamed:
        notes.append(f"Renamed repeated column names: {_listed(renamed)}.")
    return out


def _listed(items: list[str], limit: int = 8) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


_ISO_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
)


def parse_dates(df: pd.DataFrame, notes: list[str]) -> None:
    """Turn text columns whose values are all ISO dates into datetime64 (conservative)."""
    for i in range(df.shape[1]):
        col = df.iloc[:, i]
        if col.dtype != object and not isinstance(col.dtype, pd.StringDtype):
            continue
        probe = col.iloc[:5000].dropna()
        if probe.empty:
            continue
        sample = probe.iloc[:500]
        first = sample.iloc[0]
        if isinstance(first, _dt.date) and all(isinstance(v, _dt.date) for v in sample):
            converted = pd.to_datetime(col, errors="coerce")
        elif all(isinstance(v, str) and _ISO_RE.match(v) for v in sample):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    converted = pd.to_datetime(col, format="ISO8601")
            except (ValueError, TypeError, OverflowError):
                continue
        else:
            continue
        if int(converted.isna().sum()) != int(col.isna().sum()):
            continue
        df.isetitem(i, converted.array)
        notes.append(f"Read the text of column {quote(df.columns[i])} as dates.")


def plain_categoricals(df: pd.DataFrame, notes: list[str]) -> None:
    """Categorical columns (parquet, DataFrames) become their plain values.

    Generated code trips over them: ``groupby().sum()`` raises, ``max()`` needs an order,
    ``groupby`` lists unobserved categories, ``unique()`` is not a plain array.
    """
    changed = []
    for i in range(df.shape[1]):
        col = df.iloc[:, i]
        if isinstance(col.dtype, pd.CategoricalDtype):
            df.isetitem(i, col.astype(col.cat.categories.dtype).array)
            changed.append(quote(df.columns[i]))
    if changed:
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        plural = "s" if len(changed) > 1 else ""
        notes.append(
            f"Read the categorical column{plural} {', '.join(changed[:5])}{more} as plain values."
        )


def finish(df: pd.DataFrame, notes: list[str], raw: Sequence[str] | None = None) -> pd.DataFrame:
    df.columns = pd.Index(clean_columns(list(df.columns), raw, notes), dtype=object)
    parse_dates(df, notes)
    return df
