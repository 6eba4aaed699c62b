"""Value helpers at the bottom of the kernel side: type tests, cell text, names, sizes.

Neutral: no view, no session. The exporter, the result checks, the renderer and the widgets all
format and test values through these, so a table, its export and its check agree. Column-name
flattening and figure detection come from the result codec (``dataask_sandbox.codec``), which
the sandbox shares, so both sides name columns alike.
"""

from __future__ import annotations

import datetime as _dt
import math
import numbers
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from dataask_sandbox.codec import flat_name, is_figure, unique_names

__all__ = [
    "MAX_CELL_CHARS",
    "flat_name",
    "format_cell",
    "format_number",
    "human_size",
    "is_date_only",
    "is_figure",
    "is_null",
    "is_table",
    "to_frame",
    "unique_names",
]

#: Longest text shown in one table cell (the full value stays in the data and the exports).
MAX_CELL_CHARS = 300


def is_null(v: Any) -> bool:
    """A missing scalar: None, NaN, NaT or pd.NA (never raises on containers)."""
    if v is None or v is pd.NaT or v is pd.NA:
        return True
    if isinstance(v, float):
        return math.isnan(v)
    if isinstance(v, np.floating):
        return bool(np.isnan(v))
    return False


def is_table(v: Any) -> bool:
    """A DataFrame or Series."""
    return isinstance(v, (pd.DataFrame, pd.Series))


def _fmt_float(f: float) -> str:
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    if f == 0 or 1e-4 <= abs(f) < 1e15:
        return np.format_float_positional(f, precision=6, trim="-")
    return f"{f:.6g}"


def format_cell(v: Any, date_only: bool = False) -> str | None:
    """One cell as display text (``None`` for a missing value); long text is cut."""
    if is_null(v):
        return None
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        return _fmt_float(float(v))
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d") if date_only else str(v)
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat(sep=" ") if isinstance(v, _dt.datetime) else v.isoformat()
    text = v if isinstance(v, str) else str(v)
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"


def format_number(v: Any) -> str:
    """A number for a headline: thousands separators, sensible decimals."""
    if isinstance(v, (bool, np.bool_)):
        return "Yes" if v else "No"
    if isinstance(v, numbers.Integral):
        return f"{int(v):,}"
    f = float(v)
    if math.isnan(f) or math.isinf(f):
        return str(f)
    if f.is_integer() and abs(f) < 1e15:
        return f"{f:,.0f}"
    if abs(f) >= 1000:
        return f"{f:,.2f}"
    return f"{f:.6g}"


def is_date_only(s: pd.Series) -> bool:
    """True for a datetime column whose values all fall on midnight (shown as dates)."""
    if not ptypes.is_datetime64_any_dtype(s.dtype):
        return False
    v = s.dropna()
    return bool((v == v.dt.normalize()).all())


def to_frame(value: Any) -> pd.DataFrame:
    """A table view of any answer value (a Series keeps its name or is "value"; a dict becomes
    key/value rows; a list one column; a scalar a one-cell table)."""
    if isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, pd.Series):
        return value.to_frame(name="value" if value.name is None else value.name)
    if isinstance(value, dict):
        return pd.DataFrame({"key": list(value), "value": list(value.values())})
    if isinstance(value, (list, tuple)):
        return pd.DataFrame({"value": list(value)})
    return pd.DataFrame({"value": [value]})


def human_size(n: float) -> str:
    """A byte count for people: ``512 bytes``, ``1.5 KB``, ``20.0 MB`` (powers of 1024)."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
