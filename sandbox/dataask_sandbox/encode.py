"""The names the server imports for encoding; the codec itself is ``dataask_sandbox.codec``."""

from __future__ import annotations

from dataask_sandbox.codec import (
    TooLarge,
    encode_result,
    frame_from_ipc,
    frame_to_ipc,
    jsonable,
    table_bytes,
)

__all__ = ["TooLarge", "encode_result", "frame_from_ipc", "frame_to_ipc", "jsonable", "table_bytes"]
