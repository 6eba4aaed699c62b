"""The sandbox server: keeps DataFrames in memory and runs generated code on request.

It listens on a Unix socket (a bind-mounted directory when it runs in a container) and serves one
kernel connection at a time, speaking :mod:`dataask_sandbox.protocol`. It trusts nothing it is sent
to be harmless; its isolation comes from where it runs (container or bubblewrap), not from itself.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import signal
import socket
import sys
import time
import traceback
import types
from typing import Any

from dataask_sandbox import __version__, protocol

_ANSWER_FILE = "<answer>"


class ExecutionTimeout(BaseException):
    """Raised in the run when its time is up (BaseException: ``except Exception`` can't eat it)."""


class _CappedText(io.TextIOBase):
    """A text sink that keeps the first ``cap`` characters and counts the rest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        room = self.cap - self.size
        if room > 0:
            self.parts.append(s[:room])
            self.size += min(room, len(s))
        self.dropped += max(0, len(s) - max(room, 0))
        return len(s)

    def text(self) -> str:
        out = "".join(self.parts)
        if self.dropped:
            out += f"\n[... {self.dropped:,} more characters of output dropped]"
        return out


class _LazyModule(types.ModuleType):
    """Imports the named module on first attribute access (so ``px`` costs nothing unused)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_target"] = name

    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self.__dict__["_target"])
        return getattr(module, attr)


def _on_alarm(signum: int, frame: Any) -> None:
    raise ExecutionTimeout()


def _short_traceback(exc: BaseException) -> str:
    """The frames of the generated code only, then the exception line."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == _ANSWER_FILE]
    lines = [f"line {f.lineno}: {(f.line or '').strip()}" for f in frames[-3:]]
    lines.append("".join(traceback.format_exception_only(type(exc), exc)).strip())
    return "\n".join(lines)


class Server:
    """State of one sandbox: datasets by name, the previous answer, and the request handlers."""

    def __init__(self, max_output: int = 64 * 1024) -> None:
        import numpy as np
        import pandas as pd

        if int(pd.__version__.split(".")[0]) < 3:
            pd.set_option("mode.copy_on_write", True)
        self.pd = pd
        self.np = np
        self.frames: dict[str, Any] = {}
        self.prev: Any = None
        self.max_output = max_output
        signal.signal(signal.SIGALRM, _on_alarm)

    # --- requests -------------------------------------------------------------------------
    def handle(self, sock: socket.socket, header: dict[str, Any], payload: bytes) -> bool:
        """Serve one request; return False when the server should stop."""
        kind = header["type"]
        if kind == "ping":
            protocol.send(sock, {"type": "pong", "datasets": sorted(self.frames)})
        elif kind == "load":
            from dataask_sandbox.encode import frame_from_ipc

            self.frames[str(header["name"])] = frame_from_ipc(payload)
            protocol.send(sock, {"type": "ok"})
        elif kind == "drop":
            self.frames.pop(str(header["name"]), None)
            protocol.send(sock, {"type": "ok"})
        elif kind == "reset":
            self.prev = None
            protocol.send(sock, {"type": "ok"})
        elif kind == "set_prev":
            self.prev = self._decode_value(header, payload)
            protocol.send(sock, {"type": "ok"})
        elif kind == "exec":
            self._exec(sock, header)
        elif kind == "shutdown":
            protocol.send(sock, {"type": "ok"})
            protocol.send(sock, {"type": "end"})
            return False
        else:
            protocol.send(
                sock,
                {
                    "type": "error",
                    "ename": "ProtocolError",
                    "evalue": f"unknown request type {kind!r}",
                    "traceback": "",
                },
            )
        protocol.send(sock, {"type": "end"})
        return True

    def _decode_value(self, header: dict[str, Any], payload: bytes) -> Any:
        import json

        from dataask_sandbox.encode import frame_from_ipc

        kind = header.get("kind")
        if kind == "table":
            return frame_from_ipc(payload)
        if kind == "series":
            frame = frame_from_ipc(payload)
            s = frame.iloc[:, 0]
            return s.rename(header.get("name"))
        if kind == "json":
            return json.loads(payload)
        return None

    def _exec(self, sock: socket.socket, header: dict[str, Any]) -> None:
        from dataask_sandbox.encode import TooLarge, encode_result

        code = str(header["code"])
        timeout = float(header.get("timeout", 60))
        max_bytes = int(header.get("max_result_bytes", 256 * 1024 * 1024))
        active = header.get("dataset")
        pd = self.pd
        frames = {k: v.copy(deep=False) for k, v in self.frames.items()}
        ns: dict[str, Any] = {
            "__name__": "__answer__",
            "pd": pd,
            "np": self.np,
            "px": _LazyModule("plotly.express"),
            "go": _LazyModule("plotly.graph_objects"),
            "df": frames.get(active) if active else None,
            "dfs": frames,
            "prev": self.prev,
        }
        out = _CappedText(self.max_output)
        started = time.perf_counter()
        try:
            compiled = compile(code, _ANSWER_FILE, "exec")
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                    exec(compiled, ns)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except ExecutionTimeout:
            self._error(sock, out, "Timeout", f"the code ran longer than {timeout:g} s", "")
            return
        except MemoryError:
            self._error(sock, out, "MemoryError", "the code ran out of memory", "")
            return
        except SyntaxError as exc:
            self._error(sock, out, "SyntaxError", f"{exc.msg} (line {exc.lineno})", "")
            return
        except BaseException as exc:  # the generated code may raise anything, SystemExit included
            self._error(sock, out, type(exc).__name__, str(exc)[:2000], _short_traceback(exc))
            return
        elapsed = time.perf_counter() - started
        if "result" not in ns:
            self._error(
                sock, out, "NoResult", "the code did not assign a variable named `result`", ""
            )
            return
        value = ns["result"]
        try:
            meta, payload = encode_result(value, max_bytes=max_bytes)
        except TooLarge as exc:
            self._error(sock, out, "ResultTooLarge", str(exc), "")
            return
        except Exception as exc:
            self._error(
                sock,
                out,
                "ResultError",
                f"the result ({type(value).__name__}) could not be sent: {exc}"[:2000],
                "",
            )
            return
        self.prev = value
        if out.size or out.dropped:
            protocol.send(sock, {"type": "stdout", "text": out.text()})
        protocol.send(sock, {"type": "result", "seconds": round(elapsed, 6), **meta}, payload)

    def _error(
        self, sock: socket.socket, out: _CappedText, ename: str, evalue: str, tb: str
    ) -> None:
        if out.size or out.dropped:
            protocol.send(sock, {"type": "stdout", "text": out.text()})
        protocol.send(sock, {"type": "error", "ename": ename, "evalue": evalue, "traceback": tb})


def serve(path: str, *, max_payload: int, max_output: int) -> None:
    """Listen on the Unix socket ``path`` and serve connections one at a time until shutdown."""
    server = Server(max_output=max_output)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o666)
    listener.listen(1)
    while True:
        conn, _ = listener.accept()
        with conn:
            protocol.send(
                conn,
                {
                    "type": "ready",
                    "version": __version__,
                    "pid": os.getpid(),
                    "protocol": protocol.PROTOCOL_VERSION,
                    "python": sys.version.split()[0],
                    "pandas": server.pd.__version__,
                },
            )
            while True:
                try:
                    header, payload = protocol.recv(conn, max_payload)
                except protocol.ProtocolError:
                    break
                try:
                    if not server.handle(conn, header, payload):
                        return
                except (BrokenPipeError, ConnectionResetError):
                    break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dataask_sandbox", description=__doc__)
    parser.add_argument("--socket", required=True, help="Unix socket path to listen on")
    parser.add_argument(
        "--max-payload",
        type=int,
        default=4 * 1024**3,
        help="largest request payload accepted (bytes)",
    )
    parser.add_argument(
        "--max-output", type=int, default=64 * 1024, help="characters of stdout/stderr kept per run"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(args.socket, max_payload=args.max_payload, max_output=args.max_output)
    return 0
