from __future__ import annotations

import socket
import struct

import pytest

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
        protocol.send(a, {"type": "result"}, b"x" * 5000)
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
