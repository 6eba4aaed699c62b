"""The "profile" stage: a compact schema summary of a DataFrame for the LLM prompt.

The summary's size does not grow with the number of rows: per column it gives the dtype, the
number of nulls, the number of distinct values and a few examples (text) or the range (numbers,
dates). On frames over ``SAMPLE_ROWS`` rows, distinct counts and examples come from a fixed random
sample of rows and are marked "~". Every name and value is quoted with JSON escaping, so column
names or cell text can never read as instructions or break the line structure.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import numbers
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

__all__ = ["SAMPLE_ROWS", "profile_frame", "schema_table"]

#: Frames longer than this are profiled (distinct counts, examples) on a random sample of rows.
SAMPLE_ROWS = 200_000
_MAX_VALUE_CHARS = 40
_MAX_NAME_CHARS = 120


# --------------------------------------------------------------------------------------------
# quoting


def _escape_invisibles(text: str) -> str:
    """\\u-escape line/paragraph separators, format and private/surrogate characters."""
    out = []
    for ch in text:
        if unicodedata.category(ch) in ("Zl", "Zp", "Cf", "Co", "Cs", "Cc"):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out)


def quote(value: object, limit: int = _MAX_VALUE_CHARS) -> str:
    """A JSON string literal of ``str(value)``, cut to ``limit`` characters (marked "…")."""
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return _escape_invisibles(json.dumps(text, ensure_ascii=False))


def _quote_name(name: object) -> str:
    text = str(name)
    if len(text) > _MAX_NAME_CHARS:
        return f"{quote(text, _MAX_NAME_CHARS)} (name cut, {len(text)} chars)"
    return quote(text, _MAX_NAME_CHARS)


def _fmt_number(x: Any) -> str:
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, numbers.Integral):
        return str(int(x))
    if isinstance(x, numbers.Real):
        f = float(x)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        if f.is_integer() and abs(f) < 1e15:
            return str(int(f))
        if 1 <= abs(f) < 1e15:
            return f"{f:.4f}".rstrip("0").rstrip(".")
        return format(f, ".4g")
    return quote(x)


def _fmt_time(x: Any, date_only: bool) -> str:
    if isinstance(x, pd.Timestamp):
        return x.strftime("%Y-%m-%d") if date_only else x.isoformat()
    return str(x)


def _fmt_value(v: Any) -> str:
    if isinstance(v, str):
        return quote(v)
    if isinstance(v, (bool, np.bool_, numbers.Number)):
        return _fmt_number(v)
    if isinstance(v, pd.Timestamp):
        return _fmt_time(v, v == v.normalize())
    if isinstance(v, (_dt.date, _dt.datetime, _dt.time, pd.Timedelta)):
        return str(v)
    return quote(repr(v))


# --------------------------------------------------------------------------------------------
# per-column statistics


@dataclass
class _ColStats:
    column: str
    dtype: str
    nulls: int
    distinct: int | None
    estimated: bool
    kind: str  # "number" | "bool" | "datetime" | "timedelta" | "text"
    samples: list[str] = field(default_factory=list)
    min: str | None = None
    max: str | None = None


def _sample_index(n: int) -> np.ndarray | None:
    if n <= SAMPLE_ROWS:
        return None
    rng = np.random.default_rng(0)
    return np.sort(rng.choice(n, size=SAMPLE_ROWS, replace=False))


def _kind(s: pd.Series) -> str:
    dt = s.dtype
    if ptypes.is_bool_dtype(dt):
        return "bool"
    if ptypes.is_datetime64_any_dtype(dt):
        return "datetime"
    if ptypes.is_timedelta64_dtype(dt):
        return "timedelta"
    if isinstance(dt, pd.CategoricalDtype):
        return "text"
    if ptypes.is_numeric_dtype(dt) and not ptypes.is_complex_dtype(dt):
        return "number"
    return "text"


def _top_values(s: pd.Series, k: int) -> list[Any]:
    if k <= 0:
        return []
    values = s.dropna()
    if values.empty:
        return []
    try:
        counts = values.value_counts(sort=True)
        return list(counts.index[:k])
    except TypeError:  # unhashable cells (lists, dicts)
        return list(values.iloc[:k])


def _column_stats(
    full: pd.Series, sampled: pd.Series, estimated: bool, sample_values: int, label: str
) -> _ColStats:
    kind = _kind(full)
    nulls = int(full.isna().sum())
    distinct: int | None
    try:
        distinct = int(sampled.nunique(dropna=True))
    except TypeError:
        distinct = None
    if estimated and distinct is not None:
        seen = int(sampled.notna().sum())
        total = len(full) - nulls
        if seen and distinct >= 0.95 * seen:  # nearly all unique: scale up
            distinct = round(distinct * total / seen)
    st = _ColStats(
        column=label,
        dtype=str(full.dtype),
        nulls=nulls,
        distinct=distinct,
        estimated=estimated,
        kind=kind,
    )
    if nulls == len(full):
        return st
    try:
        if kind == "number":
            st.min, st.max = _fmt_number(full.min()), _fmt_number(full.max())
        elif kind in ("datetime", "timedelta"):
            lo, hi = full.min(), full.max()
            if kind == "datetime":
                nonnull = sampled.dropna()
                date_only = bool((nonnull == nonnull.dt.normalize()).all())
                st.min, st.max = _fmt_time(lo, date_only), _fmt_time(hi, date_only)
            else:
                st.min, st.max = str(lo), str(hi)
        else:
            st.samples = [_fmt_value(v) for v in _top_values(sampled, sample_values)]
        if kind == "bool":
            st.samples = [_fmt_value(v) for v in _top_values(sampled, sample_values)]
    except (TypeError, ValueError):
        st.samples = [_fmt_value(v) for v in sampled.dropna().iloc[:sample_values]]
    return st


def _stats(df: pd.DataFrame, ncols: int, sample_values: int) -> list[_ColStats]:
    idx = _sample_index(len(df))
    part = df.iloc[:, :ncols]
    sampled = part if idx is None else part.iloc[idx]
    out = []
    for i in range(part.shape[1]):
        out.append(
            _column_stats(
                part.iloc[:, i],
                sampled.iloc[:, i],
                idx is not None,
                sample_values,
                str(part.columns[i]),
            )
        )
    return out


def _stats_line(st: _ColStats, values: bool = True) -> str:
    approx = "~" if st.estimated else ""
    distinct = "? distinct" if st.distinct is None else f"{approx}{st.distinct:,} distinct"
    head = f"- {_quote_name(st.column)}: {st.dtype}, {st.nulls:,} null, {distinct}"
    if st.distinct == 0 and st.nulls:
        return head + "; all null"
    if st.min is not None and values:
        return f"{head}; range {st.min}..{st.max}"
    if st.samples:
        return f"{head}; e.g. {', '.join(st.samples)}"
    return head


# --------------------------------------------------------------------------------------------
# public


def profile_frame(
    df: pd.DataFrame,
    name: str,
    *,
    max_columns: int = 80,
    max_chars: int = 6000,
    sample_values: int = 3,
    values: bool = True,
) -> str:
    """A compact text schema of ``df`` for the LLM prompt, at most ``max_chars`` characters.

    The first ``max_columns`` columns get dtype, nulls, distinct count and examples or range;
    the rest are listed as ``name: dtype`` only; whatever does not fit is counted on a final
    "... N more columns" line. With ``values=False`` no cell value appears (no examples, no
    ranges): names, types and counts only.
    """
    rows, cols = df.shape
    lines = [f"Dataset {quote(name, _MAX_NAME_CHARS)}: {rows:,} rows x {cols:,} columns"]
    if cols == 0:
        return lines[0]
    lines.append("columns (name: dtype, nulls, distinct; examples / range):")
    detailed = max(0, min(max_columns, cols))
    stats = _stats(df, detailed, sample_values if values else 0)
    body: list[tuple[str, int]] = [(_stats_line(st, values), 1) for st in stats]
    if cols > detailed:
        body.append(("other columns (name: dtype):", 0))
        line, count = "", 0
        for i in range(detailed, cols):
            item = f"{_quote_name(df.columns[i])}: {df.iloc[:, i].dtype}"
            if line and len(line) + len(item) + 2 > 160:
                body.append((line, count))
                line, count = "", 0
            line = f"{line}, {item}" if line else item
            count += 1
        if line:
            body.append((line, count))

    def footer(missing: int) -> str:
        return f"... {missing:,} more column{'s' if missing != 1 else ''}"

    used = sum(len(x) + 1 for x in lines)
    shown = 0
    for text, count in body:
        reserve = len(footer(cols)) + 1 if shown + count < cols else 0
        if used + len(text) + 1 + reserve > max_chars:
            break
        lines.append(text)
        used += len(text) + 1
        shown += count
    if shown < cols:
        lines.append(footer(cols - shown))
    out = "\n".join(lines)
    return out if len(out) <= max_chars else out[: max(0, max_chars - 1)] + "…"


def schema_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per column: column, dtype, nulls, distinct, samples, min, max (all columns).

    ``distinct`` is estimated from a sample of rows on frames over ``SAMPLE_ROWS`` rows;
    ``samples``, ``min`` and ``max`` are display strings (None where they do not apply).
    """
    stats = _stats(df, df.shape[1], 3)
    return pd.DataFrame(
        {
            "column": [s.column for s in stats],
            "dtype": [s.dtype for s in stats],
            "nulls": pd.array([s.nulls for s in stats], dtype="int64"),
            "distinct": pd.array([s.distinct for s in stats], dtype="Int64"),
            "samples": [", ".join(s.samples) for s in stats],
            "min": [s.min for s in stats],
            "max": [s.max for s in stats],
        }
    )
