"""Result normalisation, kernel side: decode what the sandbox sent, never unpickling."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from dataask_jupyter.errors import SandboxError


@dataclass(frozen=True)
class PngImage:
    """A PNG the sandbox rendered (e.g. a matplotlib figure)."""

    data: bytes

    def _repr_png_(self) -> bytes:
        return self.data

    def __repr__(self) -> str:
        return f"<PNG image, {len(self.data):,} bytes>"


def _check_schema(schema: pa.Schema) -> None:
    def walk(t: pa.DataType) -> None:
        if isinstance(t, pa.ExtensionType):
            raise SandboxError(f"refused a result column of extension type {t!r}")
        for i in range(t.num_fields):
            walk(t.field(i).type)

    for f in schema:
        walk(f.type)


def frame_from_ipc(payload: bytes) -> pd.DataFrame:
    """Decode an Arrow IPC stream into a DataFrame (extension types refused)."""
    reader = pa.ipc.open_stream(payload)
    _check_schema(reader.schema)
    return reader.read_all().to_pandas()


def frame_to_ipc(frame: pd.DataFrame) -> bytes:
    """Encode a DataFrame as an Arrow IPC stream (index kept when it carries information)."""
    table = pa.Table.from_pandas(frame, preserve_index=None)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _untag(obj: Any) -> Any:
    if isinstance(obj, list):
        return [_untag(v) for v in obj]
    if isinstance(obj, dict):
        if len(obj) == 1:
            ((k, v),) = obj.items()
            if k == "$datetime":
                return pd.Timestamp(v)
            if k == "$date":
                return dt.date.fromisoformat(v)
            if k == "$timedelta":
                return pd.Timedelta(v)
            if k == "$float":
                return float(v)
            if k == "$repr":
                return str(v)
        return {k: _untag(v) for k, v in obj.items()}
    return obj


def decode(header: dict[str, Any], payload: bytes) -> Any:
    """Turn a ``result`` message into the value the user sees."""
    kind = header.get("kind")
    if kind == "table":
        return frame_from_ipc(payload)
    if kind == "series":
        frame = frame_from_ipc(payload)
        return frame.iloc[:, 0].rename(header.get("name"))
    if kind == "json":
        value = _untag(json.loads(payload))
        if header.get("pytype") == "tuple" and isinstance(value, list):
            return tuple(value)
        return value
    if kind == "figure":
        import plotly.io as pio

        return pio.from_json(payload.decode(), output_type="Figure", skip_invalid=True)
    if kind == "image":
        if not payload.startswith(b"\x89PNG\r\n\x1a\n"):
            raise SandboxError("the sandbox sent an image that is not a PNG")
        return PngImage(payload)
    if kind == "none":
        return None
    raise SandboxError(f"the sandbox sent a result of unknown kind {kind!r}")


def encode_prev(value: Any) -> tuple[dict[str, Any], bytes] | None:
    """Encode a previous answer so a restarted sandbox can have ``prev`` again (tables, JSON)."""
    if isinstance(value, pd.DataFrame):
        return {"kind": "table"}, frame_to_ipc(value)
    if isinstance(value, pd.Series):
        name = None if value.name is None else str(value.name)
        return {"kind": "series", "name": name}, frame_to_ipc(value.to_frame(name or "value"))
    if value is None or isinstance(value, (bool, int, float, str, list, dict)):
        try:
            return {"kind": "json"}, json.dumps(value, default=str).encode()
        except (TypeError, ValueError):
            return None
    return None


def summarize(value: Any, limit: int = 300) -> str:
    """A one-line description of a value, for the prompt's conversation history and the history."""
    if isinstance(value, pd.DataFrame):
        cols = ", ".join(json.dumps(str(c)) for c in list(value.columns)[:12])
        more = "" if value.shape[1] <= 12 else f", ... ({value.shape[1]} columns)"
        text = f"DataFrame {value.shape[0]:,} rows x {value.shape[1]} columns [{cols}{more}]"
    elif isinstance(value, pd.Series):
        text = (
            f"Series {json.dumps(str(value.name))} of {len(value):,} values "
            f"(dtype {value.dtype}), first: {value.head(3).to_dict()}"
        )
    elif type(value).__module__.startswith("plotly"):
        traces = [getattr(t, "type", "?") for t in getattr(value, "data", [])]
        title = getattr(getattr(getattr(value, "layout", None), "title", None), "text", None)
        text = f"plotly figure ({', '.join(traces) or 'no traces'}){f': {title}' if title else ''}"
    elif isinstance(value, PngImage):
        text = "a PNG image"
    else:
        text = f"{type(value).__name__}: {value!r}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
