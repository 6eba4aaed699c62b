"""Sidecar mode: one long-lived sandbox container serving every kernel of one user.

In a Kubernetes user pod (or beside a DockerSpawner container) the sandbox starts before any
kernel and shares only a socket directory with the notebook container. Each kernel makes its own
directory there holding ``sandbox.sock`` and listens on it; this dispatcher notices each new
socket and forks a fresh server that dials it (``--connect``), so every kernel gets a server with
its own state, and the shared directory can be mounted read-only here. A server ends when its
kernel closes the connection. The dispatcher reaps every child (it is PID 1 of its container).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import time
from pathlib import Path

_SOCKET = "sandbox.sock"
_RETRY_WITHIN = 2.0  # a server that fails this fast met a socket not yet listening: dial again


def _sockets(root: Path) -> dict[str, int]:
    """``<root>/<dir>/sandbox.sock`` paths that are sockets, with their inode numbers."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError), os.scandir(root) as entries:
        for entry in entries:
            path = os.path.join(entry.path, _SOCKET)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if stat.S_ISSOCK(st.st_mode):
                found[path] = st.st_ino
    return found


def _serve_one(path: str) -> int:
    """In a forked child: serve the kernel listening at ``path`` until it hangs up."""
    from dataask_sandbox.server import main

    try:
        return main(["--connect", path])
    except OSError as exc:
        print(f"dataask-sidecar: {path}: {exc}", file=sys.stderr, flush=True)
        return 1


def watch(root: str, *, poll: float = 0.1, once: bool = False) -> int:
    """Serve every kernel that appears under ``root``; never returns unless ``once``."""
    base = Path(root)
    if not base.is_dir():
        print(f"dataask-sidecar: {root} is not a directory", file=sys.stderr, flush=True)
        return 2
    print(f"dataask-sidecar: serving kernels that listen in {root}", file=sys.stderr, flush=True)
    seen: dict[str, int] = {}  # socket path -> inode already served
    children: dict[int, tuple[str, float]] = {}  # pid -> (socket path, start time)
    while True:
        while True:  # reap servers (and anything orphaned to us)
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            path, started = children.pop(pid, ("", 0.0))
            failed_fast = time.monotonic() - started < _RETRY_WITHIN
            if path and os.waitstatus_to_exitcode(status) != 0 and failed_fast:
                seen.pop(path, None)
        current = _sockets(base)
        for path in [p for p in seen if current.get(p) != seen[p]]:
            del seen[path]  # gone or replaced: a new socket at the same path is a new kernel
        for path, ino in current.items():
            if path in seen:
                continue
            seen[path] = ino
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = _serve_one(path)
                finally:
                    os._exit(code)
            children[pid] = (path, time.monotonic())
        if once and not children:
            return 0
        time.sleep(poll)
