"""Freezing a sandbox from outside, for tests of a server that stops answering."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path


def freeze(backend: object) -> None:
    """Stop the server's processes (the container, or the local process tree)."""
    container = getattr(backend, "container", None)
    if container is not None:
        subprocess.run(["docker", "pause", container.id], check=True, capture_output=True)
        return
    proc = getattr(backend, "proc", None)
    assert proc is not None
    family = {proc.pid}
    grew = True
    while grew:
        grew = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in family:
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) in family:
                family.add(int(entry))
                grew = True
    for pid in family:
        with contextlib.suppress(ProcessLookupError):  # e.g. a spare run's process replaced
            os.kill(pid, signal.SIGSTOP)
