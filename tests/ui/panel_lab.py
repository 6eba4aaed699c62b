"""A JupyterLab on loopback for the side panel's UI test and benchmark.

``running_lab(folder, rules)`` starts the scripted LLM (a separate process, answering from
``rules``) and JupyterLab serving ``folder/root``, with settings, workspaces and runtime files
under ``folder``; it yields the base URL and token and stops both on exit.
``open_notebook`` opens a notebook in Chromium, ``open_panel`` the dataask panel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.ui.test_quickstart_ui import CHROMIUM, CHROMIUM_ARGS, _free_port, _stop, _wait_for

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "dataask-panel-test-token"
SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


@contextmanager
def running_lab(folder: Path, rules: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """JupyterLab serving ``folder / "root"`` with the scripted LLM answering from ``rules``."""
    root = folder / "root"
    root.mkdir(parents=True, exist_ok=True)
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    (folder / "rules.json").write_text(json.dumps(rules))
    port_file = folder / "llm-url"
    llm = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "scripted_llm.py"),
            "--rules",
            str(folder / "rules.json"),
            "--port-file",
            str(port_file),
        ],
        stdout=open(logs / "llm.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    procs = [llm]
    try:
        llm_url = _wait_for(
            lambda: port_file.exists() and port_file.read_text().strip(), 30, "the scripted LLM"
        )
        settings = folder / "lab-settings"
        for rel, body in SETTINGS.items():
            (settings / rel).parent.mkdir(parents=True, exist_ok=True)
            (settings / rel).write_text(json.dumps(body))
        port = _free_port()
        env = {
            **os.environ,
            "DATAASK_LLM_BASE_URL": llm_url,
            "DATAASK_LLM_API_KEY": "scripted-not-secret",
            "DATAASK_LLM_MODEL": "scripted",
            "DATAASK_SANDBOX": os.environ.get("DATAASK_TEST_SANDBOX", "local"),
            "DATAASK_STATE_DIR": str(folder / "state"),
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(folder / "workspaces"),
            "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
            "JUPYTER_CONFIG_DIR": str(folder / "config"),
        }
        for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DATAASK_LLM"):
            env.pop(var, None)
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={TOKEN}",
                f"--ServerApp.root_dir={root}",
                "--LabApp.news_url=",
                "--LabApp.extension_manager=readonly",  # no package-index look-ups
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],
            cwd=root,
            env=env,
            stdout=open(logs / "lab.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(server)
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2) as r:
                    return bool(r.status == 200)
            except OSError:
                if server.poll() is not None:
                    raise AssertionError((logs / "lab.log").read_text()[-3000:]) from None
                return False

        _wait_for(up, 90, "JupyterLab")
        yield {"base": base, "token": TOKEN, "root": root, "logs": logs}
    finally:
        for proc in reversed(procs):
            _stop(proc)


def launch(p: Any) -> Any:
    """Debian's Chromium, headless (never a downloaded browser)."""
    return p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def open_notebook(page: Any, lab: dict[str, Any], notebook: str) -> None:
    """Open ``notebook`` in its own workspace and wait for its kernel to be idle."""
    workspace = notebook.replace(".", "-")
    page.goto(f"{lab['base']}/lab/workspaces/{workspace}/tree/{notebook}?token={lab['token']}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
    page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=90_000)


def open_panel(page: Any, palette: bool = True) -> Any:
    """Command palette > "Open the dataask panel" (or the right sidebar's icon); the panel."""
    if palette:
        page.locator(".jp-NotebookPanel .jp-Cell").first.click()
        page.keyboard.press("Control+Shift+C")
        page.locator(".lm-CommandPalette-input:visible").fill("Open the dataask panel")
        page.locator(".lm-CommandPalette-item", has_text="Open the dataask panel").first.click()
    else:
        page.locator(".jp-SideBar.jp-mod-right [data-id='dataask-panel']").click()
    panel = page.locator("#dataask-panel")
    panel.wait_for(state="visible", timeout=30_000)
    return panel


def widen_panel(page: Any, width: int = 520) -> None:
    """Drag the right sidebar's split handle so the panel is ``width`` pixels wide."""
    panel = page.locator("#dataask-panel")
    box = panel.bounding_box()
    handles = page.locator(".lm-SplitPanel-handle:visible")
    for i in range(handles.count()):
        h = handles.nth(i).bounding_box()
        if h and box and abs(h["x"] + h["width"] - box["x"]) < 12:
            y = h["y"] + h["height"] / 2
            page.mouse.move(h["x"] + h["width"] / 2, y)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] - width, y, steps=5)
            page.mouse.up()
            return
