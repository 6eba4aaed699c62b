"""Places where the sandbox server can run.

The kernel listens on a Unix socket in a directory it owns (``sandbox.sock``); each backend starts
the server with that directory mounted read-only, and the server dials in. The
:class:`~dataask_jupyter.sandbox.Sandbox` speaks to it over that one connection, which also tells
whether the server still lives.
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
        """Start the server; it must connect to ``socket_dir / "sandbox.sock"``."""

    def alive(self) -> bool:
        """Whether the server process/container still runs (asked only while it starts: after
        that the connection tells)."""

    def stop(self) -> None:
        """Stop and remove the server; safe to call twice."""

    def info(self) -> BackendInfo:
        """Backend name, isolation in force, identifiers."""
