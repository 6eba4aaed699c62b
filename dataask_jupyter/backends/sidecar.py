"""Sidecar backend: the sandbox server already runs in its own container beside the notebook.

Used on JupyterHub (a Kubernetes user pod's ``singleuser.extraContainers``, or the DockerSpawner
hooks in ``deploy/dockerspawner``). The two containers share one directory (``socket_root``,
default ``/run/dataask``): the kernel makes its socket directory there and listens, and the
sidecar's dispatcher (``python -m dataask_sandbox --sidecar DIR``) forks a fresh server that dials
it. Starting and stopping therefore start and stop nothing here: the kernel cannot reach the
sidecar's processes, and closing the connection ends its server.
"""

from __future__ import annotations

import os
from pathlib import Path

from dataask_jupyter.backends import BackendInfo
from dataask_jupyter.errors import SandboxError

DEFAULT_ROOT = "/run/dataask"


def socket_root_from_env() -> Path:
    """``DATAASK_SANDBOX_SOCKET_DIR``, or ``/run/dataask``."""
    return Path(os.environ.get("DATAASK_SANDBOX_SOCKET_DIR") or DEFAULT_ROOT)


def unavailable_reason(root: Path) -> str | None:
    """Why a sidecar cannot be used from this container (None when the shared directory works)."""
    if not root.is_dir():
        return f"{root} does not exist (no sandbox sidecar shares it with this container)"
    if not os.access(root, os.W_OK | os.X_OK):
        return f"{root} is not writable for uid {os.getuid()} (the kernel's socket goes there)"
    return None


class SidecarBackend:
    """Talk to a sandbox sidecar through a directory shared with it."""

    name = "sidecar"

    def __init__(self, socket_root: Path | str | None = None) -> None:
        self.socket_root = Path(socket_root) if socket_root else socket_root_from_env()
        self._dir: Path | None = None

    def start(self, socket_dir: Path) -> None:
        """Check that the kernel's socket sits where the sidecar looks; the sidecar dials it."""
        root = self.socket_root.resolve()
        where = Path(socket_dir).resolve()
        if where.parent != root:
            raise SandboxError(
                f"the sandbox sidecar only sees {root}, but the kernel's socket is in {where}"
            )
        problem = unavailable_reason(root)
        if problem is not None:
            raise SandboxError(f"sandbox sidecar unavailable: {problem}")
        self._dir = where

    def alive(self) -> bool:
        return self._dir is not None and (self._dir / "sandbox.sock").exists()

    def stop(self) -> None:
        self._dir = None  # the caller closes the connection; that ends the sidecar's server

    def info(self) -> BackendInfo:
        return BackendInfo(
            backend=self.name,
            isolation=(
                "sidecar container beside the notebook: its own file system and processes, "
                "non-root, read-only root, no capabilities, no-new-privileges, "
                "socket() only for AF_UNIX (seccomp), sharing only the socket directory"
            ),
            ident=self._dir.name if self._dir else "",
            details={"socket_root": str(self.socket_root)},
        )
