"""The upload box from Python: the chunked browser protocol, checks, cards, sheet picker, and
bad files that never break the datasets already loaded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("anywidget")
pytest.importorskip("ipywidgets")

from IPython.core.interactiveshell import InteractiveShell

import dataask
from dataask_jupyter.upload import upload_widget
from dataask_jupyter.widgets import DataTable, UploadBox
from dataask_jupyter.widgets.upload import FilePicker

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"
CSV = b"city,visits,day\nBerlin,10,2024-01-01\nParis,,2024-01-02\nOslo,7,2024-01-03\n"


@pytest.fixture
def session(settings_kwargs: dict[str, Any]) -> Iterator[dataask.Session]:
    s = dataask.Session(**settings_kwargs)
    yield s
    s.close()


class Browser:
    """Plays the front end's side of the upload protocol against a ``FilePicker``."""

    def __init__(self, picker: FilePicker) -> None:
        self.picker = picker
        self.replies: list[dict[str, Any]] = []
        picker.send = lambda content, buffers=None: self.replies.append(content)  # type: ignore[method-assign]
        self.n = 0

    def msg(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> dict[str, Any]:
        self.picker._handle_custom_msg(content, [memoryview(b) for b in buffers or []])
        return self.replies[-1] if self.replies else {}

    def upload(self, name: str, data: bytes, chunk: int = 16, size: int | None = None) -> str:
        """Send a file like upload.js does; returns the last reply type."""
        self.n += 1
        fid = f"f{self.n}"
        reply = self.msg(
            {"type": "begin", "id": fid, "name": name, "size": len(data) if size is None else size}
        )
        if reply["type"] != "ready":
            return str(reply["type"])
        for offset in range(0, len(data), chunk):
            reply = self.msg(
                {"type": "chunk", "id": fid, "offset": offset}, [data[offset : offset + chunk]]
            )
            if reply["type"] != "ack":
                return str(reply["type"])
            assert reply["received"] == min(len(data), offset + chunk)
        reply = self.msg({"type": "end", "id": fid})
        return "loaded" if reply.get("ok") else str(reply.get("message"))


def test_upload_csv_in_chunks_makes_a_dataset_and_card(session: dataask.Session) -> None:
    box = upload_widget(session)
    assert isinstance(box, UploadBox)
    browser = Browser(box.picker)
    assert browser.upload("visits.csv", CSV, chunk=10) == "loaded"
    ds = session.datasets["visits"]
    assert ds.shape == (3, 3) and session.active == "visits"
    # kept by Session.upload (the store's upload folder, or the session's private one)
    assert Path(ds.source).name == "visits.csv" and Path(ds.source).parent != box.folder
    card = box.cards["visits"]
    title = card.children[0].value
    assert "<b>visits</b>" in title and "3 rows x 3 columns" in title and "visits.csv" in title
    schema = next(c.value for c in card.children if "<th>dtype</th>" in getattr(c, "value", ""))
    for needle in ("<th>dtype</th>", "<th>nulls</th>", "<th>distinct</th>", "sample values"):
        assert needle in schema
    assert schema.count("<tr>") == 4  # header + one row per column
    assert "<b>city</b></td><td>str</td>" in schema and "&quot;Berlin&quot;" in schema
    assert "2024-01-01 … 2024-01-03" in schema
    assert isinstance(card.preview, DataTable) and card.preview.page_size == 5
    assert card.preview.page_rows[0] == ["Berlin", "10", "2024-01-01"]
    assert [r["type"] for r in browser.replies].count("ack") == 8
    assert box.results == [("visits.csv", None)] and not box.errors
    assert "visits" in repr(box) and "Upload box" in box._repr_mimebundle_()["text/plain"]


def test_several_files_and_a_bad_one(session: dataask.Session, tmp_path: Path) -> None:
    session.load(DATA / "customers.csv")
    box = UploadBox(session)
    browser = Browser(box.picker)
    results = {
        "sales.xlsx": browser.upload(
            "sales.xlsx", (DATA / "sales.xlsx").read_bytes(), chunk=100_000
        ),
        "customers.csv": browser.upload("customers.csv", b"%PDF-1.4 not a table"),
        "empty.csv": browser.upload("empty.csv", b""),
        "visits.csv": browser.upload("visits.csv", CSV),
    }
    assert results["sales.xlsx"] == "loaded" and results["visits.csv"] == "loaded"
    assert "looks like a PDF document" in results["customers.csv"]
    assert "empty" in results["empty.csv"]
    # the bad "customers.csv" did not replace the customers dataset loaded before
    assert session.datasets["customers"].shape == (8, 5)
    assert set(session.datasets) == {"customers", "sales", "visits"}
    assert list(box.cards) == ["sales", "visits"]
    log = " ".join(c.value for c in box.messages.children)
    assert "✗ customers.csv looks like a PDF document" in log
    assert "✓</span> sales.xlsx → dataset sales (4,000 rows x 11 columns)" in log
    assert len(box.errors) == 2


def test_refused_before_any_byte(session: dataask.Session) -> None:
    box = UploadBox(session, max_bytes=100)
    browser = Browser(box.picker)
    assert browser.upload("big.csv", b"x" * 101) == "refused"
    assert "over the 100 bytes upload cap" in browser.replies[-1]["message"]
    assert browser.upload("notes.txt", b"a,b\n1,2\n") == "refused"
    assert (
        "only .csv, .tsv, .xlsx, .xlsm, .xlsb, .xls, .ods, .parquet files"
        in browser.replies[-1]["message"]
    )
    assert browser.upload("report.pdf", b"%PDF-1.4") == "refused"
    assert list(box.folder.iterdir()) == []
    assert session.datasets == {}
    assert len(box.errors) == 3


def test_lying_or_broken_transfers_are_stopped(session: dataask.Session) -> None:
    box = UploadBox(session, max_bytes=1000)
    browser = Browser(box.picker)
    # announces 10 bytes, sends more
    assert browser.upload("a.csv", CSV, size=10) == "done"
    assert "more bytes arrived than announced" in browser.replies[-1]["message"]
    # a chunk goes missing
    browser.msg({"type": "begin", "id": "x", "name": "b.csv", "size": 20})
    browser.msg({"type": "chunk", "id": "x", "offset": 0}, [b"a,b\n1,2\n"])
    reply = browser.msg({"type": "chunk", "id": "x", "offset": 15}, [b"3,4\n"])
    assert reply["type"] == "done" and "went missing" in reply["message"]
    # cut short
    browser.msg({"type": "begin", "id": "y", "name": "c.csv", "size": 20})
    browser.msg({"type": "chunk", "id": "y", "offset": 0}, [b"a,b\n"])
    reply = browser.msg({"type": "end", "id": "y"})
    assert not reply["ok"] and "cut short" in reply["message"]
    # garbage messages are ignored
    browser.msg({"type": "chunk", "id": "nobody", "offset": 0}, [b"zz"])
    box.picker._handle_custom_msg("not a dict", [])
    assert list(box.folder.iterdir()) == [] and session.datasets == {}
    assert not box.picker.busy


def test_file_names_are_made_safe(session: dataask.Session) -> None:
    box = UploadBox(session)
    browser = Browser(box.picker)
    assert browser.upload("../../etc/évil name.csv", CSV) == "loaded"
    files = list(box.folder.iterdir())
    assert [f.name for f in files] == ["évil name.csv"]
    assert "évil_name" in session.datasets


def test_sheet_picker(session: dataask.Session) -> None:
    box = UploadBox(session)
    assert box.add_file("sales.xlsx", (DATA / "sales.xlsx").read_bytes())
    card = box.cards["sales"]
    picker = card.sheet_picker
    assert picker is not None
    assert list(picker.options) == ["Orders 2023", "Orders 2024", "Products"]
    assert picker.value == "Orders 2023" and session.datasets["sales"].shape == (4000, 11)
    picker.value = "Products"
    assert (
        session.datasets["sales"].shape == (10, 4) and session.datasets["sales"].sheet == "Products"
    )
    assert "10 rows x 4 columns" in card.children[0].value
    assert card.preview is not None and card.preview.total_rows == 10
    assert not card.choose_sheet("No such sheet")
    assert "not found" in card.error.value
    assert session.datasets["sales"].sheet == "Products"  # unchanged


def test_python_add_file_checks_the_same(session: dataask.Session) -> None:
    box = UploadBox(session, max_bytes=50)
    assert not box.add_file("x.pdf", b"%PDF")
    assert not box.add_file("x.csv", b"a" * 51)
    assert box.add_file("ok.csv", b"a,b\n1,2\n")
    assert "ok" in session.datasets and len(box.errors) == 2


def test_magic_upload_displays_the_box(
    settings_kwargs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "dataask")
        for key, value in settings_kwargs.items():
            shell.run_line_magic("config", f"Ask.{key} = {value!r}")
        shell.run_line_magic("ask", "upload")
        out = capsys.readouterr().out
        assert (
            "Upload box for .csv, .tsv, .xlsx, .xlsm, .xlsb, .xls, .ods, .parquet files "
            "up to 256.0 MB each" in out
        )
    finally:
        shell.run_line_magic("unload_ext", "dataask")
        InteractiveShell.clear_instance()


def test_upload_then_ask(session: dataask.Session, llm: Any) -> None:
    box = UploadBox(session)
    Browser(box.picker).upload("visits.csv", CSV)
    llm.on("total visits", "result = int(df['visits'].sum())")
    assert session.ask("total visits").value == 17
