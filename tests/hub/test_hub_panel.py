"""The side panel behind a real JupyterHub, driven in Debian's Chromium for one user.

The Hub (tests/hub/hubctl.py: dummy authenticator, local spawner, configurable-http-proxy)
starts the user's server (JupyterLab with our labextension; the LLM endpoint comes from the
Hub's spawner environment, as an administrator sets it). Chromium signs the user in through the
Hub's login form, opens a notebook at /user/<name>/lab, opens the panel, loads dataask with one
click, uploads a workbook, asks two questions the scripted LLM answers (a number, shown with its
code, and a table, exported as CSV). Every request and
websocket of the page goes through the proxy under /user/<name>/, and none to a dataask server
route: the panel needs no server extension, only the kernel's websocket. The screenshot goes to
the test's tmp dir and is copied to /tmp/dataask-hub-panel.png.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pandas as pd
import pytest

from tests.hub.hubctl import LocalHub, proxy_command
from tests.scripted_llm import ScriptedLLM
from tests.ui.panel_lab import (
    LAB_ARGS,
    UI,
    Lab,
    ask,
    chromium_page,
    hub_login,
    need_lab,
    open_notebook,
    open_panel,
    widen_panel,
    write_notebook,
    write_settings,
)

ROOT = Path(__file__).resolve().parents[2]
SALES = ROOT / "examples" / "data" / "sales.xlsx"
USER = "carol"
PREFIX = f"/user/{USER}/"
QUESTION = "How many orders came from Europe?"
CODE = "result = int((df['region'] == 'Europe').sum())"
TABLE_QUESTION = "How many orders per region?"
TABLE_CODE = "result = df['region'].value_counts()"
SCREENSHOT_COPY = Path("/tmp/dataask-hub-panel.png")

pytestmark = [
    *UI,
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        proxy_command() is None,
        reason="configurable-http-proxy missing (scripts/setup test installs it)",
    ),
]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, llm_server: ScriptedLLM) -> Iterator[LocalHub]:
    pytest.importorskip("jupyterhub")
    need_lab()
    h = LocalHub(
        tmp_path_factory.mktemp("hub-panel"),
        [USER],
        environment={  # how an administrator gives every user the LLM endpoint
            "DATAASK_LLM_BASE_URL": llm_server.url,
            "DATAASK_LLM_API_KEY": "hub-wide-key-not-secret",
            "DATAASK_LLM_MODEL": "scripted",
            "DATAASK_SANDBOX": os.environ.get("DATAASK_TEST_SANDBOX", "local"),
        },
        args=LAB_ARGS,
    )
    h.start()
    try:
        home = h.home(USER)
        write_settings(home / ".jupyter" / "lab" / "user-settings")  # the user's own settings
        cells = [nbformat.v4.new_markdown_cell("Questions through the Hub.")]
        write_notebook(home / "hub.ipynb", cells)
        h.start_servers([USER])
        yield h
    finally:
        h.stop()


def test_panel_through_the_hub_proxy(hub: LocalHub, llm: ScriptedLLM, tmp_path: Path) -> None:
    llm.on("orders came from europe", CODE)
    llm.on("orders per region", TABLE_CODE)
    orders = pd.read_excel(SALES, sheet_name=0, engine="openpyxl")
    europe = len(orders[orders["region"].eq("Europe")])
    lab = Lab(f"{hub.url}/user/{USER}", hub.home(USER), hub.workdir)  # no token: signed in
    requests: list[str] = []
    sockets: list[str] = []
    errors: list[str] = []
    shot = tmp_path / "hub-panel.png"
    viewport = {"width": 1600, "height": 1000}
    with chromium_page(tmp_path, errors, viewport=viewport, accept_downloads=True) as page:
        page.context.on("request", lambda r: requests.append(r.url))
        page.on("websocket", lambda ws: sockets.append(ws.url))
        hub_login(page, hub.url, USER)
        signed_in = len(requests)
        open_notebook(page, lab, "hub.ipynb")
        panel = open_panel(page)
        widen_panel(page)
        panel.get_by_text("dataask is not loaded").wait_for(timeout=60_000)
        panel.get_by_role("button", name="Load dataask").click()
        datasets = panel.get_by_role("list", name="Datasets")
        datasets.get_by_text("No datasets yet").wait_for(timeout=60_000)
        panel.get_by_label("Choose data files to upload").set_input_files([str(SALES)])
        datasets.get_by_text(f"{len(orders):,} rows \u00d7 {orders.shape[1]} columns").wait_for(
            timeout=90_000
        )
        answer = ask(panel, QUESTION)
        assert answer.locator(".dataask-headline").inner_text() == f"{europe:,}"
        answer.locator("details.dataask-code summary").click()
        assert answer.locator("details.dataask-code pre").inner_text().strip() == CODE
        # a table answer, exported as CSV: the browser downloads what the kernel wrote
        table = ask(panel, TABLE_QUESTION)
        with page.expect_download(timeout=60_000) as download:
            table.get_by_role("button", name="CSV").click()
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        page.screenshot(path=str(shot))
    shutil.copy(shot, SCREENSHOT_COPY)

    (tmp_path / "requests.txt").write_text("\n".join([*requests, *sockets]) + "\n")
    origin = urlsplit(hub.url).netloc
    network = [urlsplit(u) for u in requests]  # data: and blob: URLs are not on the network
    login, after = (
        [u for u in part if u.scheme not in ("data", "blob")]
        for part in (network[:signed_in], network[signed_in:])
    )
    # the login form and the OAuth round trip are the Hub's; then only the user's server
    assert all(u.netloc == origin for u in login + after), requests
    assert all(u.path.startswith(("/hub/", PREFIX)) for u in login), requests[:signed_in]
    outside = [u.geturl() for u in after if not u.path.startswith(PREFIX)]
    assert not outside, outside
    assert sockets and all(urlsplit(s).path.startswith(PREFIX) for s in sockets), sockets
    assert any(urlsplit(s).path.startswith(f"{PREFIX}api/kernels/") for s in sockets), sockets
    # our labextension came through the proxy; nothing of dataask is a server route
    ours = [u.path for u in after if "dataask" in u.path]
    assert any(p.startswith(f"{PREFIX}lab/extensions/dataask-jupyter/static/") for p in ours)
    assert all(p.startswith(f"{PREFIX}lab/extensions/dataask-jupyter/") for p in ours), ours
    exported = pd.read_csv(saved)
    counts = orders["region"].value_counts()
    assert dict(exported.itertuples(index=False, name=None)) == counts.to_dict(), exported
    # the questions reached the endpoint the Hub gave the user's server
    for question in (QUESTION, TABLE_QUESTION):
        assert any(question in str(r.get("messages")) for r in llm.requests), question
    assert not [e for e in errors if "dataask" in e.lower()], errors
