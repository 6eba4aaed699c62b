"""Exports: every file is opened again and checked (pandas reads CSV/JSON/XLSX back equal; PNGs
have the right header and size); formula injection; sheet names; Excel limits; streaming."""

from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from openpyxl import load_workbook

from dataask_jupyter import export as ex
from dataask_jupyter.errors import ExportError
from dataask_jupyter.export import export_value, neutralise_formulas
from dataask_jupyter.results import PngImage
from dataask_jupyter.session import Answer
from tests.scripted_llm import ScriptedLLM

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
INJECTIONS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tTAB", "\rCR", '=HYPERLINK("http://x")']
HARMLESS = ["plain", "a=b", " =leading space", "", "Müller", "multi\nline"]


def read_xlsx(path: Path, **kw: Any) -> Any:
    kw.setdefault("engine", "openpyxl")
    return pd.read_excel(path, **kw)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def browser_ok() -> bool:
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False
    return shutil.which("chromium") is not None or Path("/usr/bin/chromium").exists()


needs_browser = pytest.mark.skipif(not browser_ok(), reason="needs kaleido and Chromium")


def sample_frame(n: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "id": np.arange(n, dtype="int64"),
            "amount": rng.normal(100, 30, n).round(2),
            "share": np.where(np.arange(n) % 7 == 0, np.nan, rng.random(n)),
            "name": [f"Kunde {i} Müller" if i % 5 else None for i in range(n)],
            "flag": np.arange(n) % 2 == 0,
            "day": pd.Timestamp("2023-01-01") + pd.to_timedelta(np.arange(n), unit="D"),
            "stamp": pd.Timestamp("2023-03-04 05:06:07") + pd.to_timedelta(np.arange(n), unit="h"),
        }
    )
    frame.loc[3, "day"] = pd.NaT
    return frame


# --- round trips ------------------------------------------------------------------------------
def test_csv_json_xlsx_read_back_equal(tmp_path: Path) -> None:
    frame = sample_frame()
    for fmt in ("csv", "json", "xlsx"):
        export_value(frame, tmp_path / f"t.{fmt}")
    back_csv = pd.read_csv(tmp_path / "t.csv", parse_dates=["day", "stamp"])
    pd.testing.assert_frame_equal(back_csv, frame, check_dtype=False)
    back_json = pd.read_json(tmp_path / "t.json")
    back_json[["day", "stamp"]] = back_json[["day", "stamp"]].apply(pd.to_datetime)
    pd.testing.assert_frame_equal(back_json, frame, check_dtype=False)
    back_xlsx = read_xlsx(tmp_path / "t.xlsx", engine="openpyxl")
    pd.testing.assert_frame_equal(back_xlsx, frame, check_dtype=False)
    back_cal = read_xlsx(tmp_path / "t.xlsx", engine="calamine")
    pd.testing.assert_frame_equal(back_cal, frame, check_dtype=False)


def test_json_records_iso_dates(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "day": pd.to_datetime(["2023-01-01", "2023-12-31"]),
            "precise": pd.to_datetime(["2023-01-01 10:00:00.5", "2023-01-02"], format="ISO8601"),
            "utc": pd.to_datetime(["2023-01-01 10:00", "2023-06-01 12:30"]).tz_localize("UTC"),
            "x": [1.5, float("nan")],
            "inf": [float("inf"), 1.0],
        }
    )
    path = export_value(frame, tmp_path / "d.json")
    records = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(records, list) and len(records) == 2
    assert records[0]["day"] == "2023-01-01T00:00:00.000000"
    assert records[0]["precise"] == "2023-01-01T10:00:00.500000"
    assert records[0]["utc"].startswith("2023-01-01T10:00:00") and records[0]["utc"].endswith("Z")
    assert records[1]["x"] is None and records[0]["inf"] is None
    plain = export_value(frame[["day"]], tmp_path / "plain.json")
    assert json.loads(plain.read_text())[1] == {"day": "2023-12-31T00:00:00"}
    back = pd.read_json(path)
    back[["day", "precise"]] = back[["day", "precise"]].apply(pd.to_datetime, format="ISO8601")
    pd.testing.assert_series_equal(back["day"], frame["day"], check_dtype=False)
    pd.testing.assert_series_equal(back["precise"], frame["precise"], check_dtype=False)


def test_series_and_index_become_columns(tmp_path: Path) -> None:
    s = pd.Series([3.5, 1.25], index=pd.Index(["north", "south"], name="region"), name="revenue")
    for fmt in ("csv", "json", "xlsx"):
        export_value(s, tmp_path / f"s.{fmt}")
    expected = s.reset_index()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "s.csv"), expected)
    pd.testing.assert_frame_equal(pd.read_json(tmp_path / "s.json"), expected)
    pd.testing.assert_frame_equal(read_xlsx(tmp_path / "s.xlsx"), expected)
    multi = pd.DataFrame(
        {"units": [1, 2, 3]},
        index=pd.MultiIndex.from_tuples([("a", 2023), ("a", 2024), ("b", 2023)], names=["k", "y"]),
    )
    export_value(multi, tmp_path / "m.xlsx")
    pd.testing.assert_frame_equal(read_xlsx(tmp_path / "m.xlsx"), multi.reset_index())
    filtered = pd.DataFrame({"v": [1, 2, 3]}).iloc[[2, 0]]  # leftover row numbers: dropped
    export_value(filtered, tmp_path / "f.csv")
    assert (tmp_path / "f.csv").read_text().splitlines() == ["v", "3", "1"]
    labels = pd.Series([1, 2], index=["x", "y"])  # unnamed labels: kept as "index"
    export_value(labels, tmp_path / "u.csv")
    assert (tmp_path / "u.csv").read_text().splitlines() == ["index,value", "x,1", "y,2"]


def test_scalars_lists_dicts(tmp_path: Path) -> None:
    export_value(375748.9, tmp_path / "v.json")
    assert json.loads((tmp_path / "v.json").read_text()) == 375748.9
    value = {"when": pd.Timestamp("2024-02-03"), "n": np.int64(4), "bad": float("nan")}
    export_value(value, tmp_path / "d.json")
    assert json.loads((tmp_path / "d.json").read_text()) == {
        "when": "2024-02-03T00:00:00",
        "n": 4,
        "bad": None,
    }
    export_value(["a", "b"], tmp_path / "l.csv")
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "l.csv"), pd.DataFrame({"value": ["a", "b"]})
    )
    export_value(42, tmp_path / "one.xlsx")
    assert read_xlsx(tmp_path / "one.xlsx").to_dict("records") == [{"value": 42}]


def test_several_tables_make_several_sheets(tmp_path: Path) -> None:
    a = pd.DataFrame({"x": [1, 2]})
    b = pd.Series([5.5], index=pd.Index(["k"], name="key"), name="v")
    tables = {"by region": a, "by product": b}
    export_value(tables, tmp_path / "multi.xlsx")
    sheets = read_xlsx(tmp_path / "multi.xlsx", sheet_name=None)
    assert list(sheets) == ["by region", "by product"]
    pd.testing.assert_frame_equal(sheets["by region"], a)
    pd.testing.assert_frame_equal(sheets["by product"], b.reset_index())
    export_value(tables, tmp_path / "multi.json")
    doc = json.loads((tmp_path / "multi.json").read_text())
    assert doc == {"by region": [{"x": 1}, {"x": 2}], "by product": [{"key": "k", "v": 5.5}]}
    export_value([a, a], tmp_path / "list.xlsx")
    assert list(read_xlsx(tmp_path / "list.xlsx", sheet_name=None)) == ["answer 1", "answer 2"]
    with pytest.raises(ExportError, match="holds 2 tables; CSV holds one"):
        export_value(tables, tmp_path / "multi.csv")


def test_sheet_names_excel_accepts(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1]})
    names = {
        "a" * 40: frame,
        "q1/q2: [draft]*?": frame,
        "History": frame,
        "'quoted'": frame,
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA": frame,  # same first 31 letters as the first
        "SALES": frame,
        "sales": frame,
        "": frame,
    }
    export_value(names, tmp_path / "names.xlsx")
    sheets = load_workbook(tmp_path / "names.xlsx", read_only=True).sheetnames
    assert len(sheets) == len(names)
    assert len({s.lower() for s in sheets}) == len(sheets)
    for s in sheets:
        assert 1 <= len(s) <= 31
        assert not set(s) & set("[]:*?/\\")
        assert not s.startswith("'") and not s.endswith("'")
        assert s.lower() != "history"
    assert sheets[0] == "a" * 31


def test_excel_limits_checked_before_writing(tmp_path: Path) -> None:
    tall = pd.DataFrame({"x": np.zeros(ex.EXCEL_MAX_ROWS, dtype="int8")})
    with pytest.raises(ExportError, match=r"1,048,576 rows .* export \.csv instead"):
        export_value(tall, tmp_path / "tall.xlsx")
    wide = pd.DataFrame(np.zeros((1, ex.EXCEL_MAX_COLUMNS + 1), dtype="int8"))
    with pytest.raises(ExportError, match="16,384 columns"):
        export_value(wide, tmp_path / "wide.xlsx")
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    fits = pd.DataFrame({"x": np.arange(ex.EXCEL_MAX_ROWS - 1, dtype="int32")})
    ex.check_excel_size("fits", fits)


def test_long_text_and_control_characters_in_xlsx(tmp_path: Path) -> None:
    frame = pd.DataFrame({"t": ["x" * 40_000, "bell\x07and\x00nul", "ok"]})
    export_value(frame, tmp_path / "t.xlsx")
    back = read_xlsx(tmp_path / "t.xlsx")
    assert len(back.loc[0, "t"]) == ex.EXCEL_MAX_CHARS
    assert back.loc[1, "t"] == "bellandnul"


def test_big_integers_and_infinities_in_xlsx(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": [2**60, 7], "f": [float("inf"), 1.0]})
    export_value(frame, tmp_path / "b.xlsx")
    ws = load_workbook(tmp_path / "b.xlsx")["answer"]
    assert ws["A2"].value == str(2**60) and ws["A3"].value == 7
    assert ws["B2"].value == "inf" and ws["B3"].value == 1


def test_timezones_and_early_dates_in_xlsx(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "tz": pd.to_datetime(["2023-05-01 12:00"]).tz_localize("Europe/Berlin"),
            "old": [pd.Timestamp("1850-01-01")],
        }
    )
    export_value(frame, tmp_path / "tz.xlsx")
    ws = load_workbook(tmp_path / "tz.xlsx")["answer"]
    assert str(ws["A2"].value) == "2023-05-01 12:00:00"  # wall-clock time, no zone
    assert ws["B2"].value == "1850-01-01T00:00:00"  # before Excel's calendar: kept as text


# --- formula injection ------------------------------------------------------------------------
def injection_frame() -> pd.DataFrame:
    texts = INJECTIONS + HARMLESS
    return pd.DataFrame(
        {
            "text": texts,
            "obj": pd.Series(texts, dtype=object),
            "cat": pd.Categorical(texts),
            "number": np.arange(len(texts)) - 5,  # real negative numbers stay numbers
        }
    )


def test_formula_guard_csv(tmp_path: Path) -> None:
    frame = injection_frame()
    frame.columns = ["=text", "obj", "cat", "number"]
    export_value(frame, tmp_path / "g.csv")
    back = pd.read_csv(tmp_path / "g.csv", keep_default_na=False)
    assert list(back.columns) == ["'=text", "obj", "cat", "number"]
    for col in ("'=text", "obj", "cat"):
        cells = back[col].tolist()
        assert cells[: len(INJECTIONS)] == ["'" + v for v in INJECTIONS]
        assert cells[len(INJECTIONS) :] == HARMLESS
    assert back["number"].tolist() == list(np.arange(len(frame)) - 5)
    raw = (tmp_path / "g.csv").read_bytes()
    assert b'"\'\rCR"' in raw  # a bare CR inside a cell is quoted, not a row break
    for line in back.to_csv(index=False).splitlines()[1:]:
        for cell in line.split(","):
            assert not cell.startswith(("=", "+", "-", "@")) or cell.lstrip("-").isdigit()


def test_formula_guard_off_csv(tmp_path: Path) -> None:
    frame = injection_frame()
    export_value(frame, tmp_path / "raw.csv", formula_guard=False)
    back = pd.read_csv(tmp_path / "raw.csv", keep_default_na=False, dtype={"text": str})
    assert back["text"].tolist()[0] == "=1+1" and back["text"].tolist()[3] == "@cmd"


def test_formula_guard_xlsx(tmp_path: Path) -> None:
    frame = injection_frame()
    export_value(frame, tmp_path / "g.xlsx")
    export_value(frame, tmp_path / "raw.xlsx", formula_guard=False)
    for name, guarded in (("g.xlsx", True), ("raw.xlsx", False)):
        ws = load_workbook(tmp_path / name)["answer"]
        for r, row in enumerate(ws.iter_rows(min_row=2, max_col=3)):
            risky = frame["text"].iloc[r].startswith(ex.FORMULA_PREFIXES)
            for cell in row:
                if cell.value is None:
                    continue
                assert cell.data_type == "s", (name, cell.coordinate, cell.value)  # never "f"
                assert bool(cell.quotePrefix) == (risky and guarded), (name, cell.value)
        back = read_xlsx(tmp_path / name, keep_default_na=False)
        # values are unchanged: the quote prefix is cell style, not text
        assert back["text"].tolist()[:4] == ["=1+1", "+SUM(A1)", "-2+3", "@cmd"]
        assert back["number"].tolist() == list(np.arange(len(frame)) - 5)


def test_formula_guard_openpyxl_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xlsxwriter", None)
    frame = injection_frame()
    frame["day"] = pd.Timestamp("2023-01-02")
    export_value(frame, tmp_path / "o.xlsx")
    ws = load_workbook(tmp_path / "o.xlsx")["answer"]
    assert ws["A2"].value == "=1+1" and ws["A2"].data_type == "s" and ws["A2"].quotePrefix
    assert not ws["A9"].quotePrefix
    back = read_xlsx(tmp_path / "o.xlsx", keep_default_na=False)
    assert back["day"].iloc[0] == pd.Timestamp("2023-01-02")
    # XML turns a bare CR into LF when openpyxl reads it back
    assert back["text"].tolist() == [v.replace("\r", "\n") for v in frame["text"]]


def test_neutralise_formulas_helper() -> None:
    frame = pd.DataFrame({"=a": ["=x", "y"]}, index=pd.Index(["@i", "j"]))
    out = neutralise_formulas(frame)
    assert list(out.columns) == ["'=a"] and out.iloc[:, 0].tolist() == ["'=x", "y"]
    assert list(out.index) == ["'@i", "j"]
    assert frame.iloc[0, 0] == "=x"  # the original is untouched


# --- streaming and atomic writes --------------------------------------------------------------
def test_chunked_writes_equal_single_pass(tmp_path: Path) -> None:
    frame = sample_frame(103)
    for fmt in ("csv", "json", "xlsx"):
        export_value(frame, tmp_path / f"small.{fmt}", chunk_rows=10)
        export_value(frame, tmp_path / f"big.{fmt}", chunk_rows=1_000)
    assert (tmp_path / "small.csv").read_bytes() == (tmp_path / "big.csv").read_bytes()
    assert json.loads((tmp_path / "small.json").read_text()) == json.loads(
        (tmp_path / "big.json").read_text()
    )
    pd.testing.assert_frame_equal(
        read_xlsx(tmp_path / "small.xlsx"), read_xlsx(tmp_path / "big.xlsx")
    )


def test_large_export_streams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CSV/JSON never hand pandas more than ``chunk_rows`` rows at once."""
    seen: list[int] = []
    real_csv, real_json = pd.DataFrame.to_csv, pd.DataFrame.to_json

    def spy_csv(self: pd.DataFrame, *a: Any, **k: Any) -> Any:
        seen.append(len(self))
        return real_csv(self, *a, **k)

    def spy_json(self: pd.DataFrame, *a: Any, **k: Any) -> Any:
        seen.append(len(self))
        return real_json(self, *a, **k)

    monkeypatch.setattr(pd.DataFrame, "to_csv", spy_csv)
    monkeypatch.setattr(pd.DataFrame, "to_json", spy_json)
    frame = pd.DataFrame({"x": np.arange(250_000), "s": ["=a", "b"] * 125_000})
    export_value(frame, tmp_path / "l.csv", chunk_rows=40_000)
    export_value(frame, tmp_path / "l.json", chunk_rows=40_000)
    assert max(seen) == 40_000 and len(seen) == 14
    assert (tmp_path / "l.csv").read_bytes().count(b"\r\n") == 250_001
    assert len(json.loads((tmp_path / "l.json").read_text())) == 250_000


def test_failed_export_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x.csv"
    target.write_text("old content")

    def boom(*a: Any, **k: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(ExportError, match="disk full"):
        export_value(pd.DataFrame({"a": [1]}), target)
    assert target.read_text() == "old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv"]


def test_bad_requests(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"use a \.csv, \.json, \.xlsx or \.png"):
        export_value(1, tmp_path / "x.txt")
    with pytest.raises(ExportError, match="no value"):
        export_value(None, tmp_path / "x.csv")
    with pytest.raises(ExportError, match="is an image"):
        export_value(PngImage(PNG_MAGIC + b"rest"), tmp_path / "x.csv")
    failed = Answer(question="q", dataset="d", number=4, error="KeyError: 'x'")
    with pytest.raises(ExportError, match="turn 4 has no value"):
        failed.export(tmp_path / "x.csv")


# --- PNG --------------------------------------------------------------------------------------
@needs_browser
def test_chart_png_has_header_and_size(tmp_path: Path) -> None:
    import plotly.express as px

    fig = px.bar(x=["a", "b"], y=[1, 3], title="t")
    path = export_value(fig, tmp_path / "c.png", width=640, height=360)
    assert png_size(path) == (640, 360)
    path2 = export_value(fig, tmp_path / "c2.png", width=300, height=200, scale=2)
    assert png_size(path2) == (600, 400)
    assert png_size(export_value(fig, tmp_path / "c3.png")) == (1000, 600)


@needs_browser
def test_table_png(tmp_path: Path) -> None:
    frame = sample_frame(100)
    path = export_value(frame, tmp_path / "t.png")
    width, height = png_size(path)
    _fig, w, h = ex.table_figure(frame)
    assert (width, height) == (w, h)
    assert h > 24 * ex.PNG_TABLE_ROWS  # 40 rows drawn, not 100
    scalar = export_value(42, tmp_path / "s.png")
    assert png_size(scalar)[1] < 200


def test_png_passthrough(tmp_path: Path) -> None:
    import zlib

    raw = b"\x00\xff\x00\x00"  # one red pixel
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    png = (
        PNG_MAGIC
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw[:4]))
        + chunk(b"IEND", b"")
    )
    path = export_value(PngImage(png), tmp_path / "p.png")
    assert path.read_bytes() == png and png_size(path) == (1, 1)


def test_png_without_kaleido_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import plotly.express as px

    monkeypatch.setitem(sys.modules, "kaleido", None)
    with pytest.raises(ExportError, match=r"needs the kaleido package.*pip install kaleido"):
        export_value(px.bar(x=[1], y=[1]), tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


def test_png_without_browser_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("kaleido")
    import plotly.express as px

    from dataask_jupyter.export import close_png_renderer

    close_png_renderer()  # the next PNG starts a browser: from a path where there is none
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    try:
        for value in (px.bar(x=[1], y=[1]), pd.DataFrame({"a": [1]})):
            with pytest.raises(ExportError, match=r"no Chrome/Chromium.*apt-get install chromium"):
                export_value(value, tmp_path / "c.png")
            assert not (tmp_path / "c.png").exists()
    finally:
        close_png_renderer()


def test_png_renderer_is_kept_and_closed(tmp_path: Path) -> None:
    if not browser_ok():
        pytest.skip("no kaleido/Chromium here")
    import plotly.express as px

    from dataask_jupyter.export import close_png_renderer
    from dataask_jupyter.export.png import _renderer

    close_png_renderer()
    assert not _renderer.running
    export_value(px.bar(x=[1, 2], y=[3, 4]), tmp_path / "a.png")
    assert _renderer.running
    first = _renderer._kaleido
    export_value(pd.DataFrame({"a": [1, 2]}), tmp_path / "b.png", width=300, height=120)
    assert _renderer._kaleido is first  # the same browser served both
    assert png_size(tmp_path / "b.png") == (300, 120)
    close_png_renderer()
    close_png_renderer()  # idempotent
    assert not _renderer.running
    export_value(px.bar(x=[1], y=[1]), tmp_path / "c.png")  # starts again after a close
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
    close_png_renderer()


# --- through the session, the answer and the magic --------------------------------------------
def test_magic_export_every_format(ip: InteractiveShell, llm: ScriptedLLM, tmp_path: Path) -> None:
    ip.run_line_magic("ask", f"load {DATA / 'sales.xlsx'} --name sales")
    llm.on("by product", "result = df.groupby('product', as_index=False)['revenue'].sum()")
    llm.on("tag", "result = pd.DataFrame({'note': ['=1+2', 'ok']})")
    ip.run_cell_magic("ask", "", "revenue by product")
    ip.run_cell_magic("ask", "", "tag rows")
    truth = read_xlsx(DATA / "sales.xlsx").groupby("product", as_index=False)["revenue"].sum()
    for fmt in ("csv", "json", "xlsx"):
        ip.run_line_magic("ask", f"export {tmp_path / ('t.' + fmt)} --turn 1")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), truth)
    pd.testing.assert_frame_equal(pd.read_json(tmp_path / "t.json"), truth)
    pd.testing.assert_frame_equal(read_xlsx(tmp_path / "t.xlsx"), truth)
    ip.run_line_magic("ask", f"export {tmp_path / 'g.csv'}")
    assert pd.read_csv(tmp_path / "g.csv")["note"].tolist() == ["'=1+2", "ok"]
    ip.run_line_magic("ask", f"export {tmp_path / 'raw.csv'} --no-formula-guard")
    assert pd.read_csv(tmp_path / "raw.csv")["note"].tolist() == ["=1+2", "ok"]
    if browser_ok():
        ip.run_line_magic("ask", f"export {tmp_path / 't.png'} --turn 1")
        width, height = png_size(tmp_path / "t.png")
        assert width >= 300 and height == ex.table_figure(truth)[2]
