from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any, cast

import pandas as pd
import pytest

from dataask_jupyter.config import Ask
from dataask_jupyter.sandbox import Sandbox
from dataask_sandbox import protocol


def test_roundtrip_with_payload() -> None:
    a, b = socket.socketpair()
    with a, b:
        protocol.send(a, {"type": "load", "name": "x"}, b"\x00\x01" * 1000)
        header, payload = protocol.recv(b, 10_000)
    assert header == {"type": "load", "name": "x"}
    assert payload == b"\x00\x01" * 1000


def test_oversize_payload_is_refused_and_stream_kept() -> None:
    a, b = socket.socketpair()
    with a, b:
        protocol.send(a, {"type": "result", "kind": "table"}, b"x" * 5000)
        protocol.send(a, {"type": "end"})
        with pytest.raises(protocol.PayloadTooLarge):
            protocol.recv(b, 100, discard_oversize=True)
        assert protocol.recv(b, 100)[0] == {"type": "end"}


@pytest.mark.parametrize(
    "raw",
    [
        struct.pack(">IQ", 5, 0) + b"nojso",
        struct.pack(">IQ", 2, 0) + b"[]",
        struct.pack(">IQ", protocol.MAX_HEADER_BYTES + 1, 0),
    ],
)
def test_bad_frames(raw: bytes) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(raw)
        with pytest.raises(protocol.ProtocolError):
            protocol.recv(b, 100)


def test_closed_connection() -> None:
    a, b = socket.socketpair()
    a.close()
    with b, pytest.raises(protocol.ProtocolError, match="closed"):
        protocol.recv(b, 100)


def test_every_message_type_is_declared_once() -> None:
    import typing

    def kinds(union: Any) -> list[str]:
        out: list[str] = []
        for td in typing.get_args(union):
            hint = typing.get_type_hints(td)["type"]
            out += list(typing.get_args(hint))
        return out

    requests, replies = kinds(protocol.Request), kinds(protocol.Reply)
    assert len(set(requests + replies)) == len(requests + replies)
    assert set(requests) == {
        "load",
        "drop",
        "exec",
        "set_prev",
        "reset",
        "ping",
        "shutdown",
        "cancel",
    }
    assert {"ready", "stdout", "stderr", "result", "error", "ok", "pong", "end"} <= set(replies)


@pytest.fixture
def live() -> Iterator[Sandbox]:
    """A real sandbox server (the local backend), spoken to raw over its connection."""
    sb = Sandbox(Ask(sandbox="local"))
    sb.load("t", pd.DataFrame({"a": [1, 2, 3]}))
    yield sb
    sb.close()


def _replies(sock: socket.socket) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        header, _ = protocol.recv(sock, 1 << 20)
        if header["type"] == "end":
            return out
        out.append(header)


def test_real_server_answers_each_request_then_end(live: Sandbox) -> None:
    sock = live._sock
    assert sock is not None and live.server_info["protocol"] == protocol.PROTOCOL_VERSION
    protocol.send(sock, {"type": "ping"})
    assert _replies(sock) == [{"type": "pong", "datasets": ["t"]}]
    protocol.send(sock, {"type": "cancel"})  # nothing running: no reply at all
    protocol.send(sock, cast(protocol.Request, {"type": "launch"}))
    (err,) = _replies(sock)
    assert err["type"] == "error" and err["ename"] == "ProtocolError"
    assert live.run("result = int(df.a.sum())", "t").value == 6  # still in step


def test_real_server_drops_a_kernel_that_speaks_out_of_turn(live: Sandbox) -> None:
    """Mid-run, only `cancel` may come; anything else ends the run and the connection."""
    sock = live._sock
    assert sock is not None
    exec_: protocol.ExecRequest = {
        "type": "exec",
        "code": "import time\ntime.sleep(30)\nresult = 1",
        "dataset": "t",
        "timeout": 60.0,
        "max_result_bytes": 1 << 20,
    }
    protocol.send(sock, exec_)
    protocol.send(sock, {"type": "ping"})
    sock.settimeout(10)
    with pytest.raises(protocol.ProtocolError, match="closed"):
        _replies(sock)
    assert not live.running
    assert live.run("result = len(df)", "t").value == 3  # replaced, with the dataset
