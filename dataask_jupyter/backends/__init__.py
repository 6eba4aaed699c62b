"""Places where the sandbox server can run.

Each backend starts the server listening on a Unix socket in a directory the kernel owns; the
:class:`~dataask_jupyter.sandbox.Sandbox` speaks to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to the sandbox."""

    memory_mb: int = 2048
    cpus: float = 1.0
    pids: int = 64
    tmpfs_mb: int = 64


@dataclass
class BackendInfo:
    """What ``%ask sandbox`` reports."""

    backend: str
    isolation: str
    ident: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """A way to run the sandbox server."""

    name: str

    def start(self, socket_dir: Path) -> None:
        """Start the server; it must listen on ``socket_dir / "sandbox.sock"``."""

    def alive(self) -> bool:
        """Whether the server process/container is still running."""

    def stop(self) -> None:
        """Stop and remove the server; safe to call twice."""

    def info(self) -> BackendInfo:
        """Backend name, isolation in force, identifiers."""
