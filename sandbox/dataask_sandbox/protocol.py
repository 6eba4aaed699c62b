"""Wire protocol between the kernel and the sandbox server (stdlib only, no pickle anywhere).

A message is one frame: ``u32 header length | u64 payload length | JSON header | payload bytes``.
The header is a JSON object with a ``type``; the payload is opaque bytes (Arrow IPC, PNG) or empty.

Kernel -> sandbox: ``load`` (name, payload = Arrow IPC stream), ``drop`` (name), ``exec`` (code,
dataset, timeout, limits), ``set_prev`` (payload like a result), ``reset``, ``ping``, ``shutdown``.
Sandbox -> kernel: ``ready`` (once per connection), ``stdout``/``stderr`` (text), ``result`` (kind
and metadata, payload), ``error`` (ename, evalue, traceback), ``ok``, ``pong``, then ``end`` closes
every request.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

PROTOCOL_VERSION = 1
_PREFIX = struct.Struct(">IQ")
MAX_HEADER_BYTES = 16 * 1024 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame, or closed the connection."""


class PayloadTooLarge(ProtocolError):
    """A frame announced a payload over the reader's cap."""

    def __init__(self, size: int, cap: int) -> None:
        super().__init__(f"payload of {size} bytes is over the cap of {cap} bytes")
        self.size = size
        self.cap = cap


def encode(header: dict[str, Any], payload: bytes | memoryview = b"") -> list[bytes | memoryview]:
    """Return the pieces of one frame (prefix+header, payload) ready for ``sendall``."""
    head = json.dumps(header, separators=(",", ":"), allow_nan=False, default=str).encode()
    return [_PREFIX.pack(len(head), len(payload)) + head, payload]


def send(sock: socket.socket, header: dict[str, Any], payload: bytes | memoryview = b"") -> None:
    """Write one frame to ``sock``."""
    head, body = encode(header, payload)
    sock.sendall(head)
    if len(body):
        sock.sendall(body)


def _recv_exact(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], min(n - got, 4 * 1024 * 1024))
        if k == 0:
            raise ProtocolError("connection closed by peer")
        got += k
    return buf


def _discard(sock: socket.socket, n: int) -> None:
    while n > 0:
        chunk = sock.recv(min(n, 1024 * 1024))
        if not chunk:
            raise ProtocolError("connection closed by peer")
        n -= len(chunk)


def recv(
    sock: socket.socket, max_payload: int, *, discard_oversize: bool = False
) -> tuple[dict[str, Any], bytes]:
    """Read one frame. Raise :class:`PayloadTooLarge` when the payload is over ``max_payload``.

    With ``discard_oversize`` the oversize payload is read and thrown away first, so the stream
    stays usable; otherwise the caller should drop the connection.
    """
    hlen, plen = _PREFIX.unpack(bytes(_recv_exact(sock, _PREFIX.size)))
    if hlen > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {hlen} bytes is over the cap of {MAX_HEADER_BYTES}")
    try:
        header = json.loads(bytes(_recv_exact(sock, hlen)))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ProtocolError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError("header is not an object with a 'type'")
    if plen > max_payload:
        if discard_oversize:
            _discard(sock, plen)
        raise PayloadTooLarge(plen, max_payload)
    payload = bytes(_recv_exact(sock, plen)) if plen else b""
    return header, payload
