"""``DataTable``: a paged, sortable table whose data stays in the kernel.

Only the visible page crosses to the browser (``page_rows``: display strings, ``None`` for
missing values). Sorting happens here, on the whole frame; each column's order is computed once
(stable, missing values last) and cached, so paging a sorted million-row table costs a slice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import pandas as pd
import traitlets as t
from pandas.api import types as ptypes

from dataask_jupyter.values import (
    flat_name,
    format_cell,
    is_date_only,
    is_table,
    to_frame,
    unique_names,
)

STATIC = Path(__file__).with_name("static")
PAGE_SIZES = (10, 20, 50, 100)
MAX_PAGE_SIZE = 500


def asset(name: str) -> str:
    """The text of a front-end file in ``static/``."""
    return (STATIC / name).read_text(encoding="utf-8")


@dataclass
class _Column:
    label: str
    values: pd.Series  # positional (RangeIndex)
    dtype: str
    numeric: bool
    date_only: bool
    index: bool


def as_frame(data: Any) -> pd.DataFrame:
    """A DataFrame view of a DataFrame or Series (a Series keeps its name, or "value")."""
    if not is_table(data):
        raise TypeError(f"DataTable needs a DataFrame or Series, not {type(data).__name__}")
    return to_frame(data)


def _columns(frame: pd.DataFrame) -> list[_Column]:
    cols: list[_Column] = []
    idx = frame.index
    default_index = isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1
    if not (default_index and idx.name is None):
        for level in range(idx.nlevels):
            values = pd.Series(idx.get_level_values(level), copy=False).reset_index(drop=True)
            cols.append(_column(flat_name(idx.names[level]), values, index=True))
    for i in range(frame.shape[1]):
        values = frame.iloc[:, i].reset_index(drop=True)
        cols.append(_column(flat_name(frame.columns[i]), values, index=False))
    # unique labels: sort_by names a column by its label
    for c, label in zip(cols, unique_names(c.label for c in cols), strict=True):
        c.label = label
    return cols


def _column(label: str, values: pd.Series, *, index: bool) -> _Column:
    dt = values.dtype
    numeric = bool(ptypes.is_numeric_dtype(dt) and not ptypes.is_bool_dtype(dt))
    return _Column(label, values, str(dt), numeric, is_date_only(values), index)


class DataTable(anywidget.AnyWidget):
    """A DataFrame (or Series) as an interactive table: sort by a column, page through.

    ``sort_by`` is a column label ("" keeps the original order); index levels are columns too.
    """

    _esm = asset("table.js")
    _css = asset("table.css")

    columns = t.List(t.Dict(), help="label, dtype, numeric, index per column").tag(sync=True)
    page_rows = t.List(t.List(), help="the visible page: display strings or null").tag(sync=True)
    page = t.Int(0, help="0-based page number").tag(sync=True)
    page_size = t.Int(20).tag(sync=True)
    page_sizes = t.List(t.Int(), default_value=list(PAGE_SIZES)).tag(sync=True)
    sort_by = t.Unicode("").tag(sync=True)
    ascending = t.Bool(True).tag(sync=True)
    total_rows = t.Int(0).tag(sync=True)
    caption = t.Unicode("").tag(sync=True)

    def __init__(
        self, data: pd.DataFrame | pd.Series, *, page_size: int = 20, caption: str = "", **kw: Any
    ) -> None:
        self._ready = False
        self._frame = as_frame(data)
        self._cols = _columns(self._frame)
        self._orders: dict[tuple[str, bool], np.ndarray] = {}
        sizes = sorted({*PAGE_SIZES, page_size})
        super().__init__(
            columns=[
                {"label": c.label, "dtype": c.dtype, "numeric": c.numeric, "index": c.index}
                for c in self._cols
            ],
            total_rows=len(self._frame),
            page_size=page_size,
            page_sizes=sizes,
            caption=caption,
            **kw,
        )
        self._ready = True
        self._refresh()

    # --- Python API ---------------------------------------------------------------------------
    @property
    def frame(self) -> pd.DataFrame:
        return self._frame

    @property
    def pages(self) -> int:
        return max(1, -(-self.total_rows // max(1, self.page_size)))

    def positions(self) -> np.ndarray:
        """Row positions (in the frame) of the visible page, in display order."""
        start = self.page * self.page_size
        stop = min(start + self.page_size, self.total_rows)
        if start >= stop:
            return np.arange(0)
        if not self.sort_by:
            return np.arange(start, stop)
        return self._order(self.sort_by, self.ascending)[start:stop]

    def visible_frame(self) -> pd.DataFrame:
        """The rows shown now, as a DataFrame."""
        return self._frame.iloc[self.positions()]

    def sort(self, column: str = "", ascending: bool = True) -> None:
        """Sort by ``column`` ("" for the original order) and go to the first page."""
        with self.hold_sync(), self.hold_trait_notifications():
            self.sort_by = column
            self.ascending = ascending

    # --- internals ----------------------------------------------------------------------------
    def _col(self, label: str) -> _Column:
        for c in self._cols:
            if c.label == label:
                return c
        raise KeyError(label)

    def _order(self, label: str, ascending: bool) -> np.ndarray:
        key = (label, ascending)
        if key not in self._orders:
            s = self._col(label).values
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

    @t.validate("page")
    def _valid_page(self, proposal: dict[str, Any]) -> int:
        return int(min(max(0, proposal["value"]), self.pages - 1))

    @t.validate("page_size")
    def _valid_page_size(self, proposal: dict[str, Any]) -> int:
        return int(min(max(1, proposal["value"]), MAX_PAGE_SIZE))

    @t.validate("sort_by")
    def _valid_sort_by(self, proposal: dict[str, Any]) -> str:
        label = str(proposal["value"])
        if label and label not in {c.label for c in self._cols}:
            known = ", ".join(repr(c.label) for c in self._cols)
            raise t.TraitError(f"no column {label!r} to sort by; columns: {known}")
        return label

    @t.observe("page", "page_size", "sort_by", "ascending")
    def _on_view_change(self, change: dict[str, Any]) -> None:
        if not self._ready:
            return
        with self.hold_sync():
            if change["name"] != "page" and self.page:
                self.page = 0  # a new order or page size starts at the top (this refreshes)
                return
            self._refresh()

    def _refresh(self) -> None:
        pos = self.positions()
        columns = []
        for c in self._cols:
            vals = c.values.iloc[pos].tolist()
            columns.append([format_cell(v, c.date_only) for v in vals])
        self.page_rows = [list(row) for row in zip(*columns, strict=True)] if columns else []

    def __repr__(self) -> str:
        rows, cols = self._frame.shape
        return f"<DataTable {rows:,} rows x {cols:,} columns, page {self.page + 1}/{self.pages}>"
