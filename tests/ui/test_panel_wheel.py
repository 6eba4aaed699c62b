"""The wheel carries the built JupyterLab extension: installed into a fresh virtualenv with no
``node`` on PATH, ``jupyter labextension list`` shows it enabled and OK, and its panel loads in
JupyterLab in Chromium.

The wheel is built from this checkout (the extension is built by hatch-jupyter-builder, which
needs Node and labextension/node_modules, both there after ``scripts/setup``). The fresh venv
gets the wheel without dependencies and borrows the test venv's packages through a ``.pth``
file, so nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ui.panel_lab import CHROMIUM, chromium_page, lab_server, write_settings

ROOT = Path(__file__).resolve().parents[2]
WIDE = {"width": 1400, "height": 900}

pytestmark = [
    pytest.mark.ui,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(shutil.which("node") is None, reason="building the wheel needs Node"),
    pytest.mark.skipif(
        not (ROOT / "labextension" / "node_modules").is_dir(),
        reason="labextension/node_modules missing (scripts/setup installs it)",
    ),
]


def _no_node_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "NODE", "NPM"))}
    env["PATH"] = str(venv / "bin")  # the venv only: no node, no npm
    env["JUPYTER_CONFIG_DIR"] = str(venv / "etc-user")
    env["JUPYTER_DATA_DIR"] = str(venv / "data-user")  # not the developer's ~/.local/share
    env["JUPYTER_RUNTIME_DIR"] = str(venv / "runtime")
    return env


def test_wheel_installs_the_extension_without_node(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    here = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "npm_config_offline": "true",  # npm install must find everything in node_modules
    }
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        env=here,
        timeout=400,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    wheel = next(dist.glob("dataask_jupyter-*.whl"))

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    packages = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(packages) / "borrowed-test-venv.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = _no_node_env(venv)
    assert shutil.which("node", path=env["PATH"]) is None
    subprocess.run(
        [str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        env=env,
        timeout=300,
    )
    assert (venv / "share/jupyter/labextensions/dataask-jupyter/package.json").is_file()

    listed = subprocess.run(
        [str(py), "-m", "jupyterlab.labextensions", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    text = listed.stdout + listed.stderr
    line = next((ln for ln in text.splitlines() if "dataask-jupyter" in ln), "")
    assert "enabled" in line and "OK" in line, text
    assert str(venv) in text  # found in the fresh venv's share/, not elsewhere

    # it loads: the panel's icon is in the right sidebar and the panel opens
    pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("needs Chromium at /usr/bin/chromium")

    root = tmp_path / "root"
    root.mkdir()
    write_settings(Path(env["JUPYTER_CONFIG_DIR"]) / "lab" / "user-settings")  # no news look-up
    env = {**env, "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws")}
    with lab_server(py, root, tmp_path, env) as lab, chromium_page(tmp_path, viewport=WIDE) as page:
        page.goto(lab.url("lab"))
        tab = page.locator(".jp-SideBar.jp-mod-right [data-id='dataask-panel']")
        tab.wait_for(timeout=90_000)
        tab.click()
        panel = page.locator("#dataask-panel")
        panel.get_by_text("Open a notebook to ask about its data.").wait_for(timeout=30_000)
        assert panel.get_by_label("Ask a question about your data").count() == 1
        page.screenshot(path=str(tmp_path / "wheel.png"))
