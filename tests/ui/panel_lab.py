"""JupyterLab in Debian's Chromium, for the UI tests and benchmarks.

``running_lab(folder, rules)`` starts the scripted LLM (a separate process, answering from
``rules``) and JupyterLab serving ``folder/root``, with settings, workspaces and runtime files
under ``folder``; it yields a :class:`Lab` and stops both on exit. ``lab_server`` starts
JupyterLab alone, with any Python and environment. Behind JupyterHub a :class:`Lab` has the
user's prefix in its base URL and no token: ``hub_login`` signs the browser in through the Hub's
login form instead. ``open_notebook`` opens a notebook in Chromium, ``open_panel`` the dataask
panel.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
UI = [  # the marks of every test that drives Chromium
    pytest.mark.ui,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium"),
]
TOKEN = "dataask-panel-test-token"
SETTINGS = {  # no news or update checks (no network), every cell in the DOM
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
LAB_ARGS = [  # for jupyter lab and jupyterhub-singleuser alike
    "--LabApp.news_url=",
    "--LabApp.extension_manager=readonly",  # no package-index look-ups
]


@dataclass
class Lab:
    """Where a JupyterLab answers: ``base`` is its URL up to ``/lab`` (with a Hub's
    ``/user/<name>`` prefix); with no ``token`` the browser must be signed in already."""

    base: str
    root: Path
    logs: Path
    token: str | None = None

    def url(self, path: str) -> str:
        """``path`` below ``base``, with the token when there is one."""
        url = f"{self.base}/{path.lstrip('/')}"
        if self.token is None:
            return url
        return f"{url}{'&' if '?' in url else '?'}token={self.token}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop ``proc`` and its process group (a server and its kernels): TERM, then KILL."""
    if proc.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def write_settings(folder: Path) -> Path:
    """JupyterLab's user settings for the tests (``SETTINGS``) in ``folder``; ``folder``."""
    for rel, body in SETTINGS.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(json.dumps(body))
    return folder


@contextmanager
def scripted_llm(folder: Path, rules: list[dict[str, Any]]) -> Iterator[str]:
    """tests/scripted_llm.py in its own process, answering from ``rules``; its base URL."""
    (folder / "rules.json").write_text(json.dumps(rules))
    port_file = folder / "llm-url"
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "scripted_llm.py"),
            "--rules",
            str(folder / "rules.json"),
            "--port-file",
            str(port_file),
        ],
        stdout=open(folder / "logs" / "llm.log", "wb"),  # noqa: SIM115 - the child owns it
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield wait_for(
            lambda: port_file.exists() and port_file.read_text().strip(), 30, "the scripted LLM"
        )
    finally:
        stop(proc)


@contextmanager
def lab_server(
    python: str | Path, root: Path, logs: Path, env: dict[str, str], token: str = TOKEN
) -> Iterator[Lab]:
    """``python -m jupyterlab`` on loopback serving ``root`` with ``env``, until exit."""
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = subprocess.Popen(
        [
            str(python),
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            *LAB_ARGS,
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        cwd=root,
        env=env,
        stdout=open(logs / "lab.log", "wb"),  # noqa: SIM115 - the child owns it
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lab = Lab(f"http://127.0.0.1:{port}", root, logs, token)

    def up() -> bool:
        try:
            with urllib.request.urlopen(lab.url("api/status"), timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            if server.poll() is not None:
                raise AssertionError((logs / "lab.log").read_text()[-3000:]) from None
            return False

    try:
        wait_for(up, 90, "JupyterLab")
        yield lab
    finally:
        stop(server)


def lab_env(folder: Path, llm_url: str) -> dict[str, str]:
    """This process's environment for a JupyterLab whose kernels ask the scripted LLM at
    ``llm_url``, with its state, settings and runtime files under ``folder``."""
    env = {
        **os.environ,
        "DATAASK_LLM_BASE_URL": llm_url,
        "DATAASK_LLM_API_KEY": "scripted-not-secret",
        "DATAASK_LLM_MODEL": "scripted",
        "DATAASK_SANDBOX": os.environ.get("DATAASK_TEST_SANDBOX", "local"),
        "DATAASK_STATE_DIR": str(folder / "state"),
        "JUPYTERLAB_SETTINGS_DIR": str(write_settings(folder / "lab-settings")),
        "JUPYTERLAB_WORKSPACES_DIR": str(folder / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
        "JUPYTER_CONFIG_DIR": str(folder / "config"),
    }
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DATAASK_LLM"):
        env.pop(var, None)
    return env


@contextmanager
def running_lab(folder: Path, rules: list[dict[str, Any]]) -> Iterator[Lab]:
    """JupyterLab serving ``folder / "root"`` with the scripted LLM answering from ``rules``."""
    root = folder / "root"
    root.mkdir(parents=True, exist_ok=True)
    with (
        scripted_llm(folder, rules) as llm_url,
        lab_server(sys.executable, root, folder / "logs", lab_env(folder, llm_url)) as lab,
    ):
        yield lab


def need_lab() -> None:
    """Skip the test when JupyterLab or Playwright is not installed."""
    pytest.importorskip("jupyterlab")
    pytest.importorskip("playwright.sync_api")


def write_notebook(path: Path, cells: list[Any]) -> None:
    """A notebook of ``cells`` (nbformat cells) for the python3 kernel at ``path``."""
    nb = nbformat.v4.new_notebook(
        cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    )
    nbformat.write(nb, path)


def launch(p: Any) -> Any:
    """Debian's Chromium, headless (never a downloaded browser)."""
    return p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


@contextmanager
def chromium_page(shots: Path, errors: list[str] | None = None, **context: Any) -> Iterator[Any]:
    """A page in a fresh context (``context``: Playwright's ``new_context`` options) of
    Debian's headless Chromium; console errors go to ``errors``. When the body fails, a
    screenshot of the page is saved as ``shots/failure.png``. The browser closes on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_context(**context).new_page()
            if errors is not None:
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            try:
                yield page
            except Exception:
                page.screenshot(path=str(shots / "failure.png"))
                print(f"screenshot of the failure: {shots / 'failure.png'}")
                raise
        finally:
            browser.close()


def hub_login(page: Any, hub: str, user: str, password: str = "any password") -> None:
    """Sign ``user`` in through the login form of the JupyterHub at ``hub``, as a person does;
    returns once the Hub has sent the browser on to the user's running server."""
    page.goto(f"{hub}/hub/login")
    page.get_by_label("Username:").fill(user)
    page.get_by_label("Password:").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(rf"^{re.escape(hub)}/user/{re.escape(user)}/"), timeout=90_000)


def open_notebook(page: Any, lab: Lab, notebook: str) -> None:
    """Open ``notebook`` in its own workspace and wait for its kernel to be idle."""
    workspace = notebook.replace(".", "-")
    page.goto(lab.url(f"lab/workspaces/{workspace}/tree/{notebook}"))
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


def ask(panel: Any, question: str) -> Any:
    """Type ``question`` in the panel, press Enter; the new answer once it is rendered."""
    before = panel.locator(".dataask-answer").count()
    box = panel.get_by_label("Ask a question about your data")
    box.fill(question)
    box.press("Enter")
    answer = panel.locator(".dataask-answer").nth(before)
    answer.wait_for(timeout=120_000)
    assert question in answer.locator(".dataask-question").inner_text()
    return answer
