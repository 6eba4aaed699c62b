"""PNG writer: charts through plotly + kaleido, tables drawn as a table image the same way
(matplotlib when there is no browser), a PNG the sandbox made written as it is.

kaleido drives a headless Chromium. Starting one takes seconds, so the kernel keeps one open
(``_Renderer``, started by the first PNG) and renders every later PNG in it;
``close_png_renderer()`` stops it (the session calls it on close; it also runs at exit).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import io
import os
import threading
from typing import Any

import pandas as pd
from pandas.api import types as ptypes

from dataask_jupyter.errors import ExportError
from dataask_jupyter.export.tables import chunks, column_names, keep_index, one_line, tables_of
from dataask_jupyter.results import PngImage
from dataask_jupyter.values import format_cell, is_date_only, is_figure

PNG_TABLE_ROWS = 40


def value_png(value: Any, *, width: int | None, height: int | None, scale: float | None) -> bytes:
    """PNG bytes of any answer value: a chart, the table image of the rest, a sandbox PNG."""
    if isinstance(value, PngImage):
        return value.data
    if is_figure(value):
        return chart_png(value, width=width, height=height, scale=scale)
    tables = tables_of(value)
    frame = next(iter(tables.values()))
    try:
        fig, w, h = table_figure(frame)
        return chart_png(fig, width=width or w, height=height or h, scale=scale)
    except ExportError as browser_missing:
        try:
            return _table_png_matplotlib(frame)
        except ImportError:
            raise browser_missing from None


class _Renderer:
    """One kaleido browser (a headless Chromium) on its own event-loop thread, kept open so
    each PNG after the first costs a render, not a browser start. Thread-safe; a failed or
    timed-out render closes it, and the next PNG starts a fresh one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._kaleido: Any = None
        self._pid = 0

    @property
    def running(self) -> bool:
        return self._kaleido is not None and self._pid == os.getpid()

    def render(self, fig: dict[str, Any], opts: dict[str, Any]) -> bytes:
        with self._lock:
            if not self.running:
                self._start()
            try:
                data: bytes = self._call(self._kaleido.calc_fig(fig, opts=opts), RENDER_TIMEOUT)
            except BaseException:
                self._close()
                raise
            return data

    def close(self) -> None:
        with self._lock:
            self._close()

    def _call(self, coro: Any, timeout: float) -> Any:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no image from Chromium after {timeout:.0f} s") from None

    def _start(self) -> None:
        import kaleido

        self._kaleido, self._pid = None, os.getpid()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="dataask-png-renderer", daemon=True
        )
        self._thread.start()

        async def open_browser() -> Any:
            # mathjax=False: no script from the network; the page has plotly.js from plotly
            k = kaleido.Kaleido(n=1, timeout=RENDER_TIMEOUT, mathjax=False)
            return await k.__aenter__()

        try:
            self._kaleido = self._call(open_browser(), START_TIMEOUT)
        except BaseException:
            self._close()
            raise
        if not _atexit_registered:
            _register_atexit()

    def _close(self) -> None:
        loop, thread, k = self._loop, self._thread, self._kaleido
        self._loop = self._thread = self._kaleido = None
        if loop is None or self._pid != os.getpid():
            return  # a forked child: the browser belongs to the parent
        if k is not None:
            with contextlib.suppress(BaseException):
                asyncio.run_coroutine_threadsafe(k.__aexit__(None, None, None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(5)
        if not loop.is_running():
            loop.close()


_renderer = _Renderer()
_atexit_registered = False
#: Seconds to start the browser, and to render one image.
START_TIMEOUT = 60.0
RENDER_TIMEOUT = 60.0


def _register_atexit() -> None:
    global _atexit_registered
    atexit.register(close_png_renderer)
    _atexit_registered = True


def close_png_renderer() -> None:
    """Stop the kernel's PNG browser, if one runs (idempotent; the next PNG starts another)."""
    _renderer.close()


def chart_png(
    fig: Any, *, width: int | None = None, height: int | None = None, scale: float | None = None
) -> bytes:
    """A plotly figure as PNG bytes (kaleido + the system's Chrome/Chromium, kept running)."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        raise ExportError(
            "PNG export needs the kaleido package, which is not installed: pip install kaleido "
            "(it also needs Chrome or Chromium, e.g. apt-get install chromium)"
        ) from None
    layout = fig.layout
    opts = {
        "format": "png",
        "width": width or layout.width or 1000,
        "height": height or layout.height or 600,
        "scale": scale or 1,
    }
    try:
        return _renderer.render(fig.to_dict(), opts)
    except Exception as exc:
        text = one_line(exc)
        if "chrome" in text.lower() or "browser" in text.lower():
            raise ExportError(
                "PNG export found kaleido but no Chrome/Chromium browser for it: install one "
                "(e.g. apt-get install chromium) or point BROWSER_PATH at it"
            ) from None
        raise ExportError(f"PNG export failed in kaleido: {text}") from None


def table_figure(frame: pd.DataFrame, max_rows: int = PNG_TABLE_ROWS) -> tuple[Any, int, int]:
    """A plotly table of the first ``max_rows`` rows, and a width and height that fit it."""
    import plotly.graph_objects as go

    shown = frame.head(max_rows)
    names = column_names(shown, keep_index(shown))
    body = next(chunks(shown, max(1, len(shown)), guard=False))
    columns = [
        [format_cell(v, is_date_only(body.iloc[:, i])) or "" for v in body.iloc[:, i].tolist()]
        for i in range(body.shape[1])
    ]
    widths = [
        min(max(len(n), *(len(v) for v in col), 4) * 7.5 + 24, 360)
        for n, col in zip(names, columns, strict=True)
    ]
    numeric = [ptypes.is_numeric_dtype(body.iloc[:, i].dtype) for i in range(body.shape[1])]
    fig = go.Figure(
        go.Table(
            columnwidth=widths,
            header={
                "values": [f"<b>{_plotly_text(n)}</b>" for n in names],
                "fill_color": "#e8eef7",
                "align": "left",
                "font": {"size": 13},
                "height": 28,
            },
            cells={
                "values": [[_plotly_text(v) for v in col] for col in columns],
                "align": ["right" if num else "left" for num in numeric],
                "fill_color": [["#ffffff", "#f6f8fb"] * (len(shown) // 2 + 1)],
                "font": {"size": 12},
                "height": 24,
            },
        )
    )
    note = f"first {max_rows} of {len(frame):,} rows" if len(frame) > max_rows else ""
    fig.update_layout(
        margin={"l": 10, "r": 10, "t": 10, "b": 30 if note else 10},
        annotations=[
            {
                "text": note,
                "showarrow": False,
                "x": 0,
                "y": 0,
                "xref": "paper",
                "yref": "paper",
                "yshift": -20,
                "xanchor": "left",
                "font": {"size": 11},
            }
        ]
        if note
        else [],
    )
    width = int(min(max(sum(widths) + 20, 300), 2400))
    height = int(28 + 24 * max(1, len(shown)) + (50 if note else 30))
    return fig, width, height


def _plotly_text(v: str) -> str:
    """Plotly table text is a small HTML subset: escape it."""
    import html

    return html.escape(v, quote=False)


def _table_png_matplotlib(frame: pd.DataFrame, max_rows: int = PNG_TABLE_ROWS) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    shown = frame.head(max_rows)
    names = column_names(shown, keep_index(shown))
    body = next(chunks(shown, max(1, len(shown)), guard=False))
    cells = [[format_cell(v) or "" for v in row] for row in body.itertuples(index=False)]
    fig, ax = plt.subplots(figsize=(min(2 + 1.6 * len(names), 30), 0.6 + 0.3 * (len(cells) + 1)))
    ax.axis("off")
    table = ax.table(cellText=cells or [[""] * len(names)], colLabels=names, loc="upper left")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
