"""What an uploaded file must be, wherever it is uploaded (``%ask upload``, the side panel).

The accepted formats, the size cap, a file name that is safe on disk, and a file being received
in chunks. Neutral: the upload widget and the panel's comm both use these, so a file one of
them accepts the other accepts too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dataask_jupyter.values import human_size

__all__ = ["ACCEPT", "Incoming", "refusal", "safe_name", "upload_cap"]

ACCEPT = (".csv", ".tsv", ".xlsx", ".xlsm", ".xlsb", ".xls", ".ods", ".parquet")


def upload_cap(settings: Any) -> int:
    """The largest file an upload accepts, in bytes: ``Ask.max_upload_bytes``, never more than
    ``Ask.max_file_bytes`` (the most ``Session.load`` reads)."""
    cap = int(getattr(settings, "max_upload_bytes", 0) or 0) or int(settings.max_file_bytes)
    return min(cap, int(settings.max_file_bytes))


def refusal(name: str, size: int, cap: int, accept: Sequence[str] = ACCEPT) -> str | None:
    """Why a file of this name and size is refused, or None."""
    if Path(name).suffix.lower() not in accept:
        return f"{name}: only {', '.join(accept)} files can be uploaded here"
    if size < 0:
        return f"{name}: the browser sent no file size"
    if size > cap:
        return (
            f"{name} is {human_size(size)}, over the {human_size(cap)} upload cap; "
            "load it from disk with %ask load PATH, or raise Ask.max_upload_bytes"
        )
    return None


def safe_name(name: str) -> str:
    """The file's base name with anything but letters, digits and ``-_. `` replaced."""
    base = os.path.basename(str(name).replace("\\", "/")).strip().lstrip(".")
    cleaned = "".join(ch if ch.isalnum() or ch in "-_. " else "_" for ch in base)
    return cleaned[:120] or "upload"


@dataclass
class Incoming:
    """A file being received in chunks."""

    name: str
    path: Path
    size: int
    handle: IO[bytes]
    received: int = 0
