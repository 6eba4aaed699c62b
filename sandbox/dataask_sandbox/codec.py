"""One codec for results, used by both sides: the sandbox encodes with it, the kernel decodes.

A value crosses the boundary as ``(header, payload)``, never pickled: tables and series as Arrow
IPC, plotly figures as their JSON spec, matplotlib figures as PNG bytes, everything else as JSON
with tagged dates. Only the standard library, numpy, pandas and pyarrow (plotly to decode a
figure) are used, so the module runs in the sandbox image and in the kernel alike.

Values Arrow would carry as pandas extension types (``Period``, ``Interval``) are sent as plain
Arrow types: periods and intervals as their text (``2024-01``, ``(0, 10]``), which sorts in
time order for periods and which plotly reads as dates on a chart axis. The decoder refuses any
Arrow extension type, so a hostile payload cannot make pandas build one.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import io
import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "CodecError",
    "TooLarge",
    "decode",
    "encode_result",
    "figure_json",
    "flat_name",
    "frame_from_ipc",
    "frame_to_ipc",
    "is_figure",
    "jsonable",
    "plain_periods",
    "table_bytes",
    "to_arrow",
    "unique_names",
    "untag",
]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class TooLarge(Exception):
    """The result is over the cap; the message says by how much and which setting raises it."""


class CodecError(ValueError):
    """A payload that does not decode (unknown kind, refused type, not a PNG)."""


# --- names and types shared by both sides -----------------------------------------------------
def flat_name(name: Any) -> str:
    """A column or index label as text: tuple labels (MultiIndex columns) joined by " / "."""
    if isinstance(name, tuple):
        return " / ".join(str(p) for p in name if str(p) != "")
    return "" if name is None else str(name)


def unique_names(names: Iterable[str]) -> list[str]:
    """``names`` with repeats numbered: ``["a", "a", "b"]`` -> ``["a", "a_2", "b"]``."""
    out: list[str] = []
    taken: set[str] = set()
    counts: dict[str, int] = {}
    for n in names:
        cand, k = n, counts.get(n, 1)
        while cand in taken:
            k += 1
            cand = f"{n}_{k}"
        counts[n] = k
        taken.add(cand)
        out.append(cand)
    return out


def is_figure(value: Any) -> bool:
    """A plotly figure (``Figure``, ``FigureWidget``), detected without importing plotly."""
    mod = type(value).__module__ or ""
    return mod.startswith("plotly") and hasattr(value, "to_plotly_json")


# --- tables -----------------------------------------------------------------------------------
def _textual(dtype: Any) -> bool:
    """Periods and Intervals (plain or as categories): Arrow would tag them as extension types."""
    if isinstance(dtype, pd.CategoricalDtype):
        return _textual(dtype.categories.dtype)
    return isinstance(dtype, (pd.PeriodDtype, pd.IntervalDtype))


def _as_text(values: Any) -> Any:
    """A Series or Index of Periods or Intervals as text, missing values kept missing."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        names = [str(c) for c in values.dtype.categories]
        cat = values.cat if isinstance(values, pd.Series) else values
        return cat.rename_categories(names)
    return values.astype(str).where(pd.notna(values), None)


def plain_periods(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with Period/Interval columns and index levels as text (itself if none)."""
    cols = [i for i, dtype in enumerate(frame.dtypes) if _textual(dtype)]
    idx = frame.index
    levels = [idx.get_level_values(i) for i in range(idx.nlevels)]
    index_textual = any(_textual(lv.dtype) for lv in levels)
    if not cols and not index_textual:
        return frame
    out = frame.copy(deep=False)
    for i in cols:
        out.isetitem(i, _as_text(out.iloc[:, i]))
    if index_textual:
        plain = [_as_text(lv) if _textual(lv.dtype) else lv for lv in levels]
        out.index = (
            pd.MultiIndex.from_arrays(plain, names=idx.names)
            if isinstance(idx, pd.MultiIndex)
            else pd.Index(plain[0], name=idx.name)
        )
    return out


def _arrow_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``frame`` with unique string column names, named index levels and no extension
    types Arrow would tag."""
    out = plain_periods(frame).copy(deep=False)
    out.columns = pd.Index(unique_names(flat_name(c) for c in out.columns), dtype=object)
    if isinstance(out.index, pd.MultiIndex):
        out.index = out.index.set_names(
            [n if n is not None else f"level_{i}" for i, n in enumerate(out.index.names)]
        )
    return out


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """An Arrow table of ``frame`` (index kept when it carries information); object columns
    Arrow cannot hold become text."""
    frame = _arrow_safe(frame)
    try:
        return pa.Table.from_pandas(frame, preserve_index=None)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError):
        fixed = frame.copy()
        for c in fixed.columns:
            if fixed[c].dtype == object:
                fixed[c] = fixed[c].map(lambda v: None if v is None else str(v))
        if isinstance(fixed.index, pd.MultiIndex) or fixed.index.dtype == object:
            fixed.index = fixed.index.map(str)
        return pa.Table.from_pandas(fixed, preserve_index=None)


def table_bytes(table: pa.Table) -> bytes:
    """An Arrow table as an IPC stream."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def frame_to_ipc(frame: pd.DataFrame) -> bytes:
    """A dataset or previous answer as an Arrow IPC stream, column labels as they are (Arrow
    keeps non-text labels in its pandas metadata); Periods and Intervals as text."""
    return table_bytes(pa.Table.from_pandas(plain_periods(frame), preserve_index=None))


def _check_schema(schema: pa.Schema) -> None:
    def walk(t: pa.DataType) -> None:
        if isinstance(t, pa.ExtensionType):
            raise CodecError(f"refused a result column of extension type {t!r}")
        for i in range(t.num_fields):
            walk(t.field(i).type)

    for f in schema:
        walk(f.type)


def frame_from_ipc(payload: bytes) -> pd.DataFrame:
    """Decode an Arrow IPC stream into a DataFrame (Arrow extension types refused)."""
    reader = pa.ipc.open_stream(payload)
    _check_schema(reader.schema)
    table = reader.read_all()
    # threads only for big tables: on small ones the pool's start-up costs more than the work
    return table.to_pandas(use_threads=table.num_rows * max(1, table.num_columns) > 200_000)


# --- JSON -------------------------------------------------------------------------------------
def jsonable(value: Any, *, budget: list[int]) -> Any:
    """Plain JSON types; dates become tagged ISO strings. ``budget`` caps the element count."""
    budget[0] -= 1
    if budget[0] < 0:
        raise TooLarge("the result has too many elements to send")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else {"$float": str(f)}
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, _dt.datetime)):
        return {"$datetime": value.isoformat()}
    if isinstance(value, _dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, (pd.Timedelta, _dt.timedelta)):
        return {"$timedelta": pd.Timedelta(value).isoformat()}
    if isinstance(value, (pd.Period, pd.Interval, complex)):
        return str(value)
    if isinstance(value, (np.ndarray, pd.api.extensions.ExtensionArray)):
        return [jsonable(v, budget=budget) for v in value.tolist()]
    if isinstance(value, (list, tuple, set, frozenset, pd.Index)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v, budget=budget) for v in items]
    if isinstance(value, dict):
        return {str(k): jsonable(v, budget=budget) for k, v in value.items()}
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return {"$repr": repr(value)[:2000]}


def untag(obj: Any) -> Any:
    """The inverse of ``jsonable``'s tags: ``{"$datetime": ...}`` back to a Timestamp, etc."""
    if isinstance(obj, list):
        return [untag(v) for v in obj]
    if isinstance(obj, dict):
        if len(obj) == 1:
            ((k, v),) = obj.items()
            if k == "$datetime":
                return pd.Timestamp(v)
            if k == "$date":
                return _dt.date.fromisoformat(v)
            if k == "$timedelta":
                return pd.Timedelta(v)
            if k == "$float":
                return float(v)
            if k == "$repr":
                return str(v)
        return {k: untag(v) for k, v in obj.items()}
    return obj


# --- figures ----------------------------------------------------------------------------------
def figure_json(fig: Any) -> str:
    """A plotly figure's JSON spec. Periods and Intervals in it (a chart over
    ``dt.to_period("M")``), which plotly cannot serialise, are written as their text."""
    try:
        return str(fig.to_json())
    except TypeError:
        from plotly.io.json import to_json_plotly

        return str(to_json_plotly(_plain_spec(fig.to_plotly_json())))


def _plain_spec(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain_spec(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain_spec(v) for v in obj]
    if isinstance(obj, (pd.Series, pd.Index, np.ndarray)) and obj.dtype == object:
        return [_plain_spec(v) for v in obj.tolist()]
    if isinstance(obj, (pd.Series, pd.Index)) and _textual(obj.dtype):
        return _as_text(obj).tolist()
    if isinstance(obj, (pd.Period, pd.Interval)):
        return str(obj)
    return obj


def _matplotlib_png(value: Any) -> bytes | None:
    mod = type(value).__module__ or ""
    if not mod.startswith("matplotlib."):
        return None
    fig = getattr(value, "figure", None) or getattr(value, "get_figure", lambda: None)()
    if fig is None and hasattr(value, "savefig"):
        fig = value
    if fig is None:
        return None
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=100)
    return buf.getvalue()


# --- the two directions -----------------------------------------------------------------------
def _series_name(s: pd.Series) -> str:
    return "value" if s.name is None else flat_name(s.name)


def encode_result(
    value: Any, *, max_bytes: int, max_items: int = 1_000_000
) -> tuple[dict[str, Any], bytes]:
    """Return ``(header, payload)`` for a ``result`` message, refusing values over ``max_bytes``."""
    cap_hint = "raise Ask.max_result_bytes, or return fewer rows (e.g. .head())"
    if isinstance(value, (pd.DataFrame, pd.Series)):
        kind = "series" if isinstance(value, pd.Series) else "table"
        frame = value.to_frame(name=_series_name(value)) if isinstance(value, pd.Series) else value
        # a cheap size guard before encoding (memory_usage is costly on small frames: skipped)
        estimate = (
            int(frame.memory_usage(index=True, deep=False).sum()) if frame.size > 100_000 else 0
        )
        if estimate > 4 * max_bytes:
            raise TooLarge(
                f"the result is a {len(frame):,} x {frame.shape[1]:,} table of about "
                f"{estimate / 1e6:,.0f} MB, over the {max_bytes / 1e6:,.0f} MB cap; {cap_hint}"
            )
        payload = table_bytes(to_arrow(frame))
        if len(payload) > max_bytes:
            raise TooLarge(
                f"the result is a {len(frame):,} x {frame.shape[1]:,} table of "
                f"{len(payload) / 1e6:,.1f} MB, over the {max_bytes / 1e6:,.0f} MB cap; {cap_hint}"
            )
        header: dict[str, Any] = {"kind": kind, "rows": len(frame), "columns": int(frame.shape[1])}
        if kind == "series":
            header["name"] = None if value.name is None else str(value.name)
        return header, payload
    if value is None:
        return {"kind": "none"}, b""
    if is_figure(value):
        spec = figure_json(value)
        if len(spec) > max_bytes:
            raise TooLarge(f"the chart spec is {len(spec) / 1e6:,.1f} MB, over the cap; {cap_hint}")
        return {"kind": "figure"}, spec.encode()
    png = _matplotlib_png(value)
    if png is not None:
        return {"kind": "image", "mime": "image/png"}, png
    if isinstance(value, (str, bytes)) and len(value) > max_bytes:
        raise TooLarge(
            f"the result is a string of {len(value):,} characters, over the cap; {cap_hint}"
        )
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    data = jsonable(value, budget=[max_items])
    text = json.dumps(data, allow_nan=False)
    if len(text) > max_bytes:
        raise TooLarge(f"the result is {len(text) / 1e6:,.1f} MB of JSON, over the cap; {cap_hint}")
    return {"kind": "json", "pytype": type(value).__name__}, text.encode()


def decode(header: dict[str, Any], payload: bytes) -> Any:
    """The value of a ``result`` message (or of a previous answer sent back): a DataFrame,
    Series, JSON value, plotly Figure, PNG bytes (kind "image") or None; never unpickles."""
    kind = header.get("kind")
    if kind == "table":
        return frame_from_ipc(payload)
    if kind == "series":
        frame = frame_from_ipc(payload)
        return frame.iloc[:, 0].rename(header.get("name"))
    if kind == "json":
        value = untag(json.loads(payload))
        if header.get("pytype") == "tuple" and isinstance(value, list):
            return tuple(value)
        return value
    if kind == "figure":
        import plotly.io as pio

        return pio.from_json(payload.decode(), output_type="Figure", skip_invalid=True)
    if kind == "image":
        if not payload.startswith(PNG_MAGIC):
            raise CodecError("the sandbox sent an image that is not a PNG")
        return payload
    if kind == "none":
        return None
    raise CodecError(f"the sandbox sent a result of unknown kind {kind!r}")
