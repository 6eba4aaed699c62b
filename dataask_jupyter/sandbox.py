"""Kernel side of the sandbox: start a backend, send datasets once, run code, survive crashes.

The kernel never executes generated code and never unpickles: it sends code as text and decodes
results with :mod:`dataask_jupyter.results`.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dataask_jupyter import results
from dataask_jupyter.backends import Backend, BackendInfo, Limits
from dataask_jupyter.config import Ask
from dataask_jupyter.errors import SandboxError, SandboxTimeoutError
from dataask_sandbox import protocol

_GRACE = 5.0  # seconds past the execution timeout before the kernel kills the sandbox
_MAX_STDOUT = 1 << 20  # characters of a run's stdout the kernel keeps (the server caps it lower)
_SLACK = 16 << 20  # bytes one request may bring back beyond Ask.max_result_bytes


@dataclass
class RunOutcome:
    """What one run of generated code produced."""

    value: Any = None
    kind: str = "none"
    stdout: str = ""
    error: str | None = None  # one line for a person / the LLM
    error_name: str | None = None
    traceback: str = ""
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


def limits_from(settings: Ask) -> Limits:
    return Limits(
        memory_mb=settings.sandbox_memory_mb,
        cpus=settings.sandbox_cpus,
        pids=settings.sandbox_pids,
        tmpfs_mb=settings.sandbox_tmpfs_mb,
    )


def make_backend(settings: Ask, notify: Callable[[str], None]) -> Backend:
    """Pick the backend ``Ask.sandbox`` asks for (``auto``: Docker when the engine answers)."""
    choice = settings.sandbox
    limits = limits_from(settings)
    if choice in ("docker", "auto"):
        from dataask_jupyter.backends import docker as docker_backend

        problem = docker_backend.unavailable_reason(settings.sandbox_image)
        if problem is None:
            return docker_backend.DockerBackend(settings.sandbox_image, limits, notify=notify)
        if choice == "docker":
            raise SandboxError(
                f"Docker sandbox unavailable: {problem} (or set Ask.sandbox='local')"
            )
        notify(f"dataask: Docker sandbox unavailable ({problem}); using the local sandbox.")
    from dataask_jupyter.backends.local import LocalBackend

    return LocalBackend(limits)


class Sandbox:
    """One sandbox per session: lazily started, restarted (with datasets re-sent) after a crash."""

    def __init__(
        self,
        settings: Ask,
        *,
        notify: Callable[[str], None] | None = None,
        backend_factory: Callable[[], Backend] | None = None,
    ) -> None:
        self.settings = settings
        self.notify = notify or (lambda msg: None)
        self._factory = backend_factory or (lambda: make_backend(settings, self.notify))
        self.backend: Backend | None = None
        self._sock: socket.socket | None = None
        self._dir: Path | None = None
        self._frames: dict[str, pd.DataFrame] = {}
        self._prev: Any = None
        self.started_at: float | None = None
        self.restarts = 0
        self._ever_started = False
        self.server_info: dict[str, Any] = {}

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._sock is not None and self.backend is not None and self.backend.alive()

    def ensure_started(self) -> None:
        if self.running:
            return
        if self.backend is not None or self._sock is not None:
            self._teardown()
        self._start()

    def _start(self) -> None:
        if self._ever_started:
            self.restarts += 1
        self._ever_started = True
        self._dir = Path(tempfile.mkdtemp(prefix="dataask-sandbox-"))
        self._dir.chmod(0o755)  # mounted read-only in the sandbox: it writes nothing here
        path = self._dir / "sandbox.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        path.chmod(0o666)  # the server connects from an unprivileged uid
        listener.listen(1)
        listener.settimeout(0.02)
        backend = self._factory()
        self.backend = backend
        try:
            backend.start(self._dir)
            deadline = time.monotonic() + self.settings.start_timeout
            sock: socket.socket | None = None
            while time.monotonic() < deadline:
                try:
                    sock, _ = listener.accept()
                    break
                except TimeoutError:
                    pass
                if not backend.alive():
                    log = self._dir / "server.log"
                    tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                    self._teardown()
                    raise SandboxError(f"the sandbox server exited while starting. {tail}".strip())
        finally:
            listener.close()
        if sock is None:
            self._teardown()
            raise SandboxError(
                f"the sandbox did not start within {self.settings.start_timeout:g} s "
                "(Ask.start_timeout)"
            )
        self._sock = sock
        sock.settimeout(self.settings.start_timeout)
        header, _ = protocol.recv(sock, 1 << 20)
        if header.get("type") != "ready":
            self._teardown()
            raise SandboxError("the sandbox did not greet with 'ready'")
        self.server_info = header
        self.started_at = time.time()
        if self.restarts == 0:
            b = backend.info()
            self.notify(f"dataask: code runs in a sandbox ({b.isolation}).")
        for name, frame in self._frames.items():
            self._request(
                {"type": "load", "name": name},
                results.frame_to_ipc(frame),
                timeout=self._load_timeout(frame),
            )
        if self._prev is not None:
            enc = results.encode_prev(self._prev)
            if enc is not None:
                self._request({"type": "set_prev", **enc[0]}, enc[1])

    def _teardown(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        if self.backend is not None:
            with contextlib.suppress(Exception):
                self.backend.stop()
        self.backend = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None
        self.started_at = None

    def close(self) -> None:
        """Stop the sandbox for good (datasets are forgotten on the sandbox side)."""
        if self.running and self._sock is not None:
            with contextlib.suppress(Exception):
                self._sock.settimeout(2)
                protocol.send(self._sock, {"type": "shutdown"})
        self._teardown()

    def restart(self) -> None:
        self._teardown()
        self._start()

    # --- requests -------------------------------------------------------------------------
    def _load_timeout(self, frame: pd.DataFrame) -> float:
        mb = frame.memory_usage(deep=False).sum() / 1e6
        return self.settings.transport_timeout + mb / 50.0

    def _request(
        self, header: dict[str, Any], payload: bytes = b"", *, timeout: float | None = None
    ) -> list[tuple[dict[str, Any], bytes]]:
        """Send one request and collect the replies up to ``end``. Broken link -> SandboxError."""
        sock = self._sock
        assert sock is not None
        sock.settimeout(timeout or self.settings.transport_timeout)
        replies: list[tuple[dict[str, Any], bytes]] = []
        budget = self.settings.max_result_bytes + _SLACK
        try:
            protocol.send(sock, header, payload)
            while True:
                try:
                    msg = protocol.recv(sock, self.settings.max_result_bytes, discard_oversize=True)
                except protocol.PayloadTooLarge as exc:
                    replies.append(
                        (
                            {
                                "type": "error",
                                "ename": "ResultTooLarge",
                                "evalue": _too_large(exc.size, exc.cap),
                                "traceback": "",
                            },
                            b"",
                        )
                    )
                    continue
                if msg[0]["type"] == "end":
                    return replies
                budget -= len(msg[1]) + len(str(msg[0].get("text", "")))
                if budget < 0:
                    raise protocol.ProtocolError(
                        "it sent more than Ask.max_result_bytes for one request"
                    )
                replies.append(msg)
        except TimeoutError:
            self._teardown()
            raise
        except (OSError, protocol.ProtocolError) as exc:
            self._teardown()
            raise SandboxError(f"the sandbox stopped answering ({exc})") from None

    def load(self, name: str, frame: pd.DataFrame) -> None:
        """Send a dataset once; it is re-sent automatically only if the sandbox restarts."""
        self._frames[name] = frame
        if not self.running:
            self.ensure_started()  # sends every known frame, this one included
            return
        try:
            self._request(
                {"type": "load", "name": name},
                results.frame_to_ipc(frame),
                timeout=self._load_timeout(frame),
            )
        except TimeoutError:
            raise SandboxError(
                f"sending {name!r} to the sandbox timed out (Ask.transport_timeout)"
            ) from None

    def drop(self, name: str) -> None:
        self._frames.pop(name, None)
        if self.running:
            with contextlib.suppress(SandboxError, TimeoutError):
                self._request({"type": "drop", "name": name})

    def reset(self) -> None:
        """Forget ``prev``."""
        self._prev = None
        if self.running:
            with contextlib.suppress(SandboxError, TimeoutError):
                self._request({"type": "reset"})

    def run(
        self, code: str, dataset: str | None, *, cancel: threading.Event | None = None
    ) -> RunOutcome:
        """Run ``code`` with ``df`` = dataset; a sandbox that dies or hangs is replaced."""
        self.ensure_started()
        timeout = self.settings.exec_timeout
        started = time.perf_counter()
        try:
            replies = self._request(
                {
                    "type": "exec",
                    "code": code,
                    "dataset": dataset,
                    "timeout": timeout,
                    "max_result_bytes": self.settings.max_result_bytes,
                },
                timeout=timeout + _GRACE,
            )
        except TimeoutError:
            self.notify("dataask: the run did not stop at its time limit; restarting the sandbox.")
            raise SandboxTimeoutError(
                f"the code ran longer than {timeout:g} s (Ask.exec_timeout); the sandbox was "
                "restarted and your datasets reloaded"
            ) from None
        except SandboxError as exc:
            raise SandboxError(
                f"{exc}; it will be restarted, with your datasets, on the next question"
            ) from None
        out = RunOutcome(seconds=time.perf_counter() - started)
        for header, payload in replies:
            t = header["type"]
            if t in ("stdout", "stderr"):
                room = _MAX_STDOUT - len(out.stdout)
                if room > 0:
                    out.stdout += str(header.get("text", ""))[:room]
            elif t == "error":
                out.error_name = str(header.get("ename", "Error"))
                out.error = f"{out.error_name}: {header.get('evalue', '')}"
                if out.error_name == "Timeout":
                    out.error += " (Ask.exec_timeout)"
                out.traceback = str(header.get("traceback", ""))
            elif t == "result":
                out.kind = str(header.get("kind"))
                out.meta = header
                try:
                    out.value = results.decode(header, payload)
                except Exception as exc:  # whatever the bytes were, they are not an answer
                    out.error_name = "ResultError"
                    out.error = f"ResultError: the result could not be decoded: {exc}"
        if out.ok:
            self._prev = out.value
        return out

    @property
    def prev(self) -> Any:
        """The value the next run sees as ``prev``."""
        return self._prev

    def set_prev(self, value: Any) -> None:
        """Make ``value`` the next run's ``prev`` (None, or one that cannot travel, clears it)."""
        enc = results.encode_prev(value) if value is not None else None
        self._prev = value if enc is not None else None
        if self.running:
            with contextlib.suppress(SandboxError, TimeoutError):
                if enc is None:
                    self._request({"type": "reset"})
                else:
                    self._request({"type": "set_prev", **enc[0]}, enc[1])

    def info(self) -> dict[str, Any]:
        b: BackendInfo | None = self.backend.info() if self.backend else None
        return {
            "running": self.running,
            "backend": b.backend if b else None,
            "isolation": b.isolation if b else None,
            "id": b.ident if b else None,
            "uptime_s": round(time.time() - self.started_at, 1) if self.started_at else None,
            "restarts": self.restarts,
            "exec_timeout_s": self.settings.exec_timeout,
            "limits": limits_from(self.settings).__dict__,
            "datasets": sorted(self._frames),
            **({"details": b.details} if b else {}),
        }


def _too_large(size: int, cap: int) -> str:
    return (
        f"the result is {size / 1e6:,.1f} MB, over the {cap / 1e6:,.0f} MB cap "
        "(Ask.max_result_bytes); return fewer rows, e.g. .head()"
    )
