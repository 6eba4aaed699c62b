"""Pages of an answer's table, for the table widget and the side panel: sorted on the whole
frame, one page at a time.

Only the visible page leaves the kernel (display strings, ``None`` for missing values). Each
column's order is computed once (stable, missing values last) and cached, so paging a sorted
million-row table costs a slice. Index levels (other than the default 0..n-1) are columns too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from dataask_jupyter.values import flat_name, format_cell, is_date_only, to_frame, unique_names

__all__ = ["MAX_PAGE_SIZE", "PAGE_SIZES", "Column", "Pager", "columns_of"]

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


def _column(label: str, values: pd.Series, *, index: bool) -> Column:
    dt = values.dtype
    numeric = bool(ptypes.is_numeric_dtype(dt) and not ptypes.is_bool_dtype(dt))
    return Column(label, values, str(dt), numeric, is_date_only(values), index)


def columns_of(frame: pd.DataFrame) -> list[Column]:
    """The frame's columns, index levels first unless the index is the default 0..n-1; labels
    made unique (a sort names its column by label)."""
    cols: list[Column] = []
    idx = frame.index
    default_index = isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1
    if not (default_index and idx.name is None):
        for level in range(idx.nlevels):
            values = pd.Series(idx.get_level_values(level), copy=False).reset_index(drop=True)
            cols.append(_column(flat_name(idx.names[level]), values, index=True))
    for i in range(frame.shape[1]):
        values = frame.iloc[:, i].reset_index(drop=True)
        cols.append(_column(flat_name(frame.columns[i]), values, index=False))
    for c, label in zip(cols, unique_names(c.label for c in cols), strict=True):
        c.label = label
    return cols


def page_count(total_rows: int, page_size: int) -> int:
    """How many pages ``total_rows`` fill (at least one)."""
    return max(1, -(-total_rows // max(1, page_size)))


class Pager:
    """Pages of one DataFrame or Series (a Series is a one-column table)."""

    def __init__(self, data: pd.DataFrame | pd.Series) -> None:
        self.frame = to_frame(data)
        self.columns = columns_of(self.frame)
        self._orders: dict[tuple[str, bool], np.ndarray] = {}

    @property
    def total_rows(self) -> int:
        return len(self.frame)

    def positions(
        self, page: int, page_size: int, sort_by: str = "", ascending: bool = True
    ) -> np.ndarray:
        """Row positions (in the frame) of one page, in display order (``sort_by`` must be a
        column label, or "" for the original order)."""
        start = page * page_size
        stop = min(start + page_size, self.total_rows)
        if start >= stop:
            return np.arange(0)
        if not sort_by:
            return np.arange(start, stop)
        return self._order(sort_by, ascending)[start:stop]

    def rows(self, positions: np.ndarray) -> list[list[Any]]:
        """The display strings (``None`` for missing values) of the rows at ``positions``."""
        cells = [
            [format_cell(v, c.date_only) for v in c.values.iloc[positions].tolist()]
            for c in self.columns
        ]
        return [list(r) for r in zip(*cells, strict=True)] if cells else []

    def page(
        self, page: int = 0, page_size: int = 20, sort_by: str = "", ascending: bool = True
    ) -> dict[str, Any]:
        """One page as JSON-ready data; out-of-range numbers are clamped, unknown columns
        ignored."""
        size = int(min(max(1, page_size), MAX_PAGE_SIZE))
        pages = page_count(self.total_rows, size)
        page = int(min(max(0, page), pages - 1))
        sort_by = sort_by if sort_by in {c.label for c in self.columns} else ""
        return {
            "columns": [c.info() for c in self.columns],
            "rows": self.rows(self.positions(page, size, sort_by, bool(ascending))),
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
