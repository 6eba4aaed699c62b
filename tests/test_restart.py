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
