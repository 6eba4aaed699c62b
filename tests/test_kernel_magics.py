"""The magics in a real ipykernel driven through jupyter_client: one-line questions ending with
"?", progress as a frontend sees it (lines headless, one output updated in place in JupyterLab)
and the stop button."""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from tests.scripted_llm import ScriptedLLM

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "examples" / "data"


@pytest.fixture(scope="module")
def kernel(llm_server: ScriptedLLM) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    env = {k: v for k, v in os.environ.items() if k != "JPY_SESSION_NAME"}
    env.update(
        DATAASK_LLM_BASE_URL=llm_server.url,
        DATAASK_LLM_API_KEY="test-key-not-secret",
        DATAASK_LLM_MODEL="scripted",
        DATAASK_SANDBOX=os.environ.get("DATAASK_TEST_SANDBOX", "local"),
    )
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=env, cwd=str(ROOT))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        run(kc, "%load_ext dataask")
        run(kc, f"%ask load {DATA / 'customers.csv'}")
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def send(kc: BlockingKernelClient, code: str, metadata: dict[str, Any] | None = None) -> str:
    """Send an execute request (with JupyterLab's metadata when given); returns its id."""
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {}}
    msg = kc.session.msg("execute_request", content, metadata=metadata or {})
    kc.shell_channel.send(msg)
    return str(msg["header"]["msg_id"])


def collect(kc: BlockingKernelClient, msg_id: str, timeout: float = 120) -> list[dict[str, Any]]:
    """The request's iopub messages up to the kernel going idle (status messages left out)."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status":
            if msg["content"]["execution_state"] == "idle":
                return messages
            continue
        messages.append(msg)
    raise TimeoutError(f"no idle status for {msg_id} in {timeout} s")


def run(
    kc: BlockingKernelClient, code: str, metadata: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    messages = collect(kc, send(kc, code, metadata))
    errors = [m["content"] for m in messages if m["msg_type"] == "error"]
    assert not errors, errors
    return messages


def stdout(messages: list[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")


def shell_reply(kc: BlockingKernelClient, msg_id: str) -> dict[str, Any]:
    """The execute reply to ``msg_id`` (help output comes back in its payload, for the pager)."""
    while True:
        reply: dict[str, Any] = kc.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply


def display_id(msg: dict[str, Any]) -> str | None:
    return msg["content"].get("transient", {}).get("display_id")


def value_of(kc: BlockingKernelClient, expression: str) -> str:
    results = [m for m in run(kc, expression) if m["msg_type"] == "execute_result"]
    return str(results[-1]["content"]["data"]["text/plain"])


def test_one_line_question_ending_with_question_mark(
    kernel: tuple[KernelManager, BlockingKernelClient], llm: ScriptedLLM
) -> None:
    _, kc = kernel
    llm.on("how many customers", "result = len(df)")
    out = stdout(run(kc, "%ask -o n how many customers in total?"))
    assert "not found" not in out
    assert value_of(kc, "n") == "8"
    # without the extension's input transformer IPython reads the line as help on `total`
    remove = "from dataask_jupyter.magics import ask_line_transform as t\n"
    run(kc, remove + "get_ipython().input_transformers_cleanup.remove(t)")
    try:
        assert "Object `total` not found" in stdout(run(kc, "%ask how many customers in total?"))
    finally:
        run(kc, remove + "get_ipython().input_transformers_cleanup.append(t)")
    # a cell mixing code and a question line; IPython's own help syntax still works elsewhere
    out = stdout(run(kc, "m = n * 2\n%ask -o k how many customers are there?\nprint(m, k)"))
    assert "16 8" in out
    msg_id = send(kc, "%ask?")
    collect(kc, msg_id)
    assert "Ask questions about your data" in str(shell_reply(kc, msg_id)["content"]["payload"])


def test_headless_progress_is_one_line_per_stage(
    kernel: tuple[KernelManager, BlockingKernelClient], llm: ScriptedLLM
) -> None:
    _, kc = kernel
    llm.on("oldest", "result = df.sort_values('signup_date').iloc[0]['name']")
    messages = run(kc, "%ask who is the oldest customer?")
    lines = stdout(messages).splitlines()
    assert "dataask: writing code" in lines and "dataask: running in the sandbox" in lines
    assert not [m for m in messages if m["msg_type"] == "update_display_data"]


def test_live_progress_is_updated_in_place_then_gives_way(
    kernel: tuple[KernelManager, BlockingKernelClient], llm: ScriptedLLM
) -> None:
    _, kc = kernel
    code = "\n".join(f"x{i} = len(df) + {i}" for i in range(30)) + "\nresult = x29"
    llm.on("largest x", code)
    lab = {"cellId": "a1b2c3", "deletedCells": [], "recordTiming": False}  # what JupyterLab sends
    messages = run(kc, "%ask -o v what is the largest x?", metadata=lab)
    assert value_of(kc, "v") == str(8 + 29)
    shown = [m for m in messages if m["msg_type"] in ("display_data", "update_display_data")]
    progress_id = display_id(shown[0])
    progress = [m for m in shown if display_id(m) == progress_id]
    assert progress[0]["msg_type"] == "display_data"
    assert progress[0]["content"]["data"]["text/plain"].startswith("dataask: ")
    texts = [m["content"]["data"].get("text/plain", "") for m in progress]
    assert any("dataask: running in the sandbox" in t for t in texts)
    assert any("x29 = len(df) + 29" in t for t in texts)  # the code was shown as it came
    assert all(m["msg_type"] == "update_display_data" for m in progress[1:])
    assert progress[-1]["content"]["data"] == {}  # emptied: the answer takes its place
    answer = shown[shown.index(progress[-1]) + 1 :]
    assert answer and "37" in str(answer[-1]["content"]["data"])
    assert "dataask: " not in stdout(messages)  # no stage lines next to the live view


def test_live_updates_are_throttled(kernel: tuple[KernelManager, BlockingKernelClient]) -> None:
    _, kc = kernel
    cell = (
        "from dataask_jupyter.progress import ProgressView\n"
        "from dataask_jupyter.events import Event\n"
        "view = ProgressView(live=True)\n"
        "view(Event('stage', 'writing code', 1))\n"
        "for i in range(300):\n"
        "    view(Event('token', f'y{i} = {i}\\n', 1))\n"
        "view.close()\n"
    )
    messages = run(kc, cell)
    updates = [m for m in messages if m["msg_type"] == "update_display_data"]
    assert 1 <= len(updates) <= 5  # 300 tokens in a burst: a handful of updates, not 300
    assert updates[-1]["content"]["data"] == {}


def test_stop_button_cancels_the_question(
    kernel: tuple[KernelManager, BlockingKernelClient], llm: ScriptedLLM
) -> None:
    km, kc = kernel
    llm.on("slow", "result = 1")
    llm.on("how many", "result = len(df)")
    llm.delay(30)
    msg_id = send(kc, "%ask -o slow_value a slow question")
    deadline = time.monotonic() + 60
    while not llm.requests and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    km.interrupt_kernel()
    messages = collect(kc, msg_id)
    assert not [m for m in messages if m["msg_type"] == "error"]
    assert stdout(messages).strip().splitlines()[-1] == "cancelled"
    assert "Traceback" not in str(messages)
    assert stdout(run(kc, "print(slow_value)")).strip() == "None"
    run(kc, "%ask -o n how many rows?")
    assert value_of(kc, "n") == "8"
    history = stdout(run(kc, "%ask history"))
    assert "a slow question" in history and "how many rows?" in history
