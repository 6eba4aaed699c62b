"""Restart and continue, in a real kernel driven through jupyter_client.

The kernel gets what jupyter-server gives a notebook's kernel (``JPY_SESSION_NAME``) and a state
directory of its own; the LLM is the scripted server in this process, the sandbox is local.
"""

from __future__ import annotations

import os
import queue
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager, start_new_kernel

from dataask_jupyter.store import ConversationStore
from tests.scripted_llm import ScriptedLLM

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"


@dataclass
class Output:
    text: str = ""
    errors: list[str] = field(default_factory=list)


class Kernel:
    """A real ipykernel: run cells, restart it."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.km: KernelManager
        self.km, self.kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(cwd))

    def run(self, code: str, timeout: float = 120) -> Output:
        msg_id = self.kc.execute(code)
        out = Output()
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no reply within {timeout} s to {code!r}") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.text += content["text"]
            elif kind in ("execute_result", "display_data"):
                out.text += content["data"].get("text/plain", "") + "\n"
            elif kind == "error":
                out.errors.append(f"{content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                return out

    def ok(self, code: str) -> str:
        out = self.run(code)
        assert not out.errors, (code, out.errors, out.text)
        return out.text

    def restart(self) -> None:
        self.km.restart_kernel(now=True)
        self.kc.wait_for_ready(timeout=60)

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernel(llm: ScriptedLLM, tmp_path: Path) -> Iterator[Kernel]:
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATAASK_", "OPENAI_"))},
        "DATAASK_STATE_DIR": str(tmp_path / "state"),
        "DATAASK_LLM_BASE_URL": llm.url,
        "DATAASK_LLM_API_KEY": "test-key-not-secret",
        "DATAASK_LLM_MODEL": "scripted",
        "DATAASK_SANDBOX": os.environ.get("DATAASK_TEST_SANDBOX", "local"),
        "JPY_SESSION_NAME": str(work / "analysis.ipynb"),
    }
    k = Kernel(env, work)
    yield k
    k.stop()


def _start(kernel: Kernel, llm: ScriptedLLM, csv: Path) -> None:
    llm.on("total revenue", "result = df['revenue_usd'].sum()")
    llm.on("how many rows", "result = len(df)")
    kernel.ok("%load_ext dataask")
    assert "Loaded traffic" in kernel.ok(f"%ask load {csv} --name traffic")
    kernel.ok("%%ask -o total\nWhat is the total revenue?")


def test_restart_and_continue(kernel: Kernel, llm: ScriptedLLM, tmp_path: Path) -> None:
    csv = tmp_path / "work" / "traffic.csv"
    shutil.copy(DATA / "web_traffic.csv", csv)
    _start(kernel, llm, csv)
    before = kernel.ok("print(total)").strip()
    kernel.restart()
    assert "NameError" in kernel.run("total").errors[0]  # a new process indeed
    kernel.ok("%load_ext dataask")
    history = kernel.ok("%ask history")
    assert "What is the total revenue?" in history
    assert "traffic" in kernel.ok("%ask datasets")
    kernel.ok("%%ask -o rows\nHow many rows are there?")  # reloads the dataset lazily
    assert kernel.ok("print(rows)").strip() == "5490"
    history = kernel.ok("%ask history")
    assert history.index("What is the total revenue?") < history.index("How many rows")
    kernel.ok("%%ask -o again\nWhat is the total revenue?")
    assert kernel.ok("print(again)").strip() == before


def test_changed_and_missing_files_after_restart(
    kernel: Kernel, llm: ScriptedLLM, tmp_path: Path
) -> None:
    csv = tmp_path / "work" / "traffic.csv"
    shutil.copy(DATA / "web_traffic.csv", csv)
    _start(kernel, llm, csv)
    kernel.restart()
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(lines[:101]))  # the file changed while the kernel was down
    kernel.ok("%load_ext dataask")
    out = kernel.run("%%ask -o rows\nHow many rows are there?")
    assert not out.errors, out.errors
    assert "traffic.csv" in out.text and "changed" in out.text  # said, and reloaded
    assert kernel.ok("print(rows)").strip() == "100"
    kernel.restart()
    csv.unlink()
    kernel.ok("%load_ext dataask")
    out = kernel.run("%%ask\nHow many rows are there?")
    said = "\n".join(out.errors) + out.text
    assert "traffic.csv" in said and (
        "missing" in said or "no longer" in said or "not found" in said
    )
    assert "Traceback" not in said


def test_reset_and_forget(kernel: Kernel, llm: ScriptedLLM, tmp_path: Path) -> None:
    csv = tmp_path / "work" / "traffic.csv"
    shutil.copy(DATA / "web_traffic.csv", csv)
    _start(kernel, llm, csv)
    kernel.ok("%ask reset")
    kernel.restart()
    kernel.ok("%load_ext dataask")
    assert "What is the total revenue?" not in kernel.ok("%ask history")
    assert "traffic" in kernel.ok("%ask datasets")  # reset keeps the datasets
    kernel.ok("%%ask\nHow many rows are there?")
    kernel.ok("%ask forget")
    kernel.restart()
    kernel.ok("%load_ext dataask")
    assert "How many rows" not in kernel.ok("%ask history")
    assert "traffic" not in kernel.ok("%ask datasets")
    stored = ConversationStore(
        tmp_path / "state", f"notebook:{tmp_path / 'work' / 'analysis.ipynb'}"
    )
    assert stored.turns() == [] and stored.datasets() == []
    stored.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _api(url: str, token: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
    import json
    import urllib.request

    req = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        data = resp.read()
    return json.loads(data) if data else None


def test_notebook_key_in_a_kernel_started_by_jupyter_server(tmp_path: Path) -> None:
    """The key is the notebook's absolute path, as a real jupyter-server starts the kernel:
    with the file name beside the path (what JupyterLab sends) and with the path alone."""
    import secrets
    import subprocess
    import sys
    import time
    import urllib.error

    import nbformat
    from jupyter_client.blocking import BlockingKernelClient

    root = tmp_path / "root"
    for sub in ("sub", "other"):
        (root / sub).mkdir(parents=True)
        nbformat.write(nbformat.v4.new_notebook(), root / sub / "analysis.ipynb")
    token, port = secrets.token_hex(16), _free_port()
    runtime = tmp_path / "runtime"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime)}
    env.pop("JPY_SESSION_NAME", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", "--ip=127.0.0.1",
         f"--port={port}", f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                _api(f"{base}/api/status", token)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        for sub, send_name in (("sub", True), ("other", False)):
            body: dict[str, Any] = {
                "path": f"{sub}/analysis.ipynb",
                "type": "notebook",
                "kernel": {"name": "python3"},
            }
            if send_name:
                body["name"] = "analysis.ipynb"
            session = _api(f"{base}/api/sessions", token, "POST", body)
            seen: list[dict[str, Any]] = []
            kc = BlockingKernelClient()
            kc.load_connection_file(str(runtime / f"kernel-{session['kernel']['id']}.json"))
            kc.start_channels(hb=False)  # a kernel busy starting on a loaded machine misses beats
            try:
                kc.wait_for_ready(timeout=120)
                reply = kc.execute_interactive(
                    "from dataask_jupyter.notebook_key import notebook_key\n"
                    "print(notebook_key(get_ipython().user_ns))",
                    timeout=60,
                    output_hook=seen.append,
                )
                assert reply["content"]["status"] == "ok"
            finally:
                kc.stop_channels()
            printed = "".join(
                m["content"].get("text", "") for m in seen if m["msg_type"] == "stream"
            )
            assert printed.strip() == f"notebook:{root / sub / 'analysis.ipynb'}", body
    finally:
        server.terminate()
        server.wait(30)


def test_session_restores_from_its_store(
    settings_kwargs: dict[str, Any], llm: ScriptedLLM, tmp_path: Path
) -> None:
    """Without a kernel: a second Session on the same store continues the first one's work."""
    import dataask

    csv = tmp_path / "traffic.csv"
    shutil.copy(DATA / "web_traffic.csv", csv)
    llm.on("revenue by channel", "result = df.groupby('channel')['revenue_usd'].sum()")
    llm.on("only organic", "result = prev.loc['Organic']")
    llm.on("every session", "result = pd.concat([df] * 20, ignore_index=True)")  # over the cap
    llm.on("how many rows", "result = len(df)")
    state, key = tmp_path / "state", "notebook:/work/analysis.ipynb"
    with dataask.Session(**settings_kwargs, store=ConversationStore(state, key)) as first:
        first.load(csv, name="traffic")
        big = first.ask("List every session twenty times")
        assert big.error is None and len(big.value) > 100_000
        by_channel = first.ask("Revenue by channel?")
    with dataask.Session(**settings_kwargs, store=ConversationStore(state, key)) as second:
        import nbformat

        exported = nbformat.read(second.export(tmp_path / "before.ipynb"), as_version=4)
        load = exported.cells[1].source  # the datasets are not reloaded yet, but known
        assert "dfs['traffic'] = pd.read_csv(" in load and repr(str(csv)) in load
        assert [a.question for a in second.history] == [
            "List every session twenty times",
            "Revenue by channel?",
        ]
        assert second.history[0].summary == big.summary  # kept as a summary only
        assert second.history[0].value is None
        import pandas as pd

        pd.testing.assert_series_equal(second.history[1].value, by_channel.value)
        organic = second.ask("Only organic?")  # prev is the last answer's value again
        assert organic.error is None and organic.number == 3
        assert organic.value == pytest.approx(by_channel.value.loc["Organic"])
        rows = second.ask("How many rows are there?")
        assert rows.error is None and rows.value == 5490
