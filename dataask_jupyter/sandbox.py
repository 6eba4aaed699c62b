"""Kernel side of the sandbox: start a backend, send datasets once, run code, survive crashes.

The kernel never executes generated code and never unpickles: it sends code as text and decodes
results with :mod:`dataask_jupyter.results`. Whether the sandbox is alive is read from its
connection (a dead server's end of the socket reads EOF), never from the backend's API on the
path of a question. Every failure is a :class:`SandboxError` after which the sandbox is torn
down; the next call starts a new one and re-sends the datasets and ``prev``.
"""

from __future__ import annotations

import contextlib
import select
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pandas as pd

from dataask_jupyter import results
from dataask_jupyter.backends import Backend, BackendInfo, Limits
from dataask_jupyter.config import Ask
from dataask_jupyter.errors import CancelledError, SandboxError, SandboxTimeoutError
from dataask_sandbox import protocol

_GRACE = 5.0  # seconds past the execution timeout before the kernel kills the sandbox
_CANCEL_GRACE = 2.0  # seconds the server has to end a cancelled run before it is killed
_POLL = 0.05  # seconds between looks at a cancel event while a run is in progress
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
    if choice == "sidecar":  # a sandbox container beside the notebook (JupyterHub recipes)
        from dataask_jupyter.backends.sidecar import SidecarBackend

        return SidecarBackend(settings.sandbox_socket_dir or None)
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
    """One sandbox per session: lazily started, restarted (with datasets re-sent) after a crash.

    ``backend`` is the place the server runs (a :class:`~dataask_jupyter.backends.Backend`,
    started again after a crash); by default the one ``Ask.sandbox`` picks, chosen at each start.
    """

    def __init__(
        self,
        settings: Ask,
        *,
        notify: Callable[[str], None] | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.settings = settings
        self.notify = notify or (lambda msg: None)
        self._given = backend
        self.backend: Backend | None = None
        self._sock: socket.socket | None = None
        self._dir: Path | None = None
        self._frames: dict[str, pd.DataFrame] = {}
        self._prev: Any = None
        self.started_at: float | None = None
        self.restarts = 0
        self._ever_started = False
        self.server_info: dict[str, Any] = {}  # the server's greeting

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether the connection to the server is open and in step (no engine API call)."""
        return self._sock is not None and _link_open(self._sock)

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
        try:
            self._connect()
            if self.restarts == 0 and self.backend is not None:
                self.notify(f"dataask: code runs in a sandbox ({self.backend.info().isolation}).")
            for name, frame in self._frames.items():
                self._send_frame(name, frame)
            if self._prev is not None:
                self._sync_prev()
        except SandboxError:
            self._teardown()
            raise
        except Exception as exc:  # a backend's own failure (docker, OS): one line, cleaned up
            self._teardown()
            raise SandboxError(f"the sandbox could not start: {_one_line(exc)}") from None
        except BaseException:  # KeyboardInterrupt: nothing half-started stays behind
            self._teardown()
            raise

    def _connect(self) -> None:
        """Start the backend, accept the server's connection and read its greeting."""
        backend = self._given or make_backend(self.settings, self.notify)
        self.backend = backend
        root = getattr(backend, "socket_root", None)  # a sidecar sees only its shared directory
        self._dir = Path(tempfile.mkdtemp(prefix="dataask-sandbox-", dir=root))
        self._dir.chmod(0o755)  # mounted read-only in the sandbox: it writes nothing here
        path = self._dir / "sandbox.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(str(path))
            path.chmod(0o666)  # the server connects from an unprivileged uid
            listener.listen(1)
            listener.settimeout(0.02)
            backend.start(self._dir)
            deadline = time.monotonic() + self.settings.start_timeout
            while self._sock is None:
                try:
                    self._sock, _ = listener.accept()
                except TimeoutError:
                    if not backend.alive():
                        raise SandboxError(
                            f"the sandbox server exited while starting. {self._log_tail()}".strip()
                        ) from None
                    if time.monotonic() > deadline:
                        raise SandboxError(
                            f"the sandbox did not start within {self.settings.start_timeout:g} s "
                            "(Ask.start_timeout)"
                        ) from None
        self._greet(self._sock)
        self.started_at = time.time()

    def _greet(self, sock: socket.socket) -> None:
        sock.settimeout(self.settings.start_timeout)
        try:
            header, _ = protocol.recv(sock, 1 << 20)
        except TimeoutError:
            raise SandboxError(
                "the sandbox connected but did not greet within "
                f"{self.settings.start_timeout:g} s (Ask.start_timeout)"
            ) from None
        except (OSError, protocol.ProtocolError) as exc:
            raise SandboxError(
                f"the sandbox closed its connection before greeting ({exc}). {self._log_tail()}"
            ) from None
        if header["type"] != "ready":
            raise SandboxError(
                f"the sandbox greeted with {str(header['type'])[:40]!r}, not 'ready'"
            )
        if header.get("protocol") != protocol.PROTOCOL_VERSION:
            raise SandboxError(self._version_problem(header.get("protocol")))
        self.server_info = header

    def _version_problem(self, theirs: Any) -> str:
        said = f"speaks protocol {theirs}" if isinstance(theirs, int) else "names no protocol"
        needs = f"this dataask needs {protocol.PROTOCOL_VERSION}"
        image = getattr(self.backend, "image", None)
        if image:
            return (
                f"the sandbox image {image} {said}, {needs}: rebuild it with "
                "scripts/build-sandbox-image in a dataask checkout, or "
                f"'docker build -f sandbox/Dockerfile -t {image} .' in dataask's source tree"
            )
        return f"the sandbox server {said}, {needs}: reinstall dataask (its two parts differ)"

    def _log_tail(self) -> str:
        log = self._dir / "server.log" if self._dir else None
        if log is None or not log.exists():
            return ""
        return " ".join(log.read_text(errors="replace")[-500:].split())

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

    def _send_frame(self, name: str, frame: pd.DataFrame) -> None:
        self._request(
            {"type": "load", "name": name},
            results.frame_to_ipc(frame),
            timeout=self._load_timeout(frame),
        )

    def _sync_prev(self) -> None:
        """Make the server's ``prev`` the kernel's (cleared when the value cannot travel)."""
        enc = results.encode_prev(self._prev) if self._prev is not None else None
        if enc is None:
            self._prev = None
            self._request({"type": "reset"})
        else:
            header = cast(protocol.SetPrevRequest, {**enc[0], "type": "set_prev"})
            self._request(header, enc[1])

    def _request(
        self,
        header: protocol.Request,
        payload: bytes = b"",
        *,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
    ) -> list[tuple[dict[str, Any], bytes]]:
        """Send one request and collect the replies up to ``end``.

        A broken link or a timeout tears the sandbox down and raises :class:`SandboxError`
        (:class:`SandboxTimeoutError` for the timeout). With ``cancel`` (an ``exec``), setting
        the event or a KeyboardInterrupt sends ``cancel`` and waits a short grace for the
        server's ``end`` (else the sandbox is torn down), then raises :class:`CancelledError`.
        """
        sock = self._sock
        if sock is None:
            raise SandboxError("the sandbox is not running")
        limit = timeout or self.settings.transport_timeout
        deadline = time.monotonic() + limit
        stop_by: float | None = None  # once cancelled: when the server's `end` is due
        replies: list[tuple[dict[str, Any], bytes]] = []
        budget = self.settings.max_result_bytes + _SLACK
        try:
            sock.settimeout(limit)
            protocol.send(sock, header, payload)
            while True:
                if cancel is not None:
                    try:
                        if stop_by is None and cancel.is_set():
                            stop_by = self._send_cancel(sock)
                        if not _readable(sock, stop_by or deadline, None if stop_by else _POLL):
                            continue
                    except KeyboardInterrupt:
                        if stop_by is not None:  # interrupted twice: stop waiting
                            raise
                        stop_by = self._send_cancel(sock)
                        continue
                sock.settimeout(max(0.001, (stop_by or deadline) - time.monotonic()))
                try:
                    msg = protocol.recv(sock, self.settings.max_result_bytes, discard_oversize=True)
                except protocol.PayloadTooLarge as exc:
                    replies.append((_too_large_error(exc.size, exc.cap), b""))
                    continue
                if msg[0]["type"] == "end":
                    break
                budget -= len(msg[1]) + len(str(msg[0].get("text", "")))
                if budget < 0:
                    raise protocol.ProtocolError(
                        "it sent more than Ask.max_result_bytes for one request"
                    )
                replies.append(msg)
        except TimeoutError:
            self._teardown()
            if stop_by is not None:
                self.notify("dataask: the run did not stop when cancelled; restarting the sandbox.")
                raise CancelledError("the run was cancelled") from None
            raise SandboxTimeoutError(
                f"the sandbox did not answer within {limit:g} s (Ask.transport_timeout)"
            ) from None
        except (OSError, protocol.ProtocolError) as exc:
            self._teardown()
            if stop_by is not None:
                raise CancelledError("the run was cancelled") from None
            raise SandboxError(f"the sandbox stopped answering ({exc})") from None
        except KeyboardInterrupt:  # mid-frame, or twice: the link's state is unknown
            self._teardown()
            if cancel is None:
                raise
            raise CancelledError("the run was cancelled") from None
        if stop_by is not None:
            if any(h["type"] == "result" for h, _ in replies):
                with contextlib.suppress(SandboxError):  # it finished first and kept the value
                    self._sync_prev()
            raise CancelledError("the run was cancelled")
        return replies

    def _send_cancel(self, sock: socket.socket) -> float:
        protocol.send(sock, {"type": "cancel"})
        return time.monotonic() + _CANCEL_GRACE

    def load(self, name: str, frame: pd.DataFrame) -> None:
        """Send a dataset once; it is re-sent automatically only if the sandbox restarts."""
        before = self._frames.get(name)
        self._frames[name] = frame
        try:
            if not self.running:
                self.ensure_started()  # sends every known frame, this one included
                return
            self._send_frame(name, frame)
        except BaseException as exc:
            if before is None:
                self._frames.pop(name, None)
            else:
                self._frames[name] = before
            if isinstance(exc, SandboxTimeoutError):
                raise SandboxError(
                    f"sending {name!r} to the sandbox timed out (Ask.transport_timeout)"
                ) from None
            raise

    def _quietly(self, header: protocol.Request, payload: bytes = b"") -> None:
        """A request whose failure needs no word: the sandbox is torn down, and the next start
        sends the kernel's state (datasets, ``prev``) again."""
        if self.running:
            with contextlib.suppress(SandboxError):
                self._request(header, payload)

    def drop(self, name: str) -> None:
        self._frames.pop(name, None)
        self._quietly({"type": "drop", "name": name})

    def reset(self) -> None:
        """Forget ``prev``."""
        self._prev = None
        self._quietly({"type": "reset"})

    def run(
        self, code: str, dataset: str | None, *, cancel: threading.Event | None = None
    ) -> RunOutcome:
        """Run ``code`` with ``df`` = dataset; a sandbox that dies or hangs is replaced.

        Setting ``cancel`` (from another thread) or a KeyboardInterrupt stops the run and raises
        :class:`CancelledError`; the sandbox and its datasets stay when the server ends the run.
        """
        if cancel is not None and cancel.is_set():
            raise CancelledError("the run was cancelled")
        try:
            self.ensure_started()
        except KeyboardInterrupt:
            raise CancelledError("the run was cancelled") from None
        timeout = self.settings.exec_timeout
        started = time.perf_counter()
        request: protocol.ExecRequest = {
            "type": "exec",
            "code": code,
            "dataset": dataset,
            "timeout": timeout,
            "max_result_bytes": self.settings.max_result_bytes,
        }
        try:
            replies = self._request(request, timeout=timeout + _GRACE, cancel=cancel or _NEVER)
        except SandboxTimeoutError:
            self.notify("dataask: the run did not stop at its time limit; restarting the sandbox.")
            raise SandboxTimeoutError(
                f"the code ran longer than {timeout:g} s (Ask.exec_timeout); the sandbox was "
                "restarted and your datasets reloaded"
            ) from None
        except CancelledError:
            raise
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
        self._prev = value
        if self.running:
            with contextlib.suppress(SandboxError):
                self._sync_prev()
        elif value is not None and results.encode_prev(value) is None:
            self._prev = None

    def info(self) -> dict[str, Any]:
        """Backend, isolation, limits, and what the server's greeting reported (``server``)."""
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
            "layers": list(self.server_info.get("layers", [])),
            "server": {k: v for k, v in self.server_info.items() if k != "type"},
        }


_NEVER = threading.Event()  # a run without a cancel event still reacts to KeyboardInterrupt


def _link_open(sock: socket.socket) -> bool:
    """True when the peer has neither closed the connection nor sent anything unasked (an idle
    server says nothing: a readable socket means EOF or a link out of step)."""
    try:
        return not select.select([sock], [], [], 0)[0]
    except (OSError, ValueError):  # closed on our side
        return False


def _readable(sock: socket.socket, until: float, poll: float | None) -> bool:
    """Wait until ``sock`` has bytes (True) or ``poll`` seconds pass (False); past ``until``
    raise TimeoutError."""
    left = until - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return bool(select.select([sock], [], [], min(left, poll) if poll else left)[0])


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def _too_large_error(size: int, cap: int) -> dict[str, Any]:
    return {
        "type": "error",
        "ename": "ResultTooLarge",
        "evalue": _too_large(size, cap),
        "traceback": "",
    }


def _too_large(size: int, cap: int) -> str:
    return (
        f"the result is {size / 1e6:,.1f} MB, over the {cap / 1e6:,.0f} MB cap "
        "(Ask.max_result_bytes); return fewer rows, e.g. .head()"
    )
