"""Every file of the shared spreadsheet corpus: what a user gets.

The corpus (``../shared/corpus/spreadsheets/`` beside the repository; see its README) holds real
workbooks from calamine's and xlrd's test suites. Each file either loads (shape, sheet, column
names and first values asserted, the frame crosses to the sandbox as Arrow, and the sandbox
answers questions on it through ``Session.load`` + ``Session.ask``) or is refused with one clear
sentence. ``DATAASK_CORPUS_DIR`` points elsewhere (e.g. from a git worktree); the tests skip only
when the folder is absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import dataask
from dataask_jupyter.errors import (
    CorruptFileError,
    DataaskError,
    EmptyFileError,
    EncryptedFileError,
    LoadError,
)
from dataask_jupyter.readers import read_table
from dataask_jupyter.results import frame_from_ipc, frame_to_ipc
from tests.scripted_llm import ScriptedLLM

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(
    os.environ.get("DATAASK_CORPUS_DIR", ROOT.parent / "shared" / "corpus" / "spreadsheets")
)
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus folder {CORPUS} absent")

# file -> (shape, sheet read, first column names, first row's first values); "T:" = a Timestamp
LOADS: dict[str, tuple[tuple[int, int], str, list[str], list[Any]]] = {
    "calamine-OOM_alloc.xls": (
        (16, 7),
        "Weekly Report",
        ["unnamed_1", "1/19 - 1/25", "1/26 - 2/1"],
        [" EA (in millions)", None, None],
    ),
    "calamine-any_sheets.xlsx": ((3, 2), "Visible", ["A", "B"], [1, 2]),
    "calamine-biff5-rich-text-string.xls": (
        (13, 8),
        "Sheet1",
        ["No.", "Surname in full.", "Christian Names (if any) in full."],
        [1788, "McNally", "Henry"],
    ),
    "calamine-biff5_write.xls": ((4, 4), "SheetJS", ["A", "B", "C"], ["1", "2", "3"]),
    "calamine-column_row_ranges.xlsx": ((5, 3), "Column ranges", ["A", "B", "C"], [0, 0, 0]),
    "calamine-covered.ods": ((2, 1), "sheet1", ["a1"], ["a2"]),
    "calamine-date.xls": ((3, 2), "Sheet1", ["A", "B"], ["T:2021-01-01T00:00:00", 15]),
    "calamine-date_1904.xlsx": ((3, 2), "Sheet1", ["A", "B"], ["T:2021-01-01T00:00:00", 15]),
    "calamine-date_iso.xlsx": ((5, 1), "Sheet", ["2021-01-01"], ["2021-01-01 10:10:10"]),
    "calamine-date_quoted_format.xlsx": ((4, 1), "Sheet1", ["A"], ["T:2021-01-01T00:00:00"]),
    "calamine-empty-string.xls": ((1, 1), "Sheet1", ["B"], [False]),
    "calamine-empty_shared_string.xlsx": ((0, 1), "Sheet1", ["abc"], []),
    "calamine-empty_shared_string_value.xlsx": (
        (2, 3),
        "Sheet1",
        ["Name", "City", "Status"],
        ["Alice", None, "Active"],
    ),
    "calamine-encoded_entities.xlsx": ((0, 1), "Sheet1", ["&"], []),
    "calamine-formula-date-format.xls": ((2, 1), "Sheet1", ["A"], ["T:2017-02-27T00:00:00"]),
    "calamine-hyperlinks.xlsx": (
        (7, 2),
        "Links",
        ["calamine repo", "mail link"],
        ["Rust Programming Language", None],
    ),
    "calamine-inlineStr_with_value.xlsx": (
        (1, 7),
        "Requirements",
        ["NN", "Hierarchy", "Outline Number"],
        [1, "+", "1."],
    ),
    "calamine-inventory-table.xlsx": (
        (4, 3),
        "Sheet1",
        ["Item", "Type", "Quantity"],
        [1, "Apple", 50],
    ),
    "calamine-issue221.xlsm": ((1, 2), "Sheet1", ["Cell_A1", "Cell_B1"], ["Cell_A2", "Cell_B2"]),
    "calamine-issue446.xlsx": ((2, 21), "Sheet1", ["F", "G", "H"], [1, 1, 120000]),
    "calamine-issue644.xlsx": ((10, 2), "Sheet1", ["A", "B"], [10.0, 1.0413926851582251]),
    "calamine-issue9.xlsx": ((3, 1), "Feuil1", ["test1"], ["test2 other"]),
    "calamine-issue_174.xlsx": (
        (1, 11),
        "Sheet1",
        ["Your Ref #", "Contact Name", "Contact Number"],
        [123, "Test Contact Name", "Test Contact Number"],
    ),
    "calamine-issue_261.xlsx": (
        (41, 7),
        "Some Sheet",
        ["String Value 12", "String Value 30", "String Value 31"],
        ["T:2023-03-15T00:00:00", None, None],
    ),
    "calamine-issue_261_fixed_by_excel.xlsx": (
        (41, 7),
        "Some Sheet",
        ["String Value 12", "String Value 30", "String Value 31"],
        ["T:2023-03-15T00:00:00", None, None],
    ),
    "calamine-issue_271.xls": ((0, 3), "sheet1", ["name", "yyy_name", "sex"], []),
    "calamine-issue_419.xlsb": ((0, 1), "Sheet1", ["Hello"], []),
    "calamine-issue_419.xlsx": ((0, 1), "Sheet1", ["Hello"], []),
    "calamine-issue_530.xlsx": (
        (1, 12),
        "出勤分类组织汇总表",
        ["领域", "平台", "小微"],
        ["集团IT平台", "集团IT平台", "技术中心"],
    ),
    "calamine-issue_553.xlsx": ((18, 1), "Sheet1", ["영어"], ["영어"]),
    "calamine-issue_643_biff5_formula.xls": ((4, 4), "SheetJS", ["A", "B", "C"], ["1", "2", "3"]),
    "calamine-issue_644.xlsx": ((10, 2), "Sheet1", ["A", "B"], [10.0, 1.0413926851582251]),
    "calamine-issues.ods": ((3, 2), "issue2", ["A", "B"], [1, "a"]),
    "calamine-issues.xlsx": ((3, 2), "issue2", ["A", "B"], [1, "a"]),
    "calamine-malformed_format.xls": (
        (31, 24),
        "2014",
        ["GENNAIO", "unnamed_2", "FEBBRAIO"],
        [1, "Capodanno", 1.0],
    ),
    "calamine-merged_range.xls": ((1, 7), "Sheet1", ["A3", "B3", "C3"], ["A4", "B4", "C4"]),
    "calamine-merged_range.xlsx": ((1, 7), "Sheet1", ["A3", "B3", "C3"], ["A4", "B4", "C4"]),
    "calamine-multi-empty.ods": ((4, 1), "Test", ["StringCol"], ["bbb"]),
    "calamine-no-header.xlsx": ((2, 2), "Feuille 1", ["A", "B"], ["a", 0]),
    "calamine-nonstandard-xml-ns-prefix.xlsx": ((2, 2), "Sheet1", ["a", "b"], [1, 3]),
    "calamine-number_rows_repeated.ods": ((2, 2), "Sheet1", ["A", "B"], ["C", "D"]),
    "calamine-pivots.xlsx": (
        (1, 6),
        "PivotSheet1",
        ["Row Labels", "Sum of Size", "Average of Value"],
        ["yellow", 6.255519999999999, 8.333333333333334],
    ),
    "calamine-ptgexp-truncated-operand.xls": (
        (2, 10),
        "Tab 1",
        ["unnamed_1", "Shares", "Cost Per Share"],
        ["Purchased 3/11/96 ", None, None],
    ),
    "calamine-richtext-after-plain.xlsx": (
        (1, 4),
        "Sheet1",
        ["abcd", "abcd_2", "abcd_3"],
        ["tvalrval1rval2", "rval1rval2", "rval1rval2"],
    ),
    "calamine-sst_continue.xls": (
        (135, 1),
        "Sheet1",
        ["This is a long string with a serial number at the end 0001"],
        ["This is a long string with a serial number at the end 0002"],
    ),
    "calamine-table_with_absolute_paths.xlsx": ((4, 2), "table", ["Item", "Name"], [100, "North"]),
    "calamine-temperature.xlsx": ((2, 2), "Sheet1", ["label", "value"], ["celsius", 22.2222]),
    "xlrd-Formate.xls": ((9, 2), "Blätt1", ["Huber", "1907-07-03"], ["Äcker", "2005-02-23"]),
    "xlrd-formula_test_sjmachin.xls": (
        (7, 2),
        "Sheet1",
        ["Description", "Data"],
        ["Non-latin1 text", "МОСКВА Москва"],  # noqa: RUF001
    ),
    "xlrd-issue20.xls": ((4, 1), "Sheet1", ["aasa"], ["asasa"]),
    "xlrd-namesdemo.xls": ((3, 14), "Sheet3", ["unnamed_1", "Jan", "Feb"], ["Sales", None, None]),
    "xlrd-profiles.xls": ((14, 13), "PROFILEDEF", ["PROFIL", "a", "b"], ["P8.2", 100, 101]),
    "xlrd-ragged.xls": ((4, 4), "Sheet1", ["a", "b", "c"], ["d", "e", None]),
    "xlrd-xf_class.xls": (
        (4, 3),
        "table1",
        ["RED", "RED_2", "unnamed_3"],
        ["GREEN", "GREEN", None],
    ),
}
REFUSED: dict[str, tuple[type[LoadError], str]] = {
    "calamine-OOM_alloc3.xls": (
        CorruptFileError,
        "could not be read as XLS (Cfb error: Sector 4294967039 point",
    ),
    "calamine-empty_sheet.xlsx": (EmptyFileError, 'holds no data: its sheet "Sheet1" is empty'),
    "calamine-errors.xlsx": (
        EmptyFileError,
        'holds no data: the cells of sheet "Feuil1" hold only Excel e',
    ),
    "calamine-issue127.xlsb": (
        EmptyFileError,
        'holds no data: all its sheets are empty ("Sheet1", "Sheet2",',
    ),
    "calamine-issue127.xlsx": (
        EmptyFileError,
        'holds no data: all its sheets are empty ("Sheet1", "Sheet2",',
    ),
    "calamine-issue252.xlsx": (
        CorruptFileError,
        "could not be read as XLSX (I/O error: File is larger than it",
    ),
    "calamine-issue343.xls": (EmptyFileError, 'holds no data: its sheet "Лист1" is empty'),  # noqa: RUF001
    "calamine-issue_385.xls": (
        EncryptedFileError,
        "is password-protected; remove the password in Excel and save",
    ),
    "calamine-issue_666_panic.xlsb": (EmptyFileError, 'holds no data: its sheet "Sheet1" is empty'),
    "calamine-misc_biff5_parsing.xls": (
        EmptyFileError,
        'holds no data: all its sheets are empty ("Sheet1", "Sheet2",',
    ),
    "calamine-pass_protected.xlsb": (
        EncryptedFileError,
        "is password-protected; remove the password in Excel and save",
    ),
    "calamine-pass_protected.xlsx": (
        EncryptedFileError,
        "is password-protected; remove the password in Excel and save",
    ),
    "calamine-picture.xls": (
        EmptyFileError,
        'holds no data: all its sheets are empty ("Sheet1", "Sheet2")',
    ),
    "calamine-picture_richdata.xlsx": (
        EmptyFileError,
        'holds no data: the cells of sheet "Sheet1" hold only Excel e',
    ),
    "calamine-pictures_in_cell_and_over_cell.xlsx": (
        EmptyFileError,
        'holds no data: the cells of sheet "Sheet1" hold only Excel e',
    ),
    "xlrd-invalid_formula.xls": (
        EmptyFileError,
        'holds no data: the cells of sheet "Sheet1" hold only Excel e',
    ),
    "xlrd-picture_in_cell.xls": (EmptyFileError, 'holds no data: its sheet "Sheet1" is empty'),
}


def _value(v: Any) -> Any:
    if isinstance(v, pd.Timestamp):
        return f"T:{v.isoformat()}"
    if v is None or (isinstance(v, float) and v != v):
        return None
    return v.item() if hasattr(v, "item") else v


def test_the_corpus_is_all_accounted_for() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.is_file() and p.suffix != ".md"}
    assert files == set(LOADS) | set(REFUSED)
    assert not set(LOADS) & set(REFUSED)


@pytest.mark.parametrize("name", sorted(LOADS))
def test_loads(name: str) -> None:
    shape, sheet, columns, first = LOADS[name]
    r = read_table(CORPUS / name)
    df = r.frame
    assert df.shape == shape
    assert r.sheet == sheet
    assert list(df.columns)[: len(columns)] == columns
    assert [_value(v) for v in df.iloc[0, : len(first)].tolist()] == first if first else True
    assert all(isinstance(c, str) and c for c in df.columns)
    assert all(isinstance(n, str) and n.endswith((".", ")")) for n in r.notes), r.notes
    back = frame_from_ipc(frame_to_ipc(df))  # what the sandbox receives
    assert back.shape == df.shape and list(back.columns) == list(df.columns)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_with_one_sentence(name: str) -> None:
    kind, phrase = REFUSED[name]
    with pytest.raises(LoadError) as info:
        read_table(CORPUS / name)
    msg = str(info.value)
    assert type(info.value) is kind
    assert msg.startswith(f"{name} ") and phrase in msg
    assert "\n" not in msg and "Traceback" not in msg and len(msg) < 300


def test_what_the_reader_decided_is_said() -> None:
    r = read_table(CORPUS / "calamine-any_sheets.xlsx")
    assert r.hidden_sheets == {"Hidden": "hidden", "VeryHidden": "very hidden"}
    assert any('"VeryHidden" (very hidden)' in n for n in r.notes)
    r = read_table(CORPUS / "calamine-pivots.xlsx")
    assert any('row 5 ("Grand Total"), the totals of the rows above' in n for n in r.notes)
    r = read_table(CORPUS / "calamine-biff5-rich-text-string.xls")
    assert r.header_row == 3 and r.range == "A3:H16"
    assert any(n.startswith("Skipped the title above the table (row 1:") for n in r.notes)
    r = read_table(CORPUS / "xlrd-formula_test_sjmachin.xls")
    assert any("1 #DIV/0!" in n and "B7" in n for n in r.notes)
    r = read_table(CORPUS / "calamine-ptgexp-truncated-operand.xls")
    assert "Cost Per Share" in r.frame.columns  # four stacked header rows joined


def test_1904_dates_match_1900_dates() -> None:
    a = read_table(CORPUS / "calamine-date.xls").frame
    b = read_table(CORPUS / "calamine-date_1904.xlsx").frame
    assert a["A"].iloc[:2].tolist() == b["A"].iloc[:2].tolist()
    assert b["A"].iloc[1] == pd.Timestamp("2021-01-02")


def test_formats_by_content() -> None:
    assert read_table(CORPUS / "calamine-issues.ods").format == "ods"
    assert read_table(CORPUS / "calamine-issue221.xlsm").format == "xlsm"
    assert read_table(CORPUS / "calamine-issue_419.xlsb").format == "xlsb"
    r = read_table(CORPUS / "calamine-issues.ods", sheet="datatypes")
    assert r.frame.shape == (6, 1) and r.frame["A"].tolist()[:3] == ["1", "1.5", "ab"]
    assert read_table(CORPUS / "calamine-issues.ods").notes[0] == (
        'Read sheet "issue2", the first sheet with a table ("datatypes" holds one column only; '
        '"Sheet1" holds one column only).'
    )


# --------------------------------------------------------------------------------------------
# the sandbox answers questions on every file that loads


@pytest.fixture(scope="module")
def corpus_session(llm_server: ScriptedLLM) -> Iterator[dataask.Session]:
    llm_server.clear()
    llm_server.on("how many rows", "result = len(df)")
    llm_server.on("first rows", "result = df.head(3)")
    s = dataask.Session(
        llm_base_url=llm_server.url,
        llm_api_key="test-key-not-secret",
        llm_model="scripted",
        sandbox="local",
        llm_max_retries=2,
        llm_timeout=10.0,
        result_checks=False,
    )
    yield s
    s.close()
    llm_server.clear()


@pytest.mark.parametrize("name", sorted(LOADS))
def test_sandbox_answers(corpus_session: dataask.Session, name: str) -> None:
    s = corpus_session
    try:
        ds = s.load(CORPUS / name, name="data")
    except DataaskError as exc:  # pragma: no cover - the assertion says what went wrong
        pytest.fail(f"{name} did not load: {exc}")
    rows, cols = LOADS[name][0]
    a = s.ask("how many rows are there?")
    assert a.error is None, a.error
    assert a.value == rows
    a = s.ask("show the first rows")
    assert a.error is None, a.error
    assert isinstance(a.value, pd.DataFrame) and a.value.shape == (min(3, rows), cols)
    assert list(a.value.columns) == ds.columns
    s.drop("data")


def test_dataset_card_shows_notes_and_hidden_sheets(corpus_session: dataask.Session) -> None:
    from dataask_jupyter.widgets.upload import DatasetCard

    path = CORPUS / "calamine-any_sheets.xlsx"
    ds = corpus_session.load(path, name="sheets")
    if not hasattr(ds, "hidden_sheets"):  # Dataset carries ReadResult.hidden_sheets once wired
        ds.hidden_sheets = read_table(path).hidden_sheets  # type: ignore[attr-defined]
    card = DatasetCard(corpus_session, ds, path, path.name)
    html = card.children[0].value
    assert "How the file was read:" in html
    assert "Left out row 5" in html and "totals" not in html
    assert "hidden sheets: “Hidden” (hidden), “VeryHidden” (very hidden)" in html
    assert card.sheet_picker is not None
    assert ("VeryHidden (very hidden)", "VeryHidden") in list(card.sheet_picker.options)
    corpus_session.drop("sheets")
