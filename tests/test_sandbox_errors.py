"""Every way a sandbox can fail ends in one SandboxError, a torn-down sandbox, and a clean restart.

The misbehaving servers are real peers on the kernel's Unix socket (a thread that dials in and
speaks, or does not speak, the protocol); the healthy one is the real local backend.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pytest

import dataask
from dataask_jupyter.backends import BackendInfo
from dataask_jupyter.backends.local import LocalBackend
from dataask_jupyter.config import Ask
from dataask_jupyter.errors import DataaskError, SandboxError
from dataask_jupyter.sandbox import Sandbox, limits_from
from dataask_sandbox import protocol

FRAME = pd.DataFrame({"a": [1, 2, 3]})
Script = Callable[[socket.socket], None]


class ScriptedServer:
    """A backend whose 'server' is ``script`` run on a thread connected to the kernel's socket.

    ``scripts`` are used one per start; past the last one, the real local backend takes over.
    """

    name = "scripted"

    def __init__(self, *scripts: Script | None, connect: bool = True) -> None:
        self.scripts = list(scripts)
        self.connect = connect
        self.real = LocalBackend(limits_from(Ask()))
        self.current: LocalBackend | None = None
        self.sock: socket.socket | None = None
        self.thread: threading.Thread | None = None
        self.starts = 0
        self.alive_calls = 0

    def start(self, socket_dir: Path) -> None:
        self.starts += 1
        if not self.scripts:
            self.current = self.real
            self.real.start(socket_dir)
            return
        script = self.scripts.pop(0)
        if script is None:  # a server that exits before it connects
            return
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(socket_dir / "sandbox.sock"))
        self.thread = threading.Thread(target=script, args=(self.sock,), daemon=True)
        self.thread.start()

    def alive(self) -> bool:
        self.alive_calls += 1
        if self.current is not None:
            return self.current.alive()
        return self.thread is not None and self.thread.is_alive()

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def info(self) -> BackendInfo:
        return BackendInfo(backend=self.name, isolation="none (a test server)")


def silent(sock: socket.socket) -> None:
    """Connects and never says a word."""
    threading.Event().wait(30)


def greets(proto: Any = protocol.PROTOCOL_VERSION, **extra: Any) -> Script:
    """Greets, then answers every request with ``ok`` and ``end`` (and ``exec`` with a result)."""

    def script(sock: socket.socket) -> None:
        protocol.send(sock, cast(protocol.Ready, {"type": "ready", "protocol": proto, **extra}))
        try:
            while True:
                header, _ = protocol.recv(sock, 1 << 30)
                if header["type"] == "exec":
                    protocol.send(sock, {"type": "result", "kind": "json"}, b"7")
                else:
                    protocol.send(sock, {"type": "ok"})
                protocol.send(sock, {"type": "end"})
        except (OSError, protocol.ProtocolError):
            return

    return script


def greets_then(after: Callable[[socket.socket, dict[str, Any]], bool]) -> Script:
    """Greets and answers like :func:`greets` until ``after(sock, request)`` returns True."""

    def script(sock: socket.socket) -> None:
        protocol.send(sock, {"type": "ready", "protocol": protocol.PROTOCOL_VERSION})
        try:
            while True:
                header, _ = protocol.recv(sock, 1 << 30)
                if after(sock, header):
                    return
                protocol.send(sock, {"type": "ok"})
                protocol.send(sock, {"type": "end"})
        except (OSError, protocol.ProtocolError):
            return

    return script


def hangs_on(kind: str) -> Script:
    return greets_then(lambda sock, h: h["type"] == kind and not threading.Event().wait(30))


def closes_on(kind: str) -> Script:
    def after(sock: socket.socket, h: dict[str, Any]) -> bool:
        if h["type"] == kind:
            sock.shutdown(socket.SHUT_RDWR)
            return True
        return False

    return greets_then(after)


def box(backend: ScriptedServer, **settings: Any) -> Sandbox:
    settings = {"start_timeout": 1.0, "transport_timeout": 1.0, **settings}
    return Sandbox(Ask(**settings), backend=backend)


def assert_down_then_restarts(
    sb: Sandbox, backend: ScriptedServer, code: str = "result = int(df['a'].sum())", value: int = 6
) -> None:
    """Torn down; the next call starts a sandbox again, with the datasets."""
    assert not sb.running and sb.backend is None and sb._dir is None
    sb.settings.start_timeout = sb.settings.transport_timeout = 60.0  # the real one, maybe slow
    out = sb.run(code, "t")
    assert out.ok and out.value == value, out.error
    assert sb.running
    sb.close()


def test_silent_server_is_a_sandbox_error_and_torn_down() -> None:
    backend = ScriptedServer(silent)
    sb = box(backend)
    with pytest.raises(SandboxError, match=r"did not greet within 1 s \(Ask.start_timeout\)"):
        sb.load("t", FRAME)
    assert "t" not in sb._frames  # the load did not happen
    sb._frames["t"] = FRAME
    assert_down_then_restarts(sb, backend)


def test_session_load_on_a_silent_sandbox(settings_kwargs: dict[str, Any]) -> None:
    settings = Ask(**settings_kwargs, start_timeout=1.0)
    s = dataask.Session(settings, runner=Sandbox(settings, backend=ScriptedServer(silent)))
    with pytest.raises(DataaskError, match="did not greet"):
        s.load(FRAME, name="t")
    assert not s.sandbox_info()["running"]
    settings.start_timeout = 60.0  # the real local backend from here on
    s.load(FRAME, name="t")  # the next call restarts it
    assert s.sandbox.run("result = len(df)", "t").value == 3
    s.close()


def test_other_protocol_version_says_how_to_rebuild() -> None:
    backend = ScriptedServer(greets(proto=1))
    backend.image = "dataask-sandbox:old"  # type: ignore[attr-defined]
    sb = box(backend)
    with pytest.raises(SandboxError) as err:
        sb.load("t", FRAME)
    msg = str(err.value)
    assert "\n" not in msg
    assert f"speaks protocol 1, this dataask needs {protocol.PROTOCOL_VERSION}" in msg
    assert "scripts/build-sandbox-image" in msg
    assert "docker build -f sandbox/Dockerfile -t dataask-sandbox:old ." in msg
    assert not sb.running
    sb._frames["t"] = FRAME
    assert_down_then_restarts(sb, backend)


def test_greeting_without_protocol_or_not_ready() -> None:
    def not_ready(sock: socket.socket) -> None:
        protocol.send(sock, {"type": "ok"})

    def garbage(sock: socket.socket) -> None:
        sock.sendall(b"\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00nojso")

    for script, words in [
        (greets_then(lambda s, h: True), ""),  # the right greeting: a control
        (lambda sock: protocol.send(sock, cast(protocol.Ready, {"type": "ready"})), "names no"),
        (not_ready, "greeted with 'ok', not 'ready'"),
        (garbage, "closed its connection before greeting"),
    ]:
        sb = box(ScriptedServer(script))
        if not words:
            sb.ensure_started()
            sb.close()
            continue
        with pytest.raises(SandboxError, match=words):
            sb.ensure_started()
        assert not sb.running and sb.backend is None


def test_backend_that_fails_to_start() -> None:
    class Broken(ScriptedServer):
        def start(self, socket_dir: Path) -> None:
            raise OSError("no such program: bwrap-xyz")

    sb = box(Broken())
    with pytest.raises(SandboxError, match="could not start: no such program: bwrap-xyz"):
        sb.ensure_started()
    assert not sb.running and sb.backend is None


def test_server_that_exits_while_starting() -> None:
    backend = ScriptedServer(None)
    sb = box(backend)
    with pytest.raises(SandboxError, match="exited while starting"):
        sb.load("t", FRAME)
    assert not sb.running
    sb._frames["t"] = FRAME
    assert_down_then_restarts(sb, backend)


def test_load_that_times_out() -> None:
    backend = ScriptedServer(hangs_on("load"))
    sb = box(backend)
    sb.ensure_started()
    with pytest.raises(SandboxError, match=r"sending 't' to the sandbox timed out"):
        sb.load("t", FRAME)
    assert "t" not in sb._frames
    sb._frames["t"] = FRAME
    assert_down_then_restarts(sb, backend)


def test_run_on_a_server_that_closes_mid_run() -> None:
    backend = ScriptedServer(closes_on("exec"))
    sb = box(backend)
    sb.load("t", FRAME)
    with pytest.raises(SandboxError, match="restarted, with your datasets, on the next question"):
        sb.run("result = 1", "t")
    assert_down_then_restarts(sb, backend)


@pytest.mark.parametrize("kind", ["drop", "reset", "set_prev"])
def test_state_changes_on_a_broken_sandbox_need_no_word(kind: str) -> None:
    backend = ScriptedServer(closes_on(kind))
    sb = box(backend)
    sb.load("t", FRAME)
    sb.load("u", FRAME)
    if kind == "drop":
        sb.drop("u")
    elif kind == "reset":
        sb.reset()
    else:
        sb.set_prev(pd.Series([1, 2], name="x"))
    assert not sb.running
    assert sorted(sb._frames) == (["t"] if kind == "drop" else ["t", "u"])
    if kind == "set_prev":  # sent again on the restart
        assert_down_then_restarts(sb, backend, "result = int(df['a'].sum() + prev.sum())", 9)
    else:
        assert_down_then_restarts(sb, backend)


def test_close_of_a_dead_or_never_started_sandbox() -> None:
    box(ScriptedServer()).close()
    backend = ScriptedServer(closes_on("exec"))
    sb = box(backend)
    sb.load("t", FRAME)
    assert sb.backend is not None
    sb.backend.stop()
    sb.close()
    assert not sb.running and sb.backend is None


def test_liveness_comes_from_the_connection() -> None:
    """Questions ask no engine/process API whether the sandbox lives; a killed server is
    noticed from its closed connection and replaced, with the datasets."""
    backend = ScriptedServer()
    sb = box(backend, start_timeout=60.0, transport_timeout=60.0)
    sb.load("t", FRAME)
    calls = backend.alive_calls
    for _ in range(3):
        assert sb.running
        assert sb.run("result = len(df)", "t").value == 3
    sb.drop("nothing")
    sb.set_prev(1)
    assert backend.alive_calls == calls
    real = backend.current
    assert real is not None and real.proc is not None
    os.killpg(real.proc.pid, signal.SIGKILL)  # bubblewrap's init then takes the server along
    real.proc.wait()
    deadline = time.monotonic() + 10
    while sb.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not sb.running
    out = sb.run("result = int(df['a'].sum()) + prev", "t")
    assert out.ok and out.value == 7, out.error
    assert sb.restarts == 1
    sb.close()


def test_info_passes_the_greeting_through() -> None:
    sb = box(ScriptedServer(greets(layers=["seccomp", "namespaces"], version="9.9")))
    sb.ensure_started()
    info = sb.info()
    assert info["server"]["layers"] == ["seccomp", "namespaces"]
    assert info["server"]["version"] == "9.9"
    assert info["server"]["protocol"] == protocol.PROTOCOL_VERSION
    assert info["running"] is True
    sb.close()
    assert sb.info()["running"] is False


def test_real_server_greeting_in_info() -> None:
    sb = box(ScriptedServer(), start_timeout=60.0, transport_timeout=60.0)
    sb.load("t", FRAME)
    server = sb.info()["server"]
    assert server["protocol"] == protocol.PROTOCOL_VERSION
    assert {"version", "pid", "python", "pandas"} <= set(server)
    sb.close()
