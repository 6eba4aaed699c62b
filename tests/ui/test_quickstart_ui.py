"""The quickstart notebook in a real JupyterLab, driven by the system's headless Chromium.

JupyterLab runs on loopback with answers from the scripted LLM server (a separate process); the
test runs all cells, then checks the widgets in the DOM: the paged table (sorting and paging round
trips to the kernel), the chart tab, the plotly chart, and "Insert as new cell". A screenshot is
saved under the test's tmp dir and copied to /tmp/dataask-ui.png.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.ui.panel_lab import (
    UI,
    Lab,
    chromium_page,
    need_lab,
    open_notebook,
    running_lab,
    write_notebook,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SCREENSHOT_COPY = Path("/tmp/dataask-ui.png")

TALL = {"width": 1400, "height": 2400}

pytestmark = [*UI, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    need_lab()
    folder = tmp_path_factory.mktemp("lab")
    root = folder / "root"
    (root / "data").mkdir(parents=True)
    shutil.copy(EXAMPLES / "data" / "sales.xlsx", root / "data")
    nb = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    for cell in nb.cells:  # start from a clean notebook: every output below is from this run
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, root / "quickstart.ipynb")
    cells = [nbformat.v4.new_code_cell("%load_ext dataask\n%ask upload")]
    write_notebook(root / "upload.ipynb", cells)
    rules = json.loads((EXAMPLES / "scripted_rules.json").read_text())
    with running_lab(folder, rules) as lab:
        yield lab


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def run_all(page: Any, lab: Lab, notebook: str) -> None:
    """Open ``notebook`` (its own workspace), then Run > Run All Cells."""
    open_notebook(page, lab, notebook)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def test_quickstart_in_jupyterlab(lab: Lab, tmp_path: Path) -> None:
    shot = tmp_path / "quickstart.png"
    errors: list[str] = []
    with chromium_page(tmp_path, errors, viewport=TALL) as page:
        run_all(page, lab, "quickstart.ipynb")
        last = page.locator(".jp-Cell").last
        last.locator(".jp-OutputArea-output", has_text="uptime_s").wait_for(timeout=240_000)
        tables = page.locator(".dataask-table")
        tables.first.wait_for(timeout=60_000)
        chart = page.locator(".dataask-answer-view").nth(4).locator(".js-plotly-plot")
        chart.wait_for(timeout=60_000)
        assert tables.count() >= 3  # top 3, by region, per month (+ Europe is a headline)
        assert page.locator(".dataask-answer-view").count() == 5
        assert "375,748.90" in page.locator(".dataask-headline").first.inner_text()

        # the table of the first answer: 3 products, sortable
        views = page.locator(".dataask-answer-view")
        first = views.nth(0).locator(".dataask-table")
        rows = first.locator("tbody tr")
        assert rows.count() == 3
        assert "3 rows \u00d7 2 columns" in first.locator(".dataask-table-caption").inner_text()
        first.locator("th", has_text="revenue").click()
        first.locator("th.dataask-sorted", has_text="▲").wait_for(timeout=15_000)
        page.wait_for_function(
            "el => el.querySelector('tbody tr td').textContent === 'Rain Jacket'",
            arg=first.element_handle(),
            timeout=15_000,
        )

        # the monthly table: 12 rows; 10 per page, then the next page, via the kernel
        monthly = views.nth(3).locator(".dataask-table")
        monthly.locator("select.dataask-page-size").select_option("10")
        monthly.locator(".dataask-table-info", has_text="Rows 1\u201310 of 12").wait_for(
            timeout=15_000
        )
        monthly.locator("button[title='next page']").click()
        monthly.locator(".dataask-table-info", has_text="Rows 11\u201312 of 12").wait_for(
            timeout=15_000
        )
        page.wait_for_function(
            "el => el.querySelectorAll('tbody tr').length === 2",
            arg=monthly.element_handle(),
            timeout=15_000,
        )
        assert monthly.locator("tbody tr td").first.inner_text() == "2023-11-01"

        # a Series answer offers a chart tab
        region_view = views.nth(1)
        region_view.locator("button", has_text="Chart").click()
        region_view.locator(".js-plotly-plot").wait_for(timeout=60_000)
        assert region_view.locator(".barlayer .point").count() == 4

        # the chart answer
        chart.scroll_into_view_if_needed()
        assert chart.locator(".main-svg").count() >= 1
        assert chart.locator(".scatterlayer .trace").count() == 1  # the monthly line
        assert "Revenue per month" in (chart.locator(".gtitle").text_content() or "")
        views.nth(3).scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        page.screenshot(path=str(shot))
        viewport = page.viewport_size or {"width": 0, "height": 0}
        for el in (monthly, chart):
            box = el.bounding_box()
            assert (
                box is not None and box["y"] < viewport["height"] and box["y"] + box["height"] > 0
            ), "table and chart should both be in the screenshot"
        assert chart.bounding_box()["height"] > 200

        # "Insert as new cell": a code cell with the answer's code appears below
        cells = page.locator(".jp-Notebook .jp-Cell")
        before = cells.count()
        answer_cell = page.locator(".jp-Cell", has=page.locator(".dataask-answer-view")).first
        answer_cell.locator(".dataask-insert").click()
        page.wait_for_function(
            f"() => document.querySelectorAll('.jp-Notebook .jp-Cell').length === {before + 1}",
            timeout=15_000,
        )
        index = int(answer_cell.get_attribute("data-windowed-list-index") or "-1")
        inserted = cells.nth(index + 1)
        assert "nlargest(3)" in inserted.locator(".cm-content").inner_text()
        assert "jp-CodeCell" in (inserted.get_attribute("class") or "")

    width, height = _png_size(shot)
    assert (width, height) == (TALL["width"], TALL["height"])
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
    shutil.copy(shot, SCREENSHOT_COPY)
    widget_errors = [e for e in errors if "dataask" in e.lower() or "anywidget" in e.lower()]
    assert not widget_errors, widget_errors


def test_upload_in_jupyterlab(lab: Lab, tmp_path: Path) -> None:
    """Files picked in the browser reach the kernel in chunks and become datasets; a bad file
    shows its error in the box and the good ones stay."""
    bad = tmp_path / "broken.csv"
    bad.write_bytes(b"%PDF-1.7 not a table at all")
    visits = tmp_path / "visits.csv"
    visits.write_text("city,visits\n" + "Berlin,10\nParis,12\n" * 40_000)  # 0.7 MB: chunks
    errors: list[str] = []
    shot = tmp_path / "upload.png"
    with chromium_page(tmp_path, errors, viewport=TALL) as page:
        run_all(page, lab, "upload.ipynb")
        box = page.locator(".dataask-upload")
        box.wait_for(timeout=90_000)
        assert "up to 256.0 MB each" in box.inner_text()
        box.locator("input[type=file]").set_input_files(
            [str(EXAMPLES / "data" / "sales.xlsx"), str(bad), str(visits)]
        )
        page.locator(".dataask-card", has_text="visits").wait_for(timeout=90_000)
        cards = page.locator(".dataask-card")
        assert cards.count() == 2
        sales = cards.filter(has_text="4,000 rows x 11 columns")
        assert sales.count() == 1 and "<b>" not in sales.inner_text()
        assert "80,000 rows x 2 columns" in cards.nth(1).inner_text()  # all chunks arrived
        assert page.get_by_text("broken.csv looks like a PDF document").count() == 1
        assert sales.locator(".dataask-table tbody tr").count() == 5  # the preview page
        assert "order_date" in sales.locator("table.dataask-schema").inner_text()
        # the sheet picker reloads the dataset from another sheet
        sales.get_by_label("Sheet:").select_option("Products")
        page.locator(".dataask-card", has_text="10 rows x 4 columns").wait_for(timeout=60_000)
        page.screenshot(path=str(shot))
    assert _png_size(shot) == (TALL["width"], TALL["height"])
    shutil.copy(shot, SCREENSHOT_COPY.with_name("dataask-ui-upload.png"))
    widget_errors = [e for e in errors if "dataask" in e.lower() or "anywidget" in e.lower()]
    assert not widget_errors, widget_errors
