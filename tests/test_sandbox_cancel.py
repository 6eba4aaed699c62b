"""Cancelling a run: the server ends the run's process, the sandbox and its datasets stay.

Real sandboxes (the backend the tests run with); the cancel comes from another thread (an
event) or as a KeyboardInterrupt (SIGINT to this process, as the kernel's stop button sends).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pandas as pd
import pytest

from dataask_jupyter.config import Ask
from dataask_jupyter.errors import CancelledError
from dataask_jupyter.sandbox import Sandbox
from dataask_sandbox import protocol
from tests.sandbox_freeze import freeze

SLOW = "import time\nfor _ in range(600):\n    time.sleep(0.05)\nresult = 1"


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    box = Sandbox(Ask(sandbox=os.environ.get("DATAASK_TEST_SANDBOX", "local"), exec_timeout=60.0))
    box.load("t", pd.DataFrame({"a": [1, 2, 3]}))
    box.set_prev(10)
    yield box
    box.close()


def healthy(sb: Sandbox, restarts: int = 0) -> None:
    """The next run works, sees the datasets and ``prev``; the sandbox was (not) replaced."""
    out = sb.run("result = int(df['a'].sum()) + prev", "t")
    assert out.ok and out.value == 16, out.error
    assert sb.restarts == restarts


def test_cancel_event_stops_the_run(sb: Sandbox) -> None:
    pid = sb.server_info["pid"]
    ident = sb.info()["id"]
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(CancelledError):
        sb.run(SLOW, "t", cancel=cancel)
    assert time.monotonic() - started < 10
    assert sb.running and sb.info()["id"] == ident and sb.server_info["pid"] == pid
    healthy(sb)


def test_keyboard_interrupt_stops_the_run(sb: Sandbox) -> None:
    assert threading.current_thread() is threading.main_thread()
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    started = time.monotonic()
    with pytest.raises(CancelledError):
        sb.run(SLOW, "t")
    assert time.monotonic() - started < 10
    healthy(sb)


def test_cancel_set_before_the_run(sb: Sandbox) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(CancelledError):
        sb.run("result = 1", "t", cancel=cancel)
    healthy(sb)


def test_server_that_does_not_answer_the_cancel_is_replaced(sb: Sandbox) -> None:
    assert sb.run("result = 10", "t").ok  # (prev stays 10)
    backend = sb.backend
    assert backend is not None
    freeze(backend)  # the server will not answer the cancel
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(CancelledError):
        sb.run(SLOW, "t", cancel=cancel)
    assert time.monotonic() - started < 15
    assert not sb.running
    healthy(sb, restarts=1)


def test_cancel_notice_while_idle_is_ignored(sb: Sandbox) -> None:
    assert sb._sock is not None
    protocol.send(sb._sock, {"type": "cancel"})
    time.sleep(0.2)
    assert sb.running  # nothing came back: the link is in step
    healthy(sb)
