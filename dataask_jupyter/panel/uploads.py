"""Files uploaded from the side panel: checked, received in chunks, then loaded by the Session.

The checks and the cap are those of ``%ask upload``: only .csv/.xls/.xlsx, at most
``Ask.max_upload_bytes`` (or ``Ask.max_file_bytes`` when that is smaller). The bytes go to a
private temporary folder; ``Session.load`` then reads them with the same validation as
``%ask load``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dataask_jupyter.errors import DataaskError

ACCEPT = (".csv", ".xls", ".xlsx")


def human_size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def upload_cap(settings: Any) -> int:
    """The largest file an upload accepts, in bytes."""
    cap = int(getattr(settings, "max_upload_bytes", 0) or 0) or int(settings.max_file_bytes)
    return min(cap, int(settings.max_file_bytes))


def refusal(name: str, size: int, cap: int) -> str | None:
    """Why a file of this name and size is refused, or None."""
    if Path(name).suffix.lower() not in ACCEPT:
        return f"{name}: only {', '.join(ACCEPT)} files can be uploaded here"
    if size < 0:
        return f"{name}: the browser sent no file size"
    if size > cap:
        return (
            f"{name} is {human_size(size)}, over the {human_size(cap)} upload cap; "
            "load it from disk with %ask load PATH, or raise Ask.max_upload_bytes"
        )
    return None


def safe_name(name: str) -> str:
    base = os.path.basename(str(name).replace("\\", "/")).strip().lstrip(".")
    cleaned = "".join(ch if ch.isalnum() or ch in "-_. " else "_" for ch in base)
    return cleaned[:120] or "upload"


@dataclass
class _Incoming:
    name: str
    path: Path
    size: int
    handle: IO[bytes]
    received: int = 0


class Uploads:
    """Files being received; each lands in its own subfolder so equal names never clash."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="dataask-panel-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.folder), True)
        self._incoming: dict[str, _Incoming] = {}

    def begin(self, name: str, size: int, cap: int) -> str:
        """Start receiving ``name``; returns the upload id (``DataaskError`` if refused)."""
        shown = os.path.basename(str(name).replace("\\", "/")) or "file"
        problem = refusal(shown, size, cap)
        if problem:
            raise DataaskError(problem)
        uid = uuid.uuid4().hex
        folder = self.folder / uid
        folder.mkdir()
        path = folder / safe_name(shown)
        self._incoming[uid] = _Incoming(shown, path, size, open(path, "wb"))  # noqa: SIM115
        return uid

    def chunk(self, uid: str, offset: int, data: bytes) -> int:
        """Append ``data`` at ``offset``; returns the bytes received so far."""
        inc = self._get(uid)
        if offset != inc.received:
            self.abort(uid)
            raise DataaskError(f"{inc.name}: a piece went missing (offset {offset:,})")
        if inc.received + len(data) > inc.size:
            self.abort(uid)
            raise DataaskError(f"{inc.name}: more bytes arrived than announced; upload refused")
        inc.handle.write(data)
        inc.received += len(data)
        return inc.received

    def end(self, uid: str) -> tuple[str, Path]:
        """The finished file's name and path."""
        inc = self._incoming.pop(uid, None)
        if inc is None:
            raise DataaskError("no such upload (it was cut short or already finished)")
        inc.handle.close()
        if inc.received != inc.size:
            inc.path.unlink(missing_ok=True)
            raise DataaskError(
                f"{inc.name}: upload cut short ({inc.received:,} of {inc.size:,} bytes)"
            )
        return inc.name, inc.path

    def abort(self, uid: str) -> None:
        inc = self._incoming.pop(uid, None)
        if inc is not None:
            inc.handle.close()
            inc.path.unlink(missing_ok=True)

    def _get(self, uid: str) -> _Incoming:
        inc = self._incoming.get(uid)
        if inc is None:
            raise DataaskError("no such upload (it was cut short or already finished)")
        return inc

    def close(self) -> None:
        for uid in list(self._incoming):
            self.abort(uid)
        self._cleanup()
