"""The widgets from Python: table paging and sorting, answer views, code view, export buttons,
display bundles and their text/plain fallback."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("anywidget")
pytest.importorskip("ipywidgets")

import ipywidgets as w
import plotly.express as px
import traitlets

import dataask
from dataask_jupyter import render
from dataask_jupyter.results import PngImage
from dataask_jupyter.session import Answer, Attempt
from dataask_jupyter.widgets import AnswerView, CodeView, DataTable
from dataask_jupyter.widgets.answer import export_filename
from dataask_jupyter.widgets.table import STATIC
from tests.scripted_llm import ScriptedLLM

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def answer(value: Any, question: str = "a question", code: str = "result = 1", **kw: Any) -> Answer:
    a = Answer(question=question, dataset="sales", number=kw.pop("number", 1), **kw)
    a.value, a.code = value, code
    a.attempts = [Attempt(code=code)]
    return a


def million() -> pd.DataFrame:
    n = 1_000_000
    rng = np.random.default_rng(7)
    x = rng.random(n)
    x[::1000] = np.nan
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "x": x,
            "city": rng.choice(["Berlin", "Paris", "Oslo", "Lima"], n),
            "day": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), unit="D"),
        }
    )


# --- DataTable --------------------------------------------------------------------------------
def test_paging() -> None:
    frame = pd.DataFrame({"n": range(45), "s": [f"row {i}" for i in range(45)]})
    table = DataTable(frame, page_size=20)
    assert table.total_rows == 45 and table.pages == 3
    assert [c["label"] for c in table.columns] == ["n", "s"]
    assert table.columns[0]["numeric"] and not table.columns[1]["numeric"]
    assert table.page_rows[0] == ["0", "row 0"] and len(table.page_rows) == 20
    table.page = 2
    assert len(table.page_rows) == 5 and table.page_rows[-1] == ["44", "row 44"]
    table.page = 99
    assert table.page == 2  # clamped
    table.page = -3
    assert table.page == 0
    table.page = 1
    table.page_size = 50  # a new page size starts at the top
    assert table.page == 0 and len(table.page_rows) == 45 and table.pages == 1
    pd.testing.assert_frame_equal(table.visible_frame(), frame)


def test_frontend_requests_go_through_set_state() -> None:
    """What the browser sends (``set_state``) pages and sorts the table."""
    table = DataTable(pd.DataFrame({"v": [3, 1, 2]}), page_size=2)
    table.set_state({"sort_by": "v", "ascending": False, "page": 0})
    assert table.page_rows == [["3"], ["2"]]
    table.set_state({"page": 1})
    assert table.page_rows == [["1"]]


def test_sorting_whole_frame_nulls_last() -> None:
    frame = pd.DataFrame(
        {
            "x": [2.5, np.nan, -1.0, 10.0, np.nan, 0.0],
            "s": ["b", None, "a", "C", "a", "b"],
            "mixed": pd.Series([1, "a", 2.5, None, "b", 3], dtype=object),
        }
    )
    table = DataTable(frame, page_size=3)
    table.sort("x")
    assert [r[0] for r in table.page_rows] == ["-1", "0", "2.5"]
    table.page = 1
    assert [r[0] for r in table.page_rows] == ["10", None, None]
    table.sort("x", ascending=False)
    assert table.page == 0
    assert [r[0] for r in table.page_rows] == ["10", "2.5", "0"]
    table.page = 1
    assert [r[0] for r in table.page_rows] == ["-1", None, None]  # nulls last both ways
    table.sort("s")
    assert [r[1] for r in table.page_rows] == ["C", "a", "a"]  # stable
    assert table.positions().tolist() == [3, 2, 4]
    table.sort("mixed")  # mixed types: compared as text, no error
    assert len(table.page_rows) == 3
    table.sort("")
    assert table.positions().tolist() == [0, 1, 2]
    with pytest.raises(traitlets.TraitError, match="no column 'nope'"):
        table.sort_by = "nope"


def test_index_levels_are_sortable_columns() -> None:
    s = pd.Series(
        [5.0, 7.0, 1.0],
        index=pd.Index(["north", "east", "south"], name="region"),
        name="revenue",
    )
    table = DataTable(s)
    assert [(c["label"], c["index"]) for c in table.columns] == [
        ("region", True),
        ("revenue", False),
    ]
    table.sort("region")
    assert table.page_rows == [["east", "7"], ["north", "5"], ["south", "1"]]
    dupes = pd.DataFrame([[1, 2]], columns=["a", "a"])
    assert [c["label"] for c in DataTable(dupes).columns] == ["a", "a_2"]
    unnamed = pd.DataFrame({"v": [1, 2]}, index=[10, 20])
    assert DataTable(unnamed).page_rows == [["10", "1"], ["20", "2"]]


def test_cell_formatting() -> None:
    frame = pd.DataFrame(
        {
            "day": pd.to_datetime(["2023-01-01", None]),
            "stamp": pd.to_datetime(["2023-01-01 10:30", "2023-01-02"], format="ISO8601"),
            "f": [1234567.891, 1e-9],
            "b": [True, False],
            "long": ["x" * 1000, "<b>not html</b>"],
        }
    )
    rows = DataTable(frame).page_rows
    assert rows[0][:4] == ["2023-01-01", "2023-01-01 10:30:00", "1234567.891", "True"]
    assert rows[1][:3] == [None, "2023-01-02 00:00:00", "1e-09"]
    assert len(rows[0][4]) == render.MAX_CELL_CHARS and rows[1][4] == "<b>not html</b>"


def test_million_rows_send_one_page_and_sort_once() -> None:
    # speed is measured in benchmarks/render.py; here: what is sent, and that an order is kept
    frame = million()
    table = DataTable(frame)
    state = table.get_state()
    data = {k: v for k, v in state.items() if k not in ("_esm", "_css")}
    sent = len(json.dumps(data))
    assert sent < 10_000, sent  # one page, not a million rows
    table.sort("x", ascending=False)
    order = table._pager._orders[("x", False)]
    table.page = 25_000
    table.sort("x", ascending=False)
    assert table._pager._orders[("x", False)] is order  # cached
    top = frame["x"].max()
    table.page = 0
    assert table.page_rows[0][1] == render.format_cell(top)
    table.page = table.pages - 1
    assert table.page_rows[-1][1] is None  # NaNs last
    page_update = len(json.dumps(table.get_state("page_rows")))
    assert page_update < 5_000


# --- AnswerView -------------------------------------------------------------------------------
def test_table_answer_view_and_export_buttons(tmp_path: Path) -> None:
    frame = pd.DataFrame({"product": ["=cmd", "Boot"], "units": [3, 4]})
    a = answer(frame, question="units per product?", code="result = df.head()", number=7)
    view = AnswerView(a, export_dir=tmp_path)
    assert isinstance(view.table, DataTable) and view.table.total_rows == 2
    assert view.view_toggle is not None  # labels + numbers: a chart is offered
    assert isinstance(view.code_view, CodeView)
    assert view.code_view.code == "result = df.head()" and not view.code_view.expanded
    assert set(view.export_buttons) == {"csv", "json", "xlsx", "png"}
    for fmt in ("csv", "json", "xlsx"):
        view.export_buttons[fmt].click()
        assert "wrote" in view.status.value, view.status.value
    name = "answer-7-units-per-product"
    assert export_filename(a, "csv") == f"{name}.csv"
    back = pd.read_csv(tmp_path / f"{name}.csv")
    assert back["product"].tolist() == ["'=cmd", "Boot"]  # formula guard on by default
    pd.testing.assert_frame_equal(pd.read_json(tmp_path / f"{name}.json"), frame)
    pd.testing.assert_frame_equal(
        pd.read_excel(tmp_path / f"{name}.xlsx", engine="openpyxl"), frame
    )
    raw = AnswerView(a, export_dir=tmp_path, formula_guard=False)
    out = raw.export("csv", path=tmp_path / "raw.csv")
    assert out is not None and pd.read_csv(out)["product"].tolist() == ["=cmd", "Boot"]


def test_export_button_error_shows_inline(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    view = AnswerView(answer(pd.DataFrame({"a": [1]})), export_dir=blocker / "sub")
    assert view.export("csv") is None
    assert "dataask-status-err" in view.status.value and "cannot create" in view.status.value


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Chromium for kaleido")
def test_png_button_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("kaleido")
    fig = px.line(x=[1, 2, 3], y=[2, 1, 3], title="t")
    view = AnswerView(answer(fig, question="plot"), export_dir=tmp_path)
    view.export_buttons["png"].click()
    png = tmp_path / "answer-1-plot.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", view.status.value


def test_series_answer_offers_a_chart() -> None:
    s = pd.Series([3.0, 5.0], index=pd.Index(["Europe", "Asia"], name="region"), name="revenue")
    view = AnswerView(answer(s, question="revenue by region"))
    assert view.view_toggle is not None and view.chart is None  # built on first use
    view.view_toggle.value = "Chart"
    chart = view.chart
    assert chart is not None and type(chart).__name__ == "FigureWidget"
    assert chart.data[0].type == "bar" and list(chart.data[0].x) == ["Europe", "Asia"]
    assert chart.layout.title.text == "revenue by region"
    view.view_toggle.value = "Table"
    assert view._chart_box is not None and view._chart_box.children == (view.table,)
    monthly = pd.Series(
        [1.0, 2.0, 4.0], index=pd.date_range("2023-01-01", periods=3, freq="MS"), name="rev"
    )
    line = AnswerView(answer(monthly)).show_chart()
    assert line.data[0].type == "scatter" and line.data[0].mode == "lines"
    grouped = pd.DataFrame({"region": ["a", "b"], "units": [1, 2], "revenue": [3.0, 4.0]})
    assert len(AnswerView(answer(grouped)).show_chart().data) == 2
    assert AnswerView(answer(pd.DataFrame({"a": ["x"], "b": ["y"]}))).view_toggle is None
    big = pd.Series(np.arange(render.MAX_CHART_ROWS + 1.0))
    assert AnswerView(answer(big)).view_toggle is None


def test_figure_answer_is_a_figure_widget() -> None:
    fig = px.line(x=[1, 2], y=[3, 4], title="Revenue per month")
    a = answer(fig, question="plot that", code="result = px.line(prev)")
    view = AnswerView(a)
    assert type(view.figure).__name__ == "FigureWidget"
    assert list(view.figure.data[0].y) == [3, 4]
    bundle = view._repr_mimebundle_()
    assert WIDGET_MIME in bundle and render.PLOTLY_MIME in bundle
    spec = bundle[render.PLOTLY_MIME]
    assert spec["data"][0]["type"] == "scatter"
    assert spec["layout"]["title"]["text"] == "Revenue per month"
    assert "plotly figure (scatter): Revenue per month" in bundle["text/plain"]


def test_scalar_and_list_headlines() -> None:
    view = AnswerView(answer(375748.9, question="and only for Europe"))
    body = view.children[1]
    assert isinstance(body, w.HTML)
    assert "375,748.90" in body.value and "a number" in body.value and "from sales" in body.value
    items = AnswerView(answer(["Boot", "<Shoe>"] + [f"p{i}" for i in range(20)])).children[1]
    assert "Boot, &lt;Shoe&gt;, p0" in items.value and "(+10 more)" in items.value
    assert "a list of 22 items" in items.value
    assert render.headline(True) == ("Yes", "a yes/no answer")
    assert render.headline(pd.Timestamp("2024-05-01"))[0] == "2024-05-01"
    assert render.headline(12)[0] == "12" and render.headline(0.000123)[0] == "0.000123"
    none_view = AnswerView(answer(None))
    assert "result = None" in none_view.children[1].value and not none_view.export_buttons


def test_dict_and_image_answers() -> None:
    view = AnswerView(answer({"a": 1, "b": 2}))
    assert view.table is not None and view.table.page_rows == [["a", "1"], ["b", "2"]]
    several = AnswerView(answer({"north": pd.DataFrame({"a": [1]}), "south": pd.Series([2.0])}))
    body = several.children[1]
    assert [t.caption for t in body.children] == ["north", "south"]
    png = PngImage(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    img = AnswerView(answer(png)).children[1]
    assert isinstance(img, w.Image) and img.value == png.data


def test_failure_shows_message_and_failed_code_not_a_traceback() -> None:
    a = Answer(question="broken <q>", dataset="sales", number=3)
    a.attempts = [
        Attempt(code="result = df['Units']", error="KeyError: 'Units'"),
        Attempt(code="result = df['nope']", error="KeyError: 'nope'"),
    ]
    a.code, a.error = "result = df['nope']", "KeyError: 'nope'"
    view = AnswerView(a)
    html_box = view.children[1]
    assert "Could not answer after 2 attempts" in html_box.value
    assert "KeyError: &#x27;nope&#x27;" in html_box.value and "Traceback" not in html_box.value
    assert "attempt 1: KeyError" in html_box.value
    assert view.code_view is not None and view.code_view.failed and view.code_view.expanded
    assert view.code_view.label == "code that failed" and view.code_view.code == a.code
    assert not view.export_buttons
    text = view._repr_mimebundle_()["text/plain"]
    assert "Error: KeyError: 'nope'" in text and "code that failed:" in text
    assert "broken &lt;q&gt;" in view.children[0].value


def test_code_view_insert_and_copy_paths() -> None:
    code = "result = df.groupby('region')['revenue'].sum()"
    view = CodeView(code)
    assert view.label == "code" and view.code == code
    js = (STATIC / "code.js").read_text()
    for needle in (
        "dataask:insert-cell",  # the labextension's hook
        "widget_manager",
        "sharedModel",
        "insertCell",
        "windowedListIndex",
        "navigator.clipboard.writeText",
    ):
        assert needle in js
    view._handle_custom_msg({"event": "insert", "how": "notebook"}, [])
    view._handle_custom_msg({"event": "copied"}, [])
    assert view.events == [{"event": "insert", "how": "notebook"}, {"event": "copied"}]


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to parse the ES modules")
def test_front_end_modules_parse(tmp_path: Path) -> None:
    for js in STATIC.glob("*.js"):
        copy = tmp_path / (js.stem + ".mjs")
        copy.write_text(js.read_text())
        done = subprocess.run(["node", "--check", str(copy)], capture_output=True, text=True)
        assert done.returncode == 0, (js.name, done.stderr)
        assert "export default" in js.read_text()
        assert ".innerHTML" not in js.read_text()  # data is only ever set as text


# --- bundles and display ----------------------------------------------------------------------
def test_bundle_fallbacks_are_escaped_and_deterministic() -> None:
    frame = pd.DataFrame({"<col>": ["<script>alert(1)</script>"]})
    a = answer(frame, question="<img src=x onerror=alert(1)>", code="result = '<b>'")
    one, two = render.fallback_bundle(a), render.fallback_bundle(a)
    assert one == two
    assert "<script>" not in one["text/html"] and "<img" not in one["text/html"]
    assert "&lt;script&gt;" in one["text/html"]
    assert one["text/plain"] == render.answer_text(a)
    view_bundle = AnswerView(a)._repr_mimebundle_()
    assert view_bundle["text/plain"] == one["text/plain"]
    assert view_bundle["text/html"] == one["text/html"]
    assert view_bundle[WIDGET_MIME]["model_id"]


def test_widgets_only_inside_a_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    a = answer(pd.DataFrame({"a": [1]}))
    assert render.widgets_enabled() is False  # pytest is no kernel
    assert WIDGET_MIME not in render.answer_mimebundle(a)
    assert WIDGET_MIME in render.answer_mimebundle(a, widgets=True)
    monkeypatch.setattr(render, "use_widgets", True)
    assert WIDGET_MIME in a._repr_mimebundle_()


@pytest.fixture
def session(settings_kwargs: dict[str, Any]) -> Iterator[dataask.Session]:
    s = dataask.Session(**settings_kwargs)
    yield s
    s.close()


def test_display_answer_with_widgets(
    session: dataask.Session,
    llm: ScriptedLLM,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    shown: list[Any] = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.extend(objs))
    session.load(DATA / "sales.xlsx", name="sales")
    llm.on("by region", "result = df.groupby('region')['revenue'].sum()")
    llm.on("plot", "result = px.bar(prev)")
    by_region = session.ask("revenue by region")
    monkeypatch.setattr(render, "use_widgets", True)
    render.display_answer(by_region)
    view = shown[-1]
    assert isinstance(view, AnswerView) and view.answer is by_region
    assert view.table is not None and view.table.total_rows == 4
    monkeypatch.chdir(tmp_path)
    view.export_buttons["xlsx"].click()
    written = tmp_path / "answer-1-revenue-by-region.xlsx"
    back = pd.read_excel(written, engine="openpyxl")
    assert back.set_index("region")["revenue"].to_dict() == by_region.value.to_dict()
    render.display_answer(by_region, SimpleNamespace(formula_guard=False))
    assert shown[-1].formula_guard is False  # the session's Ask.formula_guard reaches the buttons
    chart = session.ask("plot that")
    render.display_answer(chart)
    assert type(shown[-1].figure).__name__ == "FigureWidget"
    monkeypatch.setattr(render, "use_widgets", False)
    shown.clear()
    render.display_answer(chart)
    assert render.is_figure(shown[0])  # plotly's own renderer, then the text/HTML answer
    assert shown[1]["text/plain"].startswith("[2] plot that")
