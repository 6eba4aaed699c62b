"""The dataask side panel in a real JupyterLab, driven by the system's headless Chromium.

One notebook, one kernel, the scripted LLM: open the panel from the command palette, load
dataask with one click, upload a workbook and a broken file, ask (Enter), watch the progress,
page and sort a table, see a chart, insert the code below the active cell, export CSV and read
the download back, ask in a cell and see it in the panel, reload the page and see the
conversation, restart the kernel and see the panel recover. Screenshots go to the test's tmp dir
and are copied to /tmp/dataask-panel-*.png.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest

from tests.ui.panel_lab import (
    UI,
    Lab,
    ask,
    chromium_page,
    need_lab,
    open_notebook,
    open_panel,
    running_lab,
    widen_panel,
    write_notebook,
)

ROOT = Path(__file__).resolve().parents[2]
SALES = ROOT / "examples" / "data" / "sales.xlsx"
SHOTS = Path("/tmp")

RULES = [
    {"pattern": "list all orders", "replies": ["result = df"]},
    {
        "pattern": "revenue by region",
        "replies": ["result = df.groupby('region')['revenue'].sum().sort_values(ascending=False)"],
    },
    {
        "pattern": "line chart of monthly revenue",
        "replies": [
            "monthly = df.set_index('order_date')['revenue'].resample('MS').sum()\n"
            "result = px.line(monthly, title='Revenue per month')"
        ],
    },
    {"pattern": "how many orders", "replies": ["result = len(df)"]},
    {"pattern": "total profit", "replies": ["result = df['profit'].sum()"]},
]

pytestmark = [*UI, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    need_lab()
    folder = tmp_path_factory.mktemp("panel-lab")
    (folder / "root").mkdir()
    cells = [
        nbformat.v4.new_markdown_cell("The panel asks; this notebook shows the same session."),
        nbformat.v4.new_code_cell("%%ask\nHow many orders are there?"),
    ]
    write_notebook(folder / "root" / "panel.ipynb", cells)
    with running_lab(folder, RULES) as lab:
        yield lab


def test_panel_in_jupyterlab(lab: Lab, tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"%PDF-1.7 not a table at all")
    errors: list[str] = []
    shots: list[Path] = []

    def shot(page: Any, name: str) -> None:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path))
        shots.append(path)

    viewport = {"width": 1600, "height": 1000}
    with chromium_page(tmp_path, errors, viewport=viewport, accept_downloads=True) as page:
        open_notebook(page, lab, "panel.ipynb")
        assert page.locator(".jp-SideBar.jp-mod-right [data-id='dataask-panel']").count() == 1
        panel = open_panel(page)
        widen_panel(page)

        # dataask is not loaded in this kernel yet: one click loads it
        panel.get_by_text("dataask is not loaded").wait_for(timeout=60_000)
        panel.get_by_role("button", name="Load dataask").click()
        datasets = panel.get_by_role("list", name="Datasets")
        datasets.get_by_text("No datasets yet").wait_for(timeout=60_000)

        # upload a workbook and a broken file (the picker)
        panel.get_by_label("Choose data files to upload").set_input_files([str(SALES), str(broken)])
        datasets.get_by_text("4,000 rows \u00d7 11 columns").wait_for(timeout=60_000)
        panel.get_by_text("broken.csv looks like a PDF document").wait_for(timeout=60_000)
        assert datasets.locator("li.dataask-dataset").count() == 1
        assert "sales" in datasets.locator("li[aria-current='true']").inner_text()

        # drag and drop a CSV onto the drop zone: a second dataset, now the active one
        page.evaluate(
            """() => {
              const dt = new DataTransfer();
              dt.items.add(new File(['city,visits\\nBerlin,10\\nParis,12\\n'], 'visits.csv'));
              const zone = document.querySelector('#dataask-panel .dataask-drop');
              zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true}));
            }"""
        )
        datasets.get_by_text("2 rows \u00d7 2 columns").wait_for(timeout=60_000)
        assert "visits" in datasets.locator("li[aria-current='true']").inner_text()
        datasets.get_by_role("button", name="Ask about sales").click()
        datasets.locator("li[aria-current='true']", has_text="sales").wait_for()

        # ask: the 4,000-row table, paged and sorted through the comm
        box = panel.get_by_label("Ask a question about your data")
        box.fill("list all orders")
        box.press("Enter")
        panel.locator(".dataask-progress:not([hidden])").wait_for(timeout=30_000)
        shot(page, "dataask-panel-progress")
        orders = panel.locator(".dataask-answer").first
        orders.wait_for(timeout=120_000)
        table = orders.locator(".dataask-table-view")
        table.locator(".dataask-table-info", has_text="Rows 1\u201310 of 4,000").wait_for()
        table.get_by_role("button", name="Next page").click()
        table.locator(".dataask-table-info", has_text="Rows 11\u201320 of 4,000").wait_for()
        table.get_by_label("Rows per page").select_option("50")
        table.locator(".dataask-table-info", has_text="Rows 1\u201350 of 4,000").wait_for()
        assert table.locator("tbody tr").count() == 50
        table.get_by_role("button", name="revenue").click()
        table.locator("th.dataask-sorted", has_text="revenue ▲").wait_for()
        revenue = table.locator("th").all_inner_texts().index("revenue ▲")
        cells = table.locator(f"tbody tr td:nth-child({revenue + 1})").all_inner_texts()
        values = [float(v.replace(",", "")) for v in cells]
        assert values == sorted(values)

        # a Series answer: table + chart toggle; then a plotly figure answer
        region = ask(panel, "What is the revenue by region?")
        region.get_by_role("button", name="Chart").click()
        region.locator(".js-plotly-plot").wait_for(timeout=60_000)
        chart = ask(panel, "Draw a line chart of monthly revenue")
        chart.locator(".js-plotly-plot").wait_for(timeout=60_000)
        assert "Revenue per month" in (chart.locator(".gtitle").text_content() or "")
        shot(page, "dataask-panel-chart")

        # Up recalls the last question; a failure is one line plus the failing code
        box.press("ArrowUp")
        assert box.input_value() == "Draw a line chart of monthly revenue"
        box.fill("")
        failed = ask(panel, "What is the total profit?")
        error = failed.locator(".dataask-error")
        assert "Could not answer" in error.inner_text() and "profit" in error.inner_text()
        assert len(error.inner_text().splitlines()) == 1
        assert failed.locator("details.dataask-code[open]").count() == 1
        assert "df['profit']" in failed.locator("details.dataask-code pre").inner_text()

        # insert the code below the active cell
        cells_before = page.locator(".jp-Notebook .jp-Cell").count()
        page.locator(".jp-Notebook .jp-Cell").first.click()
        region.get_by_role("button", name="Insert code below").click()
        page.wait_for_function(
            f"() => document.querySelectorAll('.jp-Notebook .jp-Cell').length === "
            f"{cells_before + 1}",
            timeout=15_000,
        )
        inserted = page.locator(".jp-Notebook .jp-Cell").nth(1)
        assert "groupby('region')" in inserted.locator(".cm-content").inner_text()

        # export CSV: the browser downloads the file Session.export wrote
        with page.expect_download(timeout=60_000) as download:
            region.get_by_role("button", name="CSV").click()
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        frame = pd.read_csv(saved)
        assert list(frame.columns) == ["region", "revenue"] and len(frame) == 4

        # a question asked in a cell shows in the panel
        ask_cell = page.locator(".jp-Notebook .jp-Cell").nth(2)
        assert "How many orders" in ask_cell.inner_text()
        ask_cell.click()
        page.keyboard.press("Shift+Enter")
        cell_answer = panel.locator(".dataask-answer", has_text="How many orders are there?")
        cell_answer.wait_for(timeout=120_000)
        assert cell_answer.locator(".dataask-headline").inner_text() == "4,000"
        shot(page, "dataask-panel")
        answers = panel.locator(".dataask-answer").count()
        assert answers == 5

        # the notebook widget's "Insert as new cell" goes through the extension: the new
        # cell sits right below the answer's cell and becomes the active one
        cells_before = page.locator(".jp-Notebook .jp-Cell").count()
        ask_cell.locator(".dataask-insert").click()
        page.wait_for_function(
            f"() => document.querySelectorAll('.jp-Notebook .jp-Cell').length === "
            f"{cells_before + 1}",
            timeout=15_000,
        )
        below = page.locator(".jp-Notebook .jp-Cell").nth(3)
        assert below.locator(".cm-content").inner_text() == "result = len(df)"
        assert "jp-mod-active" in (below.get_attribute("class") or "")

        # reload: the panel shows the kernel's conversation again
        page.reload()
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
        panel = page.locator("#dataask-panel")
        if not panel.is_visible():  # the layout restorer may have reopened it already
            panel = open_panel(page, palette=False)
        panel.locator(".dataask-answer").nth(answers - 1).wait_for(timeout=60_000)
        assert panel.locator(".dataask-answer").count() == answers
        panel.get_by_role("list", name="Datasets").get_by_text("sales", exact=True).wait_for()

        # restart the kernel: the panel waits, loads dataask in the new kernel (it was
        # loaded before) and shows the conversation the session kept for this notebook
        page.evaluate(
            """() => {
              const status = document.querySelector('#dataask-panel .dataask-status');
              window.__dataaskSeen = [];
              new MutationObserver(() => window.__dataaskSeen.push(status.textContent))
                .observe(status, {subtree: true, childList: true, characterData: true});
            }"""
        )
        page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel…").first.click()
        page.locator(".jp-Dialog-button", has_text="Restart").click()
        datasets = panel.get_by_role("list", name="Datasets")
        datasets.get_by_text("read again when a question needs it").first.wait_for(timeout=90_000)
        seen = page.evaluate("() => window.__dataaskSeen")
        assert any("Waiting for the kernel" in text for text in seen), seen
        panel.locator(".dataask-answer").nth(answers - 1).wait_for(timeout=30_000)
        assert panel.locator(".dataask-answer").count() == answers
        assert "sales" in datasets.locator("li[aria-current='true']").inner_text()
        again = ask(panel, "How many orders are there?")  # reads sales.xlsx again
        assert again.locator(".dataask-headline").inner_text() == "4,000"
        shot(page, "dataask-panel-restarted")

        # the dark theme: the panel follows JupyterLab's CSS variables
        page.locator(".lm-MenuBar-itemLabel", has_text="Settings").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
        page.locator(".lm-Menu-itemLabel", has_text="JupyterLab Dark").first.click()
        page.wait_for_selector(
            "body[data-jp-theme-light='false']", state="attached", timeout=30_000
        )
        page.wait_for_timeout(500)
        background = panel.evaluate("el => getComputedStyle(el).backgroundColor")
        channels = [int(c) for c in background[background.index("(") + 1 : -1].split(",")[:3]]
        assert max(channels) < 100, background  # a dark panel, not a white box
        shot(page, "dataask-panel-dark")
    for path in shots:
        shutil.copy(path, SHOTS / path.name)
    panel_errors = [e for e in errors if "dataask" in e.lower()]
    assert not panel_errors, panel_errors
