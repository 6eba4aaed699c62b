"""Files uploaded from the side panel: checked, received in chunks, then loaded by the Session.

The checks and the cap are those of ``%ask upload`` (:mod:`dataask_jupyter.uploads`). The bytes
go to a private temporary folder; ``Session.load`` then reads them with the same validation as
``%ask load``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import weakref
from pathlib import Path

from dataask_jupyter.errors import DataaskError
from dataask_jupyter.uploads import Incoming, refusal, safe_name


class Uploads:
    """Files being received; each lands in its own subfolder so equal names never clash."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="dataask-panel-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.folder), True)
        self._incoming: dict[str, Incoming] = {}

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
        self._incoming[uid] = Incoming(shown, path, size, open(path, "wb"))  # noqa: SIM115
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

    def _get(self, uid: str) -> Incoming:
        inc = self._incoming.get(uid)
        if inc is None:
            raise DataaskError("no such upload (it was cut short or already finished)")
        return inc

    def close(self) -> None:
        for uid in list(self._incoming):
            self.abort(uid)
        self._cleanup()
