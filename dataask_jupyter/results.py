"""Result normalisation, kernel side: decode what the sandbox sent, never unpickling.

The encoding and decoding live in one codec shared with the sandbox (``dataask_sandbox.codec``);
this module turns its errors into ``SandboxError`` and wraps PNG bytes as ``PngImage``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dataask_jupyter.errors import SandboxError
from dataask_jupyter.values import is_figure
from dataask_sandbox import codec
from dataask_sandbox.codec import frame_to_ipc

__all__ = ["PngImage", "decode", "encode_prev", "frame_from_ipc", "frame_to_ipc", "summarize"]


@dataclass(frozen=True)
class PngImage:
    """A PNG the sandbox rendered (e.g. a matplotlib figure)."""

    data: bytes

    def _repr_png_(self) -> bytes:
        return self.data

    def __repr__(self) -> str:
        return f"<PNG image, {len(self.data):,} bytes>"


def frame_from_ipc(payload: bytes) -> pd.DataFrame:
    """Decode an Arrow IPC stream into a DataFrame (extension types refused)."""
    try:
        return codec.frame_from_ipc(payload)
    except codec.CodecError as exc:
        raise SandboxError(str(exc)) from None


def decode(header: dict[str, Any], payload: bytes) -> Any:
    """Turn a ``result`` message into the value the user sees (through the shared codec)."""
    try:
        value = codec.decode(header, payload)
    except codec.CodecError as exc:
        raise SandboxError(str(exc)) from None
    return PngImage(value) if header.get("kind") == "image" else value


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
    elif is_figure(value):
        traces = [getattr(t, "type", "?") for t in getattr(value, "data", [])]
        title = getattr(getattr(getattr(value, "layout", None), "title", None), "text", None)
        text = f"plotly figure ({', '.join(traces) or 'no traces'}){f': {title}' if title else ''}"
    elif isinstance(value, PngImage):
        text = "a PNG image"
    else:
        text = f"{type(value).__name__}: {value!r}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
