"""Turn the value a run assigned to ``result`` into a typed, size-capped message (never pickle)."""

from __future__ import annotations

import datetime as _dt
import decimal
import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa


class TooLarge(Exception):
    """The result is over the cap; the message says by how much and which setting raises it."""


def _flat_name(col: Any) -> str:
    if isinstance(col, tuple):
        return " / ".join(str(c) for c in col if str(c) != "")
    return str(col)


def _arrow_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``frame`` with string column names, unique, and object columns Arrow can hold."""
    out = frame.copy(deep=False)
    names = [_flat_name(c) for c in out.columns]
    seen: dict[str, int] = {}
    unique = []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        unique.append(n if k == 0 else f"{n}_{k + 1}")
    out.columns = unique
    if isinstance(out.index, pd.MultiIndex):
        out.index = out.index.set_names(
            [n if n is not None else f"level_{i}" for i, n in enumerate(out.index.names)]
        )
    return out


def _to_arrow(frame: pd.DataFrame) -> pa.Table:
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
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def frame_from_ipc(payload: bytes) -> pd.DataFrame:
    return pa.ipc.open_stream(payload).read_all().to_pandas()


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
    if isinstance(value, pd.Period):
        return str(value)
    if isinstance(value, complex):
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


def _is_plotly(value: Any) -> bool:
    mod = type(value).__module__ or ""
    return mod.startswith("plotly.") and hasattr(value, "to_plotly_json")


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


def encode_result(
    value: Any, *, max_bytes: int, max_items: int = 1_000_000
) -> tuple[dict[str, Any], bytes]:
    """Return ``(header, payload)`` for a ``result`` message, refusing values over ``max_bytes``."""
    cap_hint = "raise Ask.max_result_bytes, or return fewer rows (e.g. .head())"
    if isinstance(value, (pd.DataFrame, pd.Series)):
        kind = "series" if isinstance(value, pd.Series) else "table"
        frame = value.to_frame(name=_series_name(value)) if isinstance(value, pd.Series) else value
        estimate = int(frame.memory_usage(index=True, deep=False).sum())
        if estimate > 4 * max_bytes:
            raise TooLarge(
                f"the result is a {len(frame):,} x {frame.shape[1]:,} table of about "
                f"{estimate / 1e6:,.0f} MB, over the {max_bytes / 1e6:,.0f} MB cap; {cap_hint}"
            )
        payload = table_bytes(_to_arrow(frame))
        if len(payload) > max_bytes:
            raise TooLarge(
                f"the result is a {len(frame):,} x {frame.shape[1]:,} table of "
                f"{len(payload) / 1e6:,.1f} MB, over the {max_bytes / 1e6:,.0f} MB cap; {cap_hint}"
            )
        header = {"kind": kind, "rows": len(frame), "columns": int(frame.shape[1])}
        if kind == "series":
            header["name"] = None if value.name is None else str(value.name)
        return header, payload
    if value is None:
        return {"kind": "none"}, b""
    if _is_plotly(value):
        spec = value.to_json()
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


def _series_name(s: pd.Series) -> str:
    return "value" if s.name is None else _flat_name(s.name)
