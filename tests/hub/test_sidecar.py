"""The sidecar backend with a real dispatcher process (``python -m dataask_sandbox --sidecar``).

The dispatcher watches a shared directory and gives each kernel that listens there a fresh
server. Here it runs as a plain process beside the test; ``tempfile.tempdir`` points the kernel's
socket directory into the shared one (what ``Sandbox`` does for the sidecar backend by itself once
it asks the backend for ``socket_root``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import dataask
from dataask_jupyter.backends.sidecar import SidecarBackend, unavailable_reason
from dataask_jupyter.config import Ask
from dataask_jupyter.errors import SandboxError
from dataask_jupyter.sandbox import Sandbox
from tests.scripted_llm import ScriptedLLM


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="dataask-sc-"))  # short: socket paths have 107 bytes
    root.chmod(0o777)
    proc = subprocess.Popen(
        [sys.executable, "-I", "-m", "dataask_sandbox", "--sidecar", str(root)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "sidecar.log", "wb"),  # noqa: SIM115 - the child owns it
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MPLCONFIGDIR": str(tmp_path)},
        start_new_session=True,
    )
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    try:
        yield root
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def _sandbox(root: Path) -> Sandbox:
    return Sandbox(Ask(start_timeout=20.0), backend=SidecarBackend(root))


def test_each_kernel_gets_its_own_server(shared: Path) -> None:
    a, b = _sandbox(shared), _sandbox(shared)
    try:
        a.load("sales", pd.DataFrame({"revenue": [1, 2, 3]}))
        b.load("other", pd.DataFrame({"x": [9]}))
        assert a.server_info["pid"] != b.server_info["pid"]
        layers = a.server_info["layers"]
        assert layers[0].startswith("network self-denial: socket() only for AF_UNIX"), layers
        out = a.run("result = sorted(dfs) + [int(df['revenue'].sum())]", "sales")
        assert out.ok and out.value == ["sales", 6], out
        assert b.run("result = sorted(dfs)", "other").value == ["other"]
        # generated code cannot open a network socket in the sidecar either
        probe = a.run("import socket\nsocket.socket()\nresult = 1", "sales")
        assert probe.error is not None and "PermissionError" in probe.error
        info = a.info()
        assert info["backend"] == "sidecar" and "AF_UNIX" in info["isolation"]
        # a restart (new socket directory) is served again, with the datasets re-sent
        first = a.server_info["pid"]
        a.restart()
        assert a.server_info["pid"] != first
        assert a.run("result = len(df)", "sales").value == 3
    finally:
        a.close()
        b.close()
    deadline = time.monotonic() + 10
    while any(shared.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(shared.iterdir())  # each kernel removed its own directory


def test_socket_outside_the_shared_directory_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(SandboxError, match="only sees"):
        SidecarBackend(root).start(elsewhere)


def test_missing_shared_directory_is_named(tmp_path: Path) -> None:
    reason = unavailable_reason(tmp_path / "nope")
    assert reason is not None and "no sandbox sidecar" in reason
    with pytest.raises(SandboxError, match="does not exist"):
        SidecarBackend(tmp_path / "nope").start(tmp_path / "nope" / "k1")


_SELECTABLE = "sidecar" in (Ask.class_traits()["sandbox"].values or ())


@pytest.mark.skipif(not _SELECTABLE, reason="Ask.sandbox has no 'sidecar' choice yet")
def test_session_selects_the_sidecar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, llm: ScriptedLLM
) -> None:
    """``DATAASK_SANDBOX=sidecar`` + ``DATAASK_SANDBOX_SOCKET_DIR``: the socket lands in the
    shared directory by itself (no tempdir redirection) and a question is answered there."""
    root = Path(tempfile.mkdtemp(prefix="dataask-sc-"))
    root.chmod(0o777)
    proc = subprocess.Popen(
        [sys.executable, "-I", "-m", "dataask_sandbox", "--sidecar", str(root)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MPLCONFIGDIR": str(tmp_path)},
        start_new_session=True,
    )
    monkeypatch.setenv("DATAASK_SANDBOX", "sidecar")
    monkeypatch.setenv("DATAASK_SANDBOX_SOCKET_DIR", str(root))
    s = dataask.Session(llm_base_url=llm.url, llm_api_key="k", llm_model="scripted")
    try:
        s.load(pd.DataFrame({"revenue": [1, 2, 3]}), name="sales")
        llm.on("total revenue", "result = int(df['revenue'].sum())")
        assert s.ask("What is the total revenue?").value == 6
        info = s.sandbox_info()
        assert info["backend"] == "sidecar"
        assert [p.parent for p in root.glob("*/sandbox.sock")] == [s.sandbox._dir]
    finally:
        s.close()
        os.killpg(proc.pid, 9)
        proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
