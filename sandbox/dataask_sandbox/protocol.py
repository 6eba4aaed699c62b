"""Wire protocol between the kernel and the sandbox server (stdlib only, no pickle anywhere).

A message is one frame: ``u32 header length | u64 payload length | JSON header | payload bytes``.
The header is a JSON object with a ``type``; the payload is opaque bytes (Arrow IPC, JSON) or empty.
The server dials the kernel's Unix socket and greets with ``ready`` (its ``protocol`` version first:
the kernel refuses a server that speaks another version). Then each kernel request gets zero or
more replies and one ``end``. One exception: ``cancel`` is a notice, never answered by itself; sent
while an ``exec`` runs, it ends that run (an ``error`` named ``Cancelled``, then the run's ``end``);
at any other time it is ignored. The typed dicts below are every message there is.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any, Literal, TypedDict

PROTOCOL_VERSION = 2  # 2: `cancel` during `exec`

# --- kernel -> sandbox ------------------------------------------------------------------------


class LoadRequest(TypedDict):
    """Hold the frame in the payload (an Arrow IPC stream) as dataset ``name``."""

    type: Literal["load"]
    name: str


class DropRequest(TypedDict):
    """Forget dataset ``name``."""

    type: Literal["drop"]
    name: str


class ExecRequest(TypedDict):
    """Run ``code`` with ``df`` = dataset ``dataset``; stop it after ``timeout`` seconds."""

    type: Literal["exec"]
    code: str
    dataset: str | None
    timeout: float
    max_result_bytes: int


class _PrevValue(TypedDict, total=False):
    kind: str  # as in a result: table, series, json, figure
    name: str | None  # a series' name


class SetPrevRequest(_PrevValue):
    """Make the payload (encoded like a result) the next run's ``prev``."""

    type: Literal["set_prev"]


class ResetRequest(TypedDict):
    """Forget ``prev``."""

    type: Literal["reset"]


class PingRequest(TypedDict):
    type: Literal["ping"]


class ShutdownRequest(TypedDict):
    """Answer ``ok`` and ``end``, then exit."""

    type: Literal["shutdown"]


class CancelNotice(TypedDict):
    """Stop the run in progress, if any (no reply of its own)."""

    type: Literal["cancel"]


Request = (
    LoadRequest
    | DropRequest
    | ExecRequest
    | SetPrevRequest
    | ResetRequest
    | PingRequest
    | ShutdownRequest
    | CancelNotice
)

# --- sandbox -> kernel ------------------------------------------------------------------------


class _ReadyBase(TypedDict):
    type: Literal["ready"]
    protocol: int


class Ready(_ReadyBase, total=False):
    """The greeting, once per connection; the kernel passes keys it does not know through."""

    version: str
    pid: int
    python: str
    pandas: str
    layers: list[str]  # the isolation the server put on itself (netdeny.layers)


class Output(TypedDict):
    """Captured stdout/stderr of the run (capped)."""

    type: Literal["stdout", "stderr"]
    text: str


class _ResultBase(TypedDict):
    type: Literal["result"]
    kind: str  # table, series, json, figure, image, none


class Result(_ResultBase, total=False):
    """The run's ``result``; the payload holds the value (see ``encode``)."""

    rows: int
    columns: int
    name: str | None
    pytype: str
    mime: str
    seconds: float  # the code's own run time


class Error(TypedDict):
    """The run (or request) failed: exception name, message, short traceback of the code."""

    type: Literal["error"]
    ename: str
    evalue: str
    traceback: str


class Ok(TypedDict):
    type: Literal["ok"]


class Pong(TypedDict):
    type: Literal["pong"]
    datasets: list[str]


class End(TypedDict):
    """Closes every request's replies."""

    type: Literal["end"]


class Done(TypedDict):
    """Inside the server only: a run's process has said all it has to say."""

    type: Literal["done"]


Reply = Ready | Output | Result | Error | Ok | Pong | End | Done
Message = Request | Reply
RESULT_KEYS = ("kind", "rows", "columns", "name", "pytype", "mime", "seconds")
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


def encode(header: Message, payload: bytes | memoryview = b"") -> list[bytes | memoryview]:
    """Return the pieces of one frame (prefix+header, payload) ready for ``sendall``."""
    head = json.dumps(header, separators=(",", ":"), allow_nan=False, default=str).encode()
    return [_PREFIX.pack(len(head), len(payload)) + head, payload]


def send(sock: socket.socket, header: Message, payload: bytes | memoryview = b"") -> None:
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
