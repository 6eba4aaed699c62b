"""Shaping answer values into tables for the writers: which tables, which column names, the
index as columns, slices of rows, and the formula guard."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
from pandas.api import types as ptypes

from dataask_jupyter.values import flat_name, is_table, to_frame, unique_names

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def tables_of(value: Any, name: str = "answer") -> dict[str, pd.DataFrame]:
    """Name -> table: several for a dict or list of DataFrames/Series, else one named ``name``."""
    if isinstance(value, dict) and value and all(is_table(v) for v in value.values()):
        return {str(k): to_frame(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and value and all(is_table(v) for v in value):
        return {f"{name} {i + 1}": to_frame(v) for i, v in enumerate(value)}
    return {name: to_frame(value)}


def guard_text(v: Any) -> Any:
    """``v`` with an apostrophe in front when it is text a spreadsheet would run as a formula."""
    if isinstance(v, str) and v.startswith(FORMULA_PREFIXES):
        return "'" + v
    return v


def guard_series(s: pd.Series) -> pd.Series:
    """``guard_text`` over a column (vectorised for string dtypes, categories renamed)."""
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        return s.cat.rename_categories(lambda c: guard_text(c))
    if ptypes.is_string_dtype(dt) and not ptypes.is_object_dtype(dt):
        hit = s.str.startswith(FORMULA_PREFIXES).fillna(False).astype(bool)
        return s.mask(hit, "'" + s) if hit.any() else s
    if ptypes.is_object_dtype(dt):
        return s.map(guard_text)
    return s


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with an apostrophe before text cells (and column names, and index labels) that a
    spreadsheet would run as a formula: those starting with = + - @, tab or CR."""
    out = frame.copy()
    for i in range(out.shape[1]):
        out.isetitem(i, guard_series(out.iloc[:, i]).to_numpy())
    out.columns = pd.Index([guard_text(c) for c in out.columns])
    if not isinstance(out.index, pd.MultiIndex) and ptypes.is_string_dtype(out.index.dtype):
        out.index = out.index.map(guard_text)
    return out


def keep_index(frame: pd.DataFrame) -> bool:
    """Whether the index carries information worth a column: a name, several levels, or labels
    (text, dates). An unnamed integer index is row numbers left over from filtering or sorting."""
    idx = frame.index
    if isinstance(idx, pd.MultiIndex) or any(n is not None for n in idx.names):
        return True
    return not ptypes.is_integer_dtype(idx.dtype)


def column_names(frame: pd.DataFrame, with_index: bool) -> list[str]:
    """Output column names: index levels (when kept) then columns, flattened and unique."""
    out: list[str] = []
    if with_index:
        levels = frame.index.names
        for i, n in enumerate(levels):
            out.append(
                flat_name(n) if n is not None else ("index" if len(levels) == 1 else f"level_{i}")
            )
    out += [flat_name(c) for c in frame.columns]
    return unique_names(out)


def chunks(frame: pd.DataFrame, rows: int, guard: bool) -> Iterator[pd.DataFrame]:
    """Slices of ``frame`` with the index as columns (when kept) and positional column labels."""
    keep = keep_index(frame)
    n = len(frame)
    for start in range(0, max(n, 1), max(1, rows)):
        part = frame.iloc[start : start + rows]
        if keep:
            index_cols = [
                pd.Series(part.index.get_level_values(i), index=part.index, copy=False)
                for i in range(part.index.nlevels)
            ]
            cols = [*index_cols, *(part.iloc[:, i] for i in range(part.shape[1]))]
        else:
            cols = [part.iloc[:, i] for i in range(part.shape[1])]
        if guard:
            cols = [guard_series(c) for c in cols]
        out = pd.concat(cols, axis=1, ignore_index=True) if cols else pd.DataFrame(index=part.index)
        out.index = pd.RangeIndex(len(out))
        yield out


def one_line(exc: BaseException | str, limit: int = 300) -> str:
    """An error as one line of at most ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
