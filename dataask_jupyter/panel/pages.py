"""Pages of an answer's table for the side panel: sorted on the whole frame, one page at a time.

Only the visible page leaves the kernel (display strings, ``None`` for missing values). Each
column's order is computed once (stable, missing values last) and cached, so paging a sorted
million-row table costs a slice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from dataask_jupyter.values import format_cell, is_date_only

PAGE_SIZES = (10, 20, 50, 100)
MAX_PAGE_SIZE = 500


@dataclass
class Column:
    label: str
    values: pd.Series  # positional (RangeIndex)
    dtype: str
    numeric: bool
    date_only: bool
    index: bool

    def info(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "dtype": self.dtype,
            "numeric": self.numeric,
            "index": self.index,
        }


def _flat(name: Any) -> str:
    if isinstance(name, tuple):
        return " / ".join(str(p) for p in name if str(p) != "")
    return "" if name is None else str(name)


def _column(label: str, values: pd.Series, *, index: bool) -> Column:
    dt = values.dtype
    numeric = bool(ptypes.is_numeric_dtype(dt) and not ptypes.is_bool_dtype(dt))
    return Column(label, values, str(dt), numeric, is_date_only(values), index)


def columns_of(frame: pd.DataFrame) -> list[Column]:
    """The frame's columns, index levels first unless the index is the default 0..n-1."""
    cols: list[Column] = []
    idx = frame.index
    default_index = isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1
    if not (default_index and idx.name is None):
        for level in range(idx.nlevels):
            values = pd.Series(idx.get_level_values(level), copy=False).reset_index(drop=True)
            cols.append(_column(_flat(idx.names[level]), values, index=True))
    for i in range(frame.shape[1]):
        cols.append(
            _column(_flat(frame.columns[i]), frame.iloc[:, i].reset_index(drop=True), index=False)
        )
    seen: dict[str, int] = {}
    for c in cols:  # unique labels: a sort names its column by label
        k = seen.get(c.label, 0)
        seen[c.label] = k + 1
        if k:
            c.label = f"{c.label} ({k + 1})"
    return cols


class Pager:
    """Pages of one DataFrame or Series (a Series is a one-column table)."""

    def __init__(self, data: pd.DataFrame | pd.Series) -> None:
        if isinstance(data, pd.Series):
            data = data.to_frame("value" if data.name is None else data.name)
        self.frame = data
        self.columns = columns_of(data)
        self._orders: dict[tuple[str, bool], np.ndarray] = {}

    @property
    def total_rows(self) -> int:
        return len(self.frame)

    def page(
        self, page: int = 0, page_size: int = 20, sort_by: str = "", ascending: bool = True
    ) -> dict[str, Any]:
        """One page as JSON-ready data; out-of-range numbers are clamped, unknown columns
        ignored."""
        size = int(min(max(1, page_size), MAX_PAGE_SIZE))
        pages = max(1, -(-self.total_rows // size))
        page = int(min(max(0, page), pages - 1))
        labels = {c.label for c in self.columns}
        sort_by = sort_by if sort_by in labels else ""
        start, stop = page * size, min(page * size + size, self.total_rows)
        if start >= stop:
            pos = np.arange(0)
        elif sort_by:
            pos = self._order(sort_by, bool(ascending))[start:stop]
        else:
            pos = np.arange(start, stop)
        cells = [
            [format_cell(v, c.date_only) for v in c.values.iloc[pos].tolist()] for c in self.columns
        ]
        return {
            "columns": [c.info() for c in self.columns],
            "rows": [list(r) for r in zip(*cells, strict=True)] if cells else [],
            "page": page,
            "page_size": size,
            "pages": pages,
            "total_rows": self.total_rows,
            "sort_by": sort_by,
            "ascending": bool(ascending),
        }

    def _order(self, label: str, ascending: bool) -> np.ndarray:
        key = (label, ascending)
        if key not in self._orders:
            s = next(c.values for c in self.columns if c.label == label)
            try:
                ordered = s.sort_values(ascending=ascending, na_position="last", kind="stable")
            except TypeError:  # mixed types in an object column: compare as text
                ordered = s.sort_values(
                    ascending=ascending,
                    na_position="last",
                    kind="stable",
                    key=lambda v: v.map(lambda x: None if pd.isna(x) else str(x)),
                )
            self._orders[key] = ordered.index.to_numpy()
        return self._orders[key]
