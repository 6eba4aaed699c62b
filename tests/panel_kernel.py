"""A real ipykernel driven over ZMQ, with a client for the side panel's comm (tests, benchmark).

``PanelClient`` opens the ``dataask`` comm the way JupyterLab does (``comm_open``, then
``comm_msg``s) and reads the kernel's replies and pushes from IOPub.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jupyter_client.manager import KernelManager

TARGET = "dataask"
_CLIENTS: dict[str, PanelClient] = {}  # by comm id: IOPub messages go to their panel


def _route(msg: dict[str, Any]) -> None:
    client = _CLIENTS.get(msg["content"].get("comm_id", ""))
    if client is not None:
        client.receive(msg)


@contextmanager
def kernel(env: dict[str, str], cwd: str) -> Iterator[Any]:
    """A started kernel (this interpreter) and its blocking client."""
    km = KernelManager(kernel_name="python3")
    km.kernel_cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    full = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DATAASK_LLM")
    }
    full.update(env)
    km.start_kernel(env=full, cwd=cwd)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc: Any, code: str, timeout: float = 120) -> dict[str, Any]:
    """Execute ``code``; the reply content (raises on an error, with its message)."""
    reply = kc.execute_interactive(code, timeout=timeout, output_hook=_route)
    content: dict[str, Any] = reply["content"]
    if content["status"] != "ok":
        raise AssertionError(f"{content.get('ename')}: {content.get('evalue')}")
    return content


class PanelClient:
    """One panel's comm: ``request`` sends and waits for the reply; pushes are kept in order."""

    def __init__(self, kc: Any) -> None:
        self.kc = kc
        self.comm_id = uuid.uuid4().hex
        self.pushes: list[dict[str, Any]] = []
        self.closed = False
        self.bytes_received = 0
        self._next = 1
        self._inbox: queue.Queue[tuple[dict[str, Any], list[bytes]]] = queue.Queue()
        _CLIENTS[self.comm_id] = self

    def open(self, timeout: float = 30) -> dict[str, Any] | None:
        """Send the hello; its reply, or None when the kernel closed the comm (no dataask)."""
        rid = self._id()
        msg = self.kc.session.msg(
            "comm_open",
            {"comm_id": self.comm_id, "target_name": TARGET, "data": {"op": "hello", "id": rid}},
        )
        self.kc.shell_channel.send(msg)
        return self._wait_reply(rid, timeout, allow_close=True)

    def request(
        self, op: str, buffers: list[bytes] | None = None, timeout: float = 60, **args: Any
    ) -> dict[str, Any]:
        rid = self._id()
        msg = self.kc.session.msg(
            "comm_msg", {"comm_id": self.comm_id, "data": {"op": op, "id": rid, **args}}
        )
        self.kc.session.send(self.kc.shell_channel.socket, msg, buffers=buffers or [])
        reply = self._wait_reply(rid, timeout)
        assert reply is not None
        return reply

    def wait_push(self, pred: Any, timeout: float = 60, since: int = 0) -> dict[str, Any]:
        """The first push (kept from ``since`` on, or arriving) that ``pred`` accepts."""
        deadline = time.monotonic() + timeout
        seen = since
        while True:
            for m in self.pushes[seen:]:
                if pred(m):
                    return m
            seen = len(self.pushes)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such push in {timeout} s; got {self.pushes[-5:]}")
            self._pump(min(left, 1.0))

    def _id(self) -> int:
        self._next += 1
        return self._next

    def _wait_reply(
        self, rid: int, timeout: float, allow_close: bool = False
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            while not self._inbox.empty():
                data, buffers = self._inbox.get()
                if data.get("type") == "reply" and data.get("id") == rid:
                    return {**data, "buffers": buffers}
            if self.closed:
                if allow_close:
                    return None
                raise AssertionError("the kernel closed the panel's comm")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no reply to request {rid} in {timeout} s")
            self._pump(min(left, 1.0))

    def _pump(self, timeout: float) -> None:
        try:
            _route(self.kc.get_iopub_msg(timeout=timeout))
        except queue.Empty:
            return

    def receive(self, msg: dict[str, Any]) -> None:
        """An IOPub message for this comm."""
        kind = msg["header"]["msg_type"]
        content = msg["content"]
        if kind == "comm_close":
            self.closed = True
        elif kind == "comm_msg":
            data = content["data"]
            buffers = [bytes(b) for b in msg.get("buffers", [])]
            self.bytes_received += len(json.dumps(data)) + sum(len(b) for b in buffers)
            if data.get("type") == "reply":
                self._inbox.put((data, buffers))
            else:
                self.pushes.append(data)
