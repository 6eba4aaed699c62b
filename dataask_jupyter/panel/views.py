"""What the side panel shows, as JSON-ready dicts: datasets, and each turn of the conversation.

A view reads the ``Session``'s objects and never changes them. Tables carry only their first
page (the panel asks for other pages); charts are plotly figure JSON.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from dataask_jupyter import render
from dataask_jupyter.pages import Pager
from dataask_jupyter.results import PngImage

if TYPE_CHECKING:
    from dataask_jupyter.session import Answer, Dataset
    from dataask_jupyter.store import DatasetRecord

FIRST_PAGE_ROWS = 10


def dataset_view(ds: Dataset, active: bool) -> dict[str, Any]:
    rows, cols = ds.shape
    return {
        "name": ds.name,
        "rows": int(rows),
        "columns": int(cols),
        "source": ds.source,
        "format": ds.format,
        "sheet": ds.sheet,
        "sheets": list(ds.sheets),
        "notes": list(ds.notes),
        "summary": ds.summary(),
        "active": active,
        "pending": False,
    }


def pending_view(record: DatasetRecord, active: bool) -> dict[str, Any]:
    """A dataset of an earlier kernel, read again from its file when a question needs it."""
    return {
        "name": record.name,
        "rows": -1,
        "columns": len(record.columns),
        "source": record.source,
        "format": record.format,
        "sheet": record.sheet,
        "sheets": [],
        "notes": list(record.notes),
        "summary": f"{record.name}: from {record.source or 'a DataFrame'} (read again when needed)",
        "active": active,
        "pending": True,
    }


def tables_of(value: Any) -> list[tuple[str, pd.DataFrame | pd.Series]]:
    """The tables an answer's value shows: a DataFrame or Series, or each table of a dict/list
    (the exporter's reading: one sheet each)."""
    if isinstance(value, (pd.DataFrame, pd.Series)):
        return [("", value)]
    if isinstance(value, (dict, list, tuple)):
        from dataask_jupyter.export import tables_of as export_tables
        from dataask_jupyter.export import to_frame

        found = export_tables(value, "table")
        if len(found) > 1:
            return list(found.items())
        if isinstance(value, dict):
            return [("", to_frame(value))]
    return []


def figure_json(fig: Any) -> dict[str, Any]:
    """A plotly figure as the JSON of the plotly MIME type."""
    return render.plotly_json(fig)


def value_view(a: Answer, pager: Callable[[int], Pager | None]) -> dict[str, Any]:
    """The answer's value: ``pager(i)`` gives the pager of its i-th table."""
    value = a.value
    tables = tables_of(value)
    if tables:
        views = []
        for i, (caption, _t) in enumerate(tables):
            p = pager(i)
            assert p is not None
            views.append({"caption": caption, "page": p.page(0, FIRST_PAGE_ROWS)})
        chartable = len(tables) == 1 and render.can_chart(tables[0][1])
        return {"type": "tables", "tables": views, "chartable": chartable}
    if render.is_figure(value):
        return {"type": "figure", "figure": figure_json(value)}
    if isinstance(value, PngImage):
        return {"type": "image", "png": base64.b64encode(value.data).decode("ascii")}
    if value is None:
        return {"type": "none", "text": "No value: the code set result = None."}
    text, noun = render.headline(value)
    return {"type": "headline", "text": text, "noun": noun}


def turn_view(a: Answer, pager: Callable[[int], Pager | None]) -> dict[str, Any]:
    """One turn: question, value (or the failure in one line), code and attempts."""
    view: dict[str, Any] = {
        "number": a.number,
        "question": a.question,
        "dataset": a.dataset,
        "ok": a.ok,
        "cancelled": bool(a.cancelled),
        "error": None if a.ok else _one_line(a.error or "failed"),
        "code": a.code,
        "kind": a.kind,
        "seconds": round(float(a.seconds), 3),
        "summary": a.summary,
        "notes": list(a.notes),
        "stdout": a.stdout[-5000:],
        "attempts": [{"code": t.code, "error": t.error} for t in a.attempts],
        "value": value_view(a, pager) if a.ok else None,
    }
    return view


def _one_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else text
    return first if len(first) <= 500 else first[:499] + "…"
