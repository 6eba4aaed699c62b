"""``DataTable``: a paged, sortable table whose data stays in the kernel.

Only the visible page crosses to the browser (``page_rows``: display strings, ``None`` for
missing values). Sorting and paging happen here, on the whole frame, through the same
:class:`~dataask_jupyter.pages.Pager` the side panel uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import pandas as pd
import traitlets as t

from dataask_jupyter.pages import MAX_PAGE_SIZE, PAGE_SIZES, Pager, page_count
from dataask_jupyter.values import is_table

STATIC = Path(__file__).with_name("static")


def asset(name: str) -> str:
    """The text of a front-end file in ``static/``."""
    return (STATIC / name).read_text(encoding="utf-8")


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
        if not is_table(data):
            raise TypeError(f"DataTable needs a DataFrame or Series, not {type(data).__name__}")
        self._pager = Pager(data)
        sizes = sorted({*PAGE_SIZES, page_size})
        super().__init__(
            columns=[c.info() for c in self._pager.columns],
            total_rows=self._pager.total_rows,
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
        return self._pager.frame

    @property
    def pages(self) -> int:
        return page_count(self.total_rows, self.page_size)

    def positions(self) -> np.ndarray:
        """Row positions (in the frame) of the visible page, in display order."""
        return self._pager.positions(self.page, self.page_size, self.sort_by, self.ascending)

    def visible_frame(self) -> pd.DataFrame:
        """The rows shown now, as a DataFrame."""
        return self.frame.iloc[self.positions()]

    def sort(self, column: str = "", ascending: bool = True) -> None:
        """Sort by ``column`` ("" for the original order) and go to the first page."""
        with self.hold_sync(), self.hold_trait_notifications():
            self.sort_by = column
            self.ascending = ascending

    # --- internals ----------------------------------------------------------------------------
    @t.validate("page")
    def _valid_page(self, proposal: dict[str, Any]) -> int:
        return int(min(max(0, proposal["value"]), self.pages - 1))

    @t.validate("page_size")
    def _valid_page_size(self, proposal: dict[str, Any]) -> int:
        return int(min(max(1, proposal["value"]), MAX_PAGE_SIZE))

    @t.validate("sort_by")
    def _valid_sort_by(self, proposal: dict[str, Any]) -> str:
        label = str(proposal["value"])
        labels = [c.label for c in self._pager.columns]
        if label and label not in labels:
            known = ", ".join(repr(x) for x in labels)
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
        self.page_rows = self._pager.rows(self.positions())

    def __repr__(self) -> str:
        rows, cols = self.frame.shape
        return f"<DataTable {rows:,} rows x {cols:,} columns, page {self.page + 1}/{self.pages}>"
