"""Tests of the load stage (dataask_jupyter.readers). Fixtures are made in tmp_path."""

from __future__ import annotations

import datetime as dt
import io
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dataask_jupyter.errors import (
    CorruptFileError,
    EmptyFileError,
    EncryptedFileError,
    FileTooLargeError,
    LoadError,
    SheetNotFoundError,
    UnsupportedFormatError,
)
from dataask_jupyter.readers import ReadResult, detect_format, list_sheets, read_table
from dataask_jupyter.results import frame_from_ipc, frame_to_ipc
from tests.messy_workbooks import clean_workbook, messy_workbook
from tests.scripted_llm import ScriptedLLM

DATA = Path(__file__).parent / "data"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


def raises_one_line(exc_type: type[Exception], fn, *args, **kwargs) -> str:
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    return msg


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


# --------------------------------------------------------------------------------------------
# CSV: encodings x delimiters

ROWS = [
    ("1", "Zürich", "Café crème", "1.5"),
    ("2", "São Paulo", "Ærø", "2.25"),
    ("3", "Köln", "", "3"),
]
ENCODINGS = {
    # how to encode the text -> the encoding read_table should report
    "utf-8": ("utf-8", "utf-8"),
    "utf-8-bom": ("utf-8-sig", "utf-8-sig"),
    "utf-16-bom": ("utf-16", "utf-16"),
    "utf-16-le-nobom": ("utf-16-le", "utf-16-le"),
    "utf-16-be-nobom": ("utf-16-be", "utf-16-be"),
    "latin-1": ("latin-1", "cp1252"),
    "cp1252": ("cp1252", "cp1252"),
}
DELIMS = {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|"}


def csv_text(delim: str, rows=ROWS, header=("id", "city", "dish", "amount")) -> str:
    lines = [delim.join(header)] + [delim.join(r) for r in rows]
    return "\r\n".join(lines) + "\r\n"


@pytest.mark.parametrize("delim_name", DELIMS)
@pytest.mark.parametrize("enc_name", ENCODINGS)
def test_csv_encoding_and_delimiter(tmp_path: Path, enc_name: str, delim_name: str) -> None:
    codec, expected = ENCODINGS[enc_name]
    delim = DELIMS[delim_name]
    p = write(tmp_path, "data.csv", csv_text(delim).encode(codec))
    r = read_table(p)
    assert isinstance(r, ReadResult)
    assert (r.format, r.encoding, r.delimiter) == ("csv", expected, delim)
    assert r.engine == ("pyarrow" if expected.startswith("utf-8") else "c")
    df = r.frame
    assert list(df.columns) == ["id", "city", "dish", "amount"]
    assert df["id"].tolist() == [1, 2, 3]
    assert df["city"].tolist() == ["Zürich", "São Paulo", "Köln"]
    assert df["dish"].iloc[0] == "Café crème" and pd.isna(df["dish"].iloc[2])
    assert df["amount"].tolist() == [1.5, 2.25, 3.0]
    assert r.sheets == [] and r.sheet is None and r.notes == []


def test_csv_utf8_sample_cut_mid_character(tmp_path: Path) -> None:
    # "é" is 2 bytes in UTF-8; put its first byte at the last position of the 64 KB sample.
    head = "id,text\n"
    filler = "1," + "a" * (65535 - len(head) - 2) + "é\n"
    body = head + filler + "2,Ünïcödé\n"
    data = body.encode("utf-8")
    assert data[65535:65537] == "é".encode()
    r = read_table(write(tmp_path, "cut.csv", data))
    assert r.encoding == "utf-8"
    assert r.frame["text"].iloc[1] == "Ünïcödé"


def test_csv_latin1_accents_past_the_sample(tmp_path: Path) -> None:
    body = "name,city\n" + "x,Paris\n" * 10000 + "y,Málaga\n"
    r = read_table(write(tmp_path, "late.csv", body.encode("latin-1")))
    assert r.frame.shape == (10001, 2)
    assert r.frame["city"].iloc[-1] == "Málaga"
    assert r.encoding == "cp1252" and r.engine == "c"
    assert r.notes == ["The file is not UTF-8 past its first 64 KB; it was read as cp1252."]


def test_csv_utf8_with_a_bad_byte_past_the_sample(tmp_path: Path) -> None:
    body = ("name,city\n" + "x,Zürich\n" * 10000).encode() + b"y,M\xe1laga\n"
    r = read_table(write(tmp_path, "mixed.csv", body))
    assert r.encoding == "utf-8"
    assert r.frame["city"].iloc[0] == "Zürich"
    assert r.frame["city"].iloc[-1] == "M\ufffdlaga"
    assert r.notes == ["Some bytes were not valid utf-8 and were replaced by \ufffd."]


def test_csv_decimal_comma(tmp_path: Path) -> None:
    text = "produkt;preis;menge\nÄpfel;1,5;3\nBirnen;1.234,75;10\nKiwi;0,99;7\n"
    r = read_table(write(tmp_path, "de.csv", text.encode("cp1252")))
    assert r.delimiter == ";" and r.engine == "c"
    assert r.frame["preis"].tolist() == [1.5, 1234.75, 0.99]
    assert r.frame["menge"].tolist() == [3, 10, 7]
    assert any("decimal comma" in n for n in r.notes)


def test_csv_semicolon_with_dot_decimals_untouched(tmp_path: Path) -> None:
    r = read_table(write(tmp_path, "s.csv", b"a;b\n1.5;x\n2.5;y\n"))
    assert r.frame["a"].tolist() == [1.5, 2.5]
    assert not any("decimal" in n for n in r.notes)


def test_csv_excel_sep_hint(tmp_path: Path) -> None:
    r = read_table(write(tmp_path, "hint.csv", b"sep=;\r\na;b\r\n1;2\r\n"))
    assert r.delimiter == ";"
    assert list(r.frame.columns) == ["a", "b"] and r.frame.shape == (1, 2)


def test_csv_delimiter_not_fooled_by_text(tmp_path: Path) -> None:
    text = 'name|comment|n\nx|"a, b, c"|1\ny|hello, world; hi|2\nz|p, q|3\n'
    r = read_table(write(tmp_path, "p.csv", text.encode()))
    assert r.delimiter == "|"
    assert r.frame["comment"].tolist() == ["a, b, c", "hello, world; hi", "p, q"]


def test_csv_quoted_newlines(tmp_path: Path) -> None:
    r = read_table(write(tmp_path, "q.csv", b'a,b\n1,"line one\nline two"\n2,z\n'))
    assert r.frame["b"].tolist() == ["line one\nline two", "z"]


def test_csv_quoted_newlines_across_read_blocks(tmp_path: Path) -> None:
    # No quotes in the first 64 KB, then quoted line breaks over several MB: pyarrow reads in
    # blocks and must not split a quoted value at a block edge (it did, silently, once).
    rows = ["a"] + [f"x{i}" for i in range(20_000)] + [f'"l{i}\nm{i}"' for i in range(300_000)]
    p = write(tmp_path, "nl.csv", ("\n".join(rows) + "\n").encode())
    assert p.stat().st_size > 4 << 20
    df = read_table(p).frame
    assert len(df) == 320_000
    expected = [f"x{i}" for i in range(20_000)] + [f"l{i}\nm{i}" for i in range(300_000)]
    assert df["a"].tolist() == expected


def test_csv_single_column_and_header_only(tmp_path: Path) -> None:
    r = read_table(write(tmp_path, "one.csv", b"word\nalpha\nbeta\n"))
    assert list(r.frame.columns) == ["word"] and r.frame.shape == (2, 1)
    r = read_table(write(tmp_path, "hdr.csv", b"a,b,c\n"))
    assert list(r.frame.columns) == ["a", "b", "c"] and len(r.frame) == 0


def test_csv_iso_dates_parsed_both_engines(tmp_path: Path) -> None:
    text = "day,when,label\n2023-01-05,2023-01-05T10:30:00,2023-01-05 or so\n2023-12-31,,x\n"
    for codec, engine in (("utf-8", "pyarrow"), ("utf-16", "c")):
        r = read_table(write(tmp_path, f"d-{codec}.csv", text.encode(codec)))
        assert r.engine == engine
        df = r.frame
        assert pd.api.types.is_datetime64_any_dtype(df["day"])
        assert pd.api.types.is_datetime64_any_dtype(df["when"])
        assert df["day"].iloc[1] == pd.Timestamp("2023-12-31")
        assert df["when"].iloc[0] == pd.Timestamp("2023-01-05 10:30")
        assert df["label"].dtype != "datetime64[us]"  # not all ISO: left as text
    r = read_table(write(tmp_path, "us.csv", b"day\n01/02/2023\n03/04/2023\n"))
    assert r.frame["day"].tolist() == ["01/02/2023", "03/04/2023"]  # ambiguous: left alone


def test_csv_malformed_lines_skipped_with_note(tmp_path: Path) -> None:
    r = read_table(write(tmp_path, "bad.csv", b"a,b\n1,2\n3,4,5\n6,7\n"))
    assert r.frame["a"].tolist() == [1, 6]
    assert any("Skipped 1 malformed line" in n and "line 3" in n for n in r.notes)


def test_csv_trailing_delimiter_does_not_shift_columns(tmp_path: Path) -> None:
    r = read_table(write(tmp_path, "t.csv", b"a,b\n1,2,\n3,4,\n"))
    assert list(r.frame.columns) == ["a", "b"]
    assert r.frame["a"].tolist() == [1, 3]


def test_csv_mixed_types_column(tmp_path: Path) -> None:
    body = "code,n\n" + "".join(f"{i},{i}\n" for i in range(200_000)) + "A17,1\n"
    r = read_table(write(tmp_path, "mixed.csv", body.encode()))
    assert r.frame["code"].iloc[-1] == "A17"
    assert r.frame["code"].iloc[0] == "0"
    assert r.frame["n"].dtype == np.int64


def test_csv_blank_and_duplicate_column_names(tmp_path: Path) -> None:
    text = "price,,price, qty ,Unnamed: 4,price_2\n1,2,3,4,5,6\n"
    for codec in ("utf-8", "cp1252"):  # pyarrow and C engine paths
        r = read_table(write(tmp_path, f"dup-{codec}.csv", (text + "é,1,1,1,1,1\n").encode(codec)))
        assert list(r.frame.columns) == [
            "price",
            "unnamed_2",
            "price_3",
            "qty",
            "unnamed_5",
            "price_2",
        ]
        assert 'Named the columns without a name "unnamed_2", "unnamed_5".' in r.notes
        assert 'Renamed repeated column names: "price" to "price_3".' in r.notes
        assert 'Removed the spaces around the column names " qty ".' in r.notes


def test_csv_literal_dot_names_are_kept(tmp_path: Path) -> None:
    r = read_table(write(tmp_path, "v.csv", b"v,v.1,v\n1,2,3\n"))
    assert list(r.frame.columns) == ["v", "v.1", "v_2"]


# --------------------------------------------------------------------------------------------
# empty, binary, unsupported, size caps


def test_empty_file(tmp_path: Path) -> None:
    msg = raises_one_line(EmptyFileError, read_table, write(tmp_path, "empty.csv", b""))
    assert msg == "empty.csv is empty (0 bytes)"


@pytest.mark.parametrize(
    "data", [b"   \n\n\t  \r\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf \n", " \n ".encode("utf-16")]
)
def test_whitespace_or_bom_only_file(tmp_path: Path, data: bytes) -> None:
    msg = raises_one_line(EmptyFileError, read_table, write(tmp_path, "blank.csv", data))
    assert msg == "blank.csv holds only whitespace, no table"


def test_png_renamed_csv(tmp_path: Path) -> None:
    p = write(tmp_path, "photo.csv", PNG)
    msg = raises_one_line(UnsupportedFormatError, read_table, p)
    assert msg == "photo.csv looks like a PNG image, not CSV/Excel/ODS/parquet"
    raises_one_line(UnsupportedFormatError, detect_format, p)


def test_random_binary_renamed_csv(tmp_path: Path) -> None:
    data = np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    msg = raises_one_line(UnsupportedFormatError, read_table, write(tmp_path, "x.csv", data))
    assert msg == "x.csv looks like a binary file, not CSV/Excel/ODS/parquet"


def test_html_page_renamed_csv(tmp_path: Path) -> None:
    p = write(tmp_path, "export.csv", b"<!DOCTYPE html>\n<html><body>Login</body></html>\n")
    msg = raises_one_line(UnsupportedFormatError, read_table, p)
    assert msg.startswith("export.csv looks like an HTML page")


def test_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "hello")
    p = write(tmp_path, "book.xlsx", buf.getvalue())
    msg = raises_one_line(UnsupportedFormatError, read_table, p)
    assert msg == (
        "book.xlsx looks like a ZIP archive that is not a workbook, not CSV/Excel/ODS/parquet"
    )


def test_docx_renamed_xlsx(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<w:document/>")
    msg = raises_one_line(
        UnsupportedFormatError, read_table, write(tmp_path, "r.xlsx", buf.getvalue())
    )
    assert msg == "r.xlsx looks like a Word document, not CSV/Excel/ODS/parquet"


def test_missing_file(tmp_path: Path) -> None:
    msg = raises_one_line(LoadError, read_table, tmp_path / "nope.csv")
    assert msg.startswith("nope.csv not found")


def test_over_size_cap(tmp_path: Path) -> None:
    p = write(tmp_path, "big.csv", b"a,b\n" + b"1,2\n" * 3000)
    msg = raises_one_line(FileTooLargeError, read_table, p, max_bytes=10_000)
    assert msg == (
        "big.csv is 11.7 KB, over the 9.8 KB cap; raise the setting Ask.max_file_bytes to load it"
    )


def test_unsupported_source_type() -> None:
    raises_one_line(LoadError, read_table, 42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# XLSX


def make_xlsx(path: Path, sheets: dict[str, pd.DataFrame]) -> Path:
    with pd.ExcelWriter(path, engine="openpyxl") as xw:
        for name, frame in sheets.items():
            frame.to_excel(xw, sheet_name=name, index=False)
    return path


@pytest.fixture
def sales_xlsx(tmp_path: Path) -> Path:
    return make_xlsx(
        tmp_path / "sales.xlsx",
        {
            "2023": pd.DataFrame({"region": ["EU", "Asia"], "revenue": [1.5, 2.0]}),
            "2024": pd.DataFrame(
                {"region": ["EU"], "revenue": [3.0], "when": [pd.Timestamp("2024-02-01")]}
            ),
        },
    )


def test_xlsx_first_sheet_by_default(sales_xlsx: Path) -> None:
    r = read_table(sales_xlsx)
    assert (r.format, r.engine, r.sheet, r.sheets) == ("xlsx", "calamine", "2023", ["2023", "2024"])
    assert r.frame["region"].tolist() == ["EU", "Asia"]
    assert r.encoding is None and r.delimiter is None


def test_xlsx_sheet_by_name_and_index(sales_xlsx: Path) -> None:
    by_name = read_table(sales_xlsx, sheet="2024")
    by_index = read_table(sales_xlsx, sheet=1)
    assert by_name.sheet == by_index.sheet == "2024"
    pd.testing.assert_frame_equal(by_name.frame, by_index.frame)
    assert by_name.frame["when"].iloc[0] == pd.Timestamp("2024-02-01")
    loose = read_table(sales_xlsx, sheet=" 2024 ")  # forgiving match, with a note
    assert loose.sheet == "2024"
    assert loose.notes == ['Read sheet "2024" for the sheet name " 2024 ".']
    by_digits = read_table(sales_xlsx, sheet="1")  # a command line gives the index as text
    assert by_digits.sheet == "2024"
    assert by_digits.notes == ['Read sheet "2024" for the sheet index "1".']


def test_xlsx_unknown_sheet(sales_xlsx: Path) -> None:
    with pytest.raises(SheetNotFoundError) as info:
        read_table(sales_xlsx, sheet="Foo")
    assert str(info.value) == 'Sheet "Foo" not found in sales.xlsx; sheets: "2023", "2024"'
    assert info.value.sheets == ["2023", "2024"]
    msg = raises_one_line(SheetNotFoundError, read_table, sales_xlsx, sheet=5)
    assert (
        msg == 'Sheet 5 not found in sales.xlsx (0-based index, 2 sheets); sheets: "2023", "2024"'
    )


def test_list_sheets_and_detect_format(sales_xlsx: Path, tmp_path: Path) -> None:
    assert list_sheets(sales_xlsx) == ["2023", "2024"]
    assert detect_format(sales_xlsx) == "xlsx"
    renamed = tmp_path / "really_xlsx.csv"
    renamed.write_bytes(sales_xlsx.read_bytes())
    assert detect_format(renamed) == "xlsx"  # content, not suffix
    assert read_table(renamed).format == "xlsx"
    csv_as_xlsx = write(tmp_path, "really_csv.xlsx", b"a,b\n1,2\n")
    assert detect_format(csv_as_xlsx) == "csv"
    assert list_sheets(csv_as_xlsx) == []


def test_xlsx_duplicate_and_blank_headers(tmp_path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "data"
    ws.append(["price", None, "price", "qty"])
    ws.append([1, 2, 3, 4])
    p = tmp_path / "dups.xlsx"
    wb.save(p)
    r = read_table(p)
    assert list(r.frame.columns) == ["price", "unnamed_2", "price_2", "qty"]
    assert 'Named the columns without a name "unnamed_2".' in r.notes
    assert 'Renamed repeated column names: "price" to "price_2".' in r.notes


def test_xlsx_skips_hidden_first_sheet(tmp_path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.title = "lookup"
    wb.active.append(["k"])
    wb.active.sheet_state = "hidden"
    ws = wb.create_sheet("report")
    ws.append(["a"])
    ws.append([1])
    p = tmp_path / "h.xlsx"
    wb.save(p)
    r = read_table(p)
    assert r.sheet == "report" and r.sheets == ["lookup", "report"]
    assert r.notes == [
        'Read sheet "report", the first sheet with a table ("lookup" is hidden).',
        'The workbook also has hidden sheets: "lookup" (hidden); load one with --sheet NAME.',
    ]
    assert r.hidden_sheets == {"lookup": "hidden"}
    assert read_table(p, sheet=0).sheet == "lookup"


def test_xlsx_empty_sheet(tmp_path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.title = "blank"
    p = tmp_path / "e.xlsx"
    wb.save(p)
    msg = raises_one_line(EmptyFileError, read_table, p)
    assert msg == 'e.xlsx holds no data: its sheet "blank" is empty'


def test_xlsx_truncated_is_corrupt(sales_xlsx: Path, tmp_path: Path) -> None:
    data = sales_xlsx.read_bytes()
    p = write(tmp_path, "cut.xlsx", data[: len(data) // 2])
    msg = raises_one_line(CorruptFileError, read_table, p)
    assert msg.startswith("cut.xlsx is a damaged or truncated XLSX file")


def test_xlsx_garbage_sheet_is_corrupt(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "this is not xml <<<")
    msg = raises_one_line(CorruptFileError, read_table, write(tmp_path, "g.xlsx", buf.getvalue()))
    assert msg.startswith("g.xlsx could not be read as XLSX (")
    assert msg.endswith("open it in Excel and save it again")


def workbook_zip(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_zip_bomb_ratio(tmp_path: Path) -> None:
    data = workbook_zip({"xl/worksheets/sheet1.xml": bytes(40 << 20)})
    assert len(data) < 200_000
    p = write(tmp_path, "bomb.xlsx", data)
    msg = raises_one_line(FileTooLargeError, read_table, p)
    assert msg.startswith("bomb.xlsx looks like a zip bomb: xl/worksheets/sheet1.xml expands")


def test_zip_bomb_total_cap(tmp_path: Path) -> None:
    data = workbook_zip({"xl/worksheets/sheet1.xml": bytes(40 << 20)})
    p = write(tmp_path, "bomb.xlsx", data)
    msg = raises_one_line(FileTooLargeError, read_table, p, max_uncompressed_bytes=10 << 20)
    assert msg == (
        "bomb.xlsx expands to 40.0 MB uncompressed, over the 10.0 MB cap; raise the setting "
        "Ask.max_uncompressed_bytes if the file is genuine"
    )
    # incompressible content over a low cap: the total check alone
    noise = workbook_zip({"xl/media/x.bin": os.urandom(2 << 20)}, zipfile.ZIP_STORED)
    msg = raises_one_line(
        FileTooLargeError,
        read_table,
        write(tmp_path, "n.xlsx", noise),
        max_uncompressed_bytes=1 << 20,
    )
    assert "over the 1.0 MB cap" in msg and "Ask.max_uncompressed_bytes" in msg


def test_zip_declaring_3gb(tmp_path: Path) -> None:
    data = bytearray(workbook_zip({"xl/worksheets/sheet1.xml": b"<x/>" * 100}))
    # patch the central directory's uncompressed size of the sheet entry to 3 GB
    name = b"xl/worksheets/sheet1.xml"
    cd = data.rfind(b"PK\x01\x02" + bytes(0), 0)
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        n = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46 : pos + 46 + n] == name:
            struct.pack_into("<I", data, pos + 24, 3_000_000_000)
        pos = data.find(b"PK\x01\x02", pos + 4)
    assert cd != -1
    p = write(tmp_path, "liar.xlsx", bytes(data))
    msg = raises_one_line(FileTooLargeError, read_table, p)
    assert msg.startswith("liar.xlsx expands to 2.8 GB uncompressed, over the 2.0 GB cap")


# --------------------------------------------------------------------------------------------
# OLE2: XLS and password-protected workbooks


def make_ole(stream_names: list[str]) -> bytes:
    """A minimal OLE2 compound file: header, one FAT sector, one directory sector."""
    end, free, fatsect = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD
    header = bytearray(512)
    header[0:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHHHH", header, 0x18, 0x3E, 3, 0xFFFE, 9, 6)
    struct.pack_into("<IIIIIIIII", header, 0x2C, 1, 1, 0, 4096, end, 0, end, 0, 0)
    struct.pack_into("<109I", header, 0x4C, 0, *([free] * 108))
    fat = struct.pack("<128I", fatsect, end, *([free] * 126))

    def entry(name: str, kind: int, right: int, child: int) -> bytes:
        e = bytearray(128)
        raw = name.encode("utf-16-le") + b"\x00\x00"
        e[: len(raw)] = raw
        struct.pack_into("<HBB", e, 0x40, len(raw), kind, 1)
        struct.pack_into("<III", e, 0x44, free, right, child)
        struct.pack_into("<IQ", e, 0x74, end, 0)
        return bytes(e)

    entries = [entry("Root Entry", 5, free, 1 if stream_names else free)]
    for i, n in enumerate(stream_names, start=1):
        entries.append(entry(n, 2, i + 1 if i < len(stream_names) else free, free))
    directory = b"".join(entries).ljust(512, b"\x00")
    return bytes(header) + fat + directory


def test_encrypted_xlsx_crafted_ole(tmp_path: Path) -> None:
    p = write(tmp_path, "secret.xlsx", make_ole(["EncryptionInfo", "EncryptedPackage"]))
    msg = raises_one_line(EncryptedFileError, read_table, p)
    assert msg == "secret.xlsx is password-protected; remove the password in Excel and save again"


def test_encrypted_xlsx_real_file() -> None:
    # tests/data/encrypted.xlsx: a tiny workbook encrypted by msoffcrypto-tool (password "secret")
    msg = raises_one_line(EncryptedFileError, read_table, DATA / "encrypted.xlsx")
    assert (
        msg == "encrypted.xlsx is password-protected; remove the password in Excel and save again"
    )
    raises_one_line(EncryptedFileError, detect_format, DATA / "encrypted.xlsx")


def test_ole_word_document(tmp_path: Path) -> None:
    p = write(tmp_path, "memo.xls", make_ole(["WordDocument", "1Table"]))
    msg = raises_one_line(UnsupportedFormatError, read_table, p)
    assert msg == "memo.xls looks like a Word document, not CSV/Excel/ODS/parquet"


def test_xls(tmp_path: Path) -> None:
    # tests/data/small.xls: written by xlwt; sheets "2023", "2024" (3 rows each) and "empty"
    src = DATA / "small.xls"
    assert detect_format(src) == "xls"
    assert list_sheets(src) == ["2023", "2024", "empty"]
    r = read_table(src, sheet="2024")
    assert (r.format, r.sheet, r.sheets) == ("xls", "2024", ["2023", "2024", "empty"])
    assert r.engine in ("calamine", "xlrd")
    df = r.frame
    assert list(df.columns) == ["id", "city", "amount", "day"]
    assert df["id"].tolist() == [201, 202, 203]
    assert df["city"].tolist() == ["Zürich", "Paris", "Köln"]
    assert df["day"].iloc[2] == pd.Timestamp("2023-01-03")
    msg = raises_one_line(EmptyFileError, read_table, src, sheet="empty")
    assert msg == 'Sheet "empty" in small.xls is empty'
    msg = raises_one_line(SheetNotFoundError, read_table, src, sheet="2025")
    assert msg == 'Sheet "2025" not found in small.xls; sheets: "2023", "2024", "empty"'


def test_xls_encrypted(tmp_path: Path) -> None:
    data = bytearray((DATA / "small.xls").read_bytes())
    bof = data.find(b"\x09\x08\x10\x00\x00\x06\x05\x00")
    nxt = bof + 20  # the record after the 16-byte BOF: turn it into a FILEPASS record
    assert data[nxt : nxt + 2] == b"\xe1\x00"
    data[nxt : nxt + 2] = b"\x2f\x00"
    p = write(tmp_path, "locked.xls", bytes(data))
    msg = raises_one_line(EncryptedFileError, read_table, p)
    assert msg == "locked.xls is password-protected; remove the password in Excel and save again"


def test_xls_truncated(tmp_path: Path) -> None:
    data = (DATA / "small.xls").read_bytes()
    p = write(tmp_path, "cut.xls", data[:1500])
    msg = raises_one_line(CorruptFileError, read_table, p)
    assert msg.startswith("cut.xls could not be read as XLS (")


# --------------------------------------------------------------------------------------------
# parquet and DataFrame sources


def test_parquet(tmp_path: Path) -> None:
    src = pd.DataFrame({"a": [1, 2], "b": ["x", None], "c": pd.to_datetime(["2024-01-01", None])})
    p = tmp_path / "t.data"
    src.to_parquet(p)
    assert detect_format(p) == "parquet"
    r = read_table(p, sheet="ignored")
    assert (r.format, r.engine) == ("parquet", "pyarrow")
    assert r.frame["a"].tolist() == [1, 2] and r.frame["b"].iloc[0] == "x"
    assert any("Ignored sheet" in n for n in r.notes)


def test_parquet_corrupt(tmp_path: Path) -> None:
    msg = raises_one_line(
        CorruptFileError, read_table, write(tmp_path, "p.parquet", b"PAR1garbage")
    )
    assert msg.startswith("p.parquet could not be read as parquet (")


def test_dataframe_source_is_copied() -> None:
    src = pd.DataFrame({"a": [1, 2], 7: ["x", "y"]})
    r = read_table(src)
    assert (r.format, r.engine, r.sheets, r.sheet) == ("dataframe", "copy", [], None)
    assert list(r.frame.columns) == ["a", "7"]
    r.frame.iloc[0, 0] = 99
    assert src.iloc[0, 0] == 1


def test_dataframe_multiindex_columns_flattened() -> None:
    cols = pd.MultiIndex.from_tuples([("sales", "2023"), ("sales", "2024"), ("region", "")])
    r = read_table(pd.DataFrame([[1, 2, "EU"]], columns=cols))
    assert list(r.frame.columns) == ["sales_2023", "sales_2024", "region"]


def test_latin1_european_export_is_not_misread_as_cp1250() -> None:
    """A ';'-separated, decimal-comma, Latin-1 file: 'Peña' must not become 'Peńa'."""
    path = Path(__file__).resolve().parent.parent / "examples" / "data" / "customers.csv"
    res = read_table(path)
    assert res.encoding == "cp1252" and res.delimiter == ";"
    assert "Peña Andina" in res.frame["customer"].tolist()
    assert res.frame["credit_limit"].dtype == "float64"


def test_categoricals_become_plain_values(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "team": pd.Categorical(["GSW", "BOS", "GSW"]),
            "level": pd.Categorical([3, 1, 3]),
            "pts": [10, 20, 30],
        }
    )
    df.to_parquet(tmp_path / "t.parquet")
    for source in (tmp_path / "t.parquet", df):
        res = read_table(source)
        assert not any(isinstance(t, pd.CategoricalDtype) for t in res.frame.dtypes)
        assert res.frame["team"].tolist() == ["GSW", "BOS", "GSW"]
        assert res.frame["level"].dtype.kind == "i"
        assert res.frame.groupby("team").sum()["pts"].to_dict() == {"BOS": 20, "GSW": 40}
        assert res.notes[-1].startswith("Read the categorical column")
        assert '"team"' in res.notes[-1] and res.notes[-1].endswith("as plain values.")
    assert isinstance(df["team"].dtype, pd.CategoricalDtype)  # the caller's frame is untouched


# --------------------------------------------------------------------------------------------
# layouts people make: messy workbooks with the frame a reader must return


def assert_frame(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_column_type=False)


MESSY_CASES = {
    "everything": {},
    "plain header, side table": {"merged_header": False},
    "no title, no lead column": {"title": False, "lead_col": False},
    "totals only": {"title": False, "note": False, "second_table": "", "tbd_every": 0},
    "second table below": {"second_table": "below"},
    "note only": {"totals": False, "second_table": ""},
}


@pytest.mark.parametrize("case", MESSY_CASES)
def test_messy_workbook(tmp_path: Path, case: str) -> None:
    m = messy_workbook(tmp_path / "m.xlsx", 12, seed=3, **MESSY_CASES[case])
    r = read_table(m.path)
    assert_frame(r.frame, m.frame)
    assert r.header_row == m.header_row
    for phrase in m.notes:
        assert any(phrase in n for n in r.notes), (phrase, r.notes)
    assert all(n[:1].isupper() and n.endswith((".", ")")) for n in r.notes), r.notes
    frame_to_ipc(r.frame)


def test_clean_workbook_has_no_notes(tmp_path: Path) -> None:
    m = clean_workbook(tmp_path / "c.xlsx", 30)
    r = read_table(m.path)
    assert_frame(r.frame, m.frame)
    assert r.notes == [] and r.range == "A1:G31" and r.header_row == 1


def test_messy_overrides(tmp_path: Path) -> None:
    m = messy_workbook(tmp_path / "m.xlsx", 6, seed=1, tbd_every=0)
    # the header row given: the lower header row alone names the columns
    r = read_table(m.path, header_row=m.header_row)
    assert list(r.frame.columns)[:3] == ["Region", "Jul", "Aug"]
    assert len(r.frame) == 6
    # the second table, by its range
    other = next(n for n in read_table(m.path).notes if "more table" in n)
    cells = other.split(": ")[1].split(" ")[0]
    r = read_table(m.path, range=cells)
    assert list(r.frame.columns) == ["Target", "EUR"]
    assert r.frame["EUR"].tolist() == [5000, 4000, 4500]
    # a range that includes the totals row keeps it, with a note
    first, last = m.header_row + 1, m.header_row + 7
    r = read_table(m.path, range=f"B{m.header_row}:H{last}")
    assert len(r.frame) == 7 and r.frame.iloc[-1, 0] == "Total"
    assert any("looks like a totals row; it was kept" in n for n in r.notes)
    assert r.frame.iloc[-1, 1] == pytest.approx(m.frame.iloc[:, 1].sum())
    assert first == m.header_row + 1
    # header_row inside a range; sheet-qualified range
    r = read_table(m.path, range=f"Report!B{m.header_row}:D{m.header_row + 2}")
    assert r.frame.shape == (2, 3) and r.sheet == "Report"


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        ({"range": "5:9"}, "is not an Excel range"),
        ({"range": "E9:A5"}, "is not an Excel range"),
        ({"header_row": 0}, "rows count from 1"),
        ({"header_row": "x"}, "must be a row number"),
        ({"range": "A5:E9", "header_row": 20}, "lies outside the range"),
        ({"range": "Z100:Z200"}, "is blank"),
        ({"sheet": "Nope"}, "not found"),
    ],
)
def test_bad_overrides_are_one_sentence(tmp_path: Path, kwargs: dict, phrase: str) -> None:
    m = messy_workbook(tmp_path / "m.xlsx", 6)
    msg = raises_one_line(LoadError, read_table, m.path, **kwargs)
    assert phrase in msg


def grid_workbook(path: Path, rows: list[list[object]], **sheets: list[list[object]]) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Data"
    for row in rows:
        ws.append(row)
    for name, cells in sheets.items():
        extra = wb.create_sheet(name)
        for row in cells:
            extra.append(row)
    wb.save(path)
    return path


def test_mixed_columns_become_one_type(tmp_path: Path) -> None:
    rows: list[list[object]] = [["id", "amount", "code", "when", "took", "ok"]]
    for i in range(9):
        rows.append(
            [
                i,
                "TBD" if i == 4 else i * 1.5,
                "A7" if i % 2 else i,
                dt.time(9, i),
                dt.timedelta(hours=i),
                bool(i % 2),
            ]
        )
    rows.append([9, "12.5", "x", None, None, None])
    r = read_table(grid_workbook(tmp_path / "mixed.xlsx", rows))
    df = r.frame
    assert df["amount"].dtype == "float64" and np.isnan(df["amount"].iloc[4])
    assert df["amount"].iloc[9] == 12.5  # a number stored as text
    assert any('"amount" holds numbers; 1 cell held' in n and 'B6 ("TBD")' in n for n in r.notes)
    assert any("numbers stored as text" in n and "B11" in n for n in r.notes)
    assert df["code"].tolist()[:3] == ["0", "A7", "2"]  # text dominates: text
    assert df["when"].iloc[1] == dt.time(9, 1)
    assert df["took"].dtype.kind == "m" and df["took"].iloc[2] == pd.Timedelta(hours=2)
    assert df["ok"].tolist()[:2] == [False, True]
    back = frame_from_ipc(frame_to_ipc(df))
    assert back.shape == df.shape


def test_error_cells_read_as_missing_with_a_note(tmp_path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["item", "ratio"])
    ws.append(["a", 0.5])
    ws.append(["b", "#DIV/0!"])  # openpyxl writes a string; the reader treats it as the error
    ws.append(["c", "#N/A"])
    ws.append(["d", 0.25])
    p = tmp_path / "err.xlsx"
    wb.save(p)
    r = read_table(p)
    assert r.frame["ratio"].dtype == "float64"
    assert r.frame["ratio"].isna().tolist() == [False, True, True, False]
    assert any("Excel error values" in n and "B3" in n and "B4" in n for n in r.notes)


def test_empty_first_sheet_then_data(tmp_path: Path) -> None:
    p = grid_workbook(tmp_path / "cover.xlsx", [], Table=[["a", "b"], [1, 2], [3, 4]])
    r = read_table(p)
    assert r.sheet == "Table" and r.frame.shape == (2, 2)
    assert r.notes[0] == 'Read sheet "Table", the first sheet with a table ("Data" is empty).'


def test_cover_page_of_text_then_the_table(tmp_path: Path) -> None:
    cover = [["Annual report 2024"], ["Prepared by Finance"], ["Confidential"]]
    p = grid_workbook(tmp_path / "report.xlsx", cover, Figures=[["k", "v"], ["a", 1], ["b", 2]])
    r = read_table(p)
    assert r.sheet == "Figures" and r.frame["v"].tolist() == [1, 2]
    assert (
        r.notes[0]
        == 'Read sheet "Figures", the first sheet with a table ("Data" holds one column only).'
    )
    r = read_table(grid_workbook(tmp_path / "hdr.xlsx", [["a", "b"]]))
    assert r.frame.shape == (0, 2) and "The table has column names but no rows." in r.notes


def test_several_tables_side_by_side_and_spacer_columns(tmp_path: Path) -> None:
    rows: list[list[object]] = [["name", None, "score", None, None, "k", "v"]]
    for i in range(6):
        rows.append([f"n{i}", None, i, None, None, *(["x", 1] if i < 2 else [None, None])])
    r = read_table(grid_workbook(tmp_path / "two.xlsx", rows))
    assert list(r.frame.columns) == ["name", "score"]  # the spacer column B is dropped
    assert any("Dropped the empty column B" in n for n in r.notes)
    assert any("1 more table: F1:G3 (3 rows)" in n and "--range F1:G3" in n for n in r.notes)


# --------------------------------------------------------------------------------------------
# text where a workbook was promised; CSV edge cases


def test_text_named_xlsx(tmp_path: Path) -> None:
    p = write(tmp_path, "report.xlsx", b"Please find the report attached.\n")
    msg = raises_one_line(LoadError, read_table, p)
    assert msg.startswith("report.xlsx is a text file, not an Excel workbook (it starts with")
    assert "save it as XLSX" in msg
    p = write(tmp_path, "data.xls", b"<html><body><table><tr><td>1</td></tr></table></body></html>")
    msg = raises_one_line(LoadError, read_table, p)
    assert msg.startswith("data.xls is a web page (HTML) saved under a .xls name")
    p = write(tmp_path, "export.xls", b"id\tname\n1\tAnn\n2\tBob\n")
    r = read_table(p)
    assert r.frame.shape == (2, 2) and r.delimiter == "\t"
    assert r.notes[0] == (
        "export.xls is a text file of values separated by tabs, not an Excel workbook despite "
        "its .xls name; it was read as CSV."
    )


def test_csv_quotes_commas_crlf_kept_exactly(tmp_path: Path) -> None:
    data = (
        b'\xef\xbb\xbfname,comment,n\r\n"Smith, J.","He said ""hi""\r\nthen left",1\r\n'
        b'"O\'Brien","a,b,c",2\r\n'
    )
    for engine_hint in ("utf-8", "cp1252"):
        body = data if engine_hint == "utf-8" else data[3:] + "é,x,3\r\n".encode("cp1252")
        r = read_table(write(tmp_path, f"q-{engine_hint}.csv", body))
        assert list(r.frame.columns) == ["name", "comment", "n"]  # BOM gone
        assert r.frame["name"].tolist()[:2] == ["Smith, J.", "O'Brien"]
        assert r.frame["comment"].iloc[0] == 'He said "hi"\r\nthen left'
        assert r.frame["comment"].iloc[1] == "a,b,c"


def test_csv_header_only_and_title_lines(tmp_path: Path) -> None:
    r = read_table(write(tmp_path, "h.csv", b"a,b,c\r\n"))
    assert r.frame.shape == (0, 3) and "The file holds column names but no rows." in r.notes
    text = (
        b"Sales report 2024,,\r\nExported 2025-01-06,,\r\n,,\r\n"
        b"region,q1,q2\r\nEU,1,2\r\nUS,3,4\r\n"
    )
    r = read_table(write(tmp_path, "t.csv", text))
    assert list(r.frame.columns) == ["region", "q1", "q2"] and r.frame["q2"].tolist() == [2, 4]
    assert r.notes[0].startswith('Skipped the title above the header (lines 1-3: "Sales report')
    r = read_table(write(tmp_path, "t2.csv", text), header_row=4, range="A4:B5")
    assert list(r.frame.columns) == ["region", "q1"] and r.frame["q1"].tolist() == [1]


def test_dataframe_with_unencodable_objects_is_fixed() -> None:
    src = pd.DataFrame({"mixed": [1, "TBD", 3.5, None], "t": [dt.time(1), None, dt.time(2), None]})
    src["odd"] = [object(), 1, 2, 3]
    r = read_table(src)
    frame_to_ipc(r.frame)
    assert r.frame["mixed"].dtype == "float64"
    assert any('"mixed" holds numbers' in n and "row 2" in n for n in r.notes)
    assert any('"odd"' in n for n in r.notes)


# --------------------------------------------------------------------------------------------
# through Session.load: what the user types


def test_session_load_messy_workbook_and_ask(
    tmp_path: Path, settings_kwargs: dict, llm: ScriptedLLM
) -> None:
    import dataask

    m = messy_workbook(tmp_path / "sales.xlsx", 12, seed=5)
    s = dataask.Session(**settings_kwargs)
    try:
        ds = s.load(m.path, name="sales")
        assert list(ds.columns) == list(m.frame.columns)
        assert any("Joined the header rows" in n for n in ds.notes)
        llm.on("total revenue in july", "result = df['Revenue (EUR) Jul'].sum()")
        a = s.ask("What is the total revenue in July?")
        assert a.error is None, a.error
        assert a.value == pytest.approx(m.frame["Revenue (EUR) Jul"].sum())
        llm.on("best region", "result = df.nlargest(1, 'Units Jul')['Region'].iloc[0]")
        a = s.ask("Which is the best region by units in July?")
        assert a.value == m.frame.nlargest(1, "Units Jul")["Region"].iloc[0]
        other = s.load(m.path, name="targets", range="J4:K7")
        assert other.frame["EUR"].sum() == 13500
    finally:
        s.close()


def test_random_grids_give_a_table_or_a_sentence() -> None:
    """Layout detection and typing on random sheets: a frame that crosses, or a LoadError."""
    import random

    from dataask_jupyter.readers.coerce import CellError, ensure_arrow, typed_column
    from dataask_jupyter.readers.layout import CellRange, Grid, find_table

    cells = [
        *([""] * 4),
        *("x", "Total", "Source: ERP", "Region", "12", " ", "#DIV/0!"),
        *(1, 2.5, 0.0, 2024, True, float("nan"), CellError("#N/A")),
        *(dt.date(2020, 1, 1), dt.datetime(2021, 2, 3, 4, 5), dt.time(3, 4), dt.timedelta(hours=5)),
    ]
    rng = random.Random(7)
    tables = 0
    for _ in range(400):
        height, width = rng.randint(0, 12), rng.randint(0, 8)
        rows = [[rng.choice(cells) for _ in range(width)] for _ in range(height)]
        merges = []
        for _ in range(rng.randint(0, 3)):
            r1, c1 = rng.randint(0, 12), rng.randint(0, 8)
            merges.append((r1, c1, r1 + rng.randint(0, 2), c1 + rng.randint(0, 3)))
        grid = Grid(rows, rng.randint(0, 3), rng.randint(0, 3), merges)
        options: dict = {}
        if rng.random() < 0.3:
            options["header_row"] = rng.randint(1, 15)
        if rng.random() < 0.3:
            bottom = rng.choice([None, rng.randint(5, 15)])
            right = rng.choice([None, rng.randint(3, 9)])
            options["cells"] = CellRange(rng.randint(0, 5), rng.randint(0, 3), bottom, right)
        try:
            table = find_table(grid, **options)
        except LoadError as exc:
            assert "\n" not in str(exc)
            continue
        notes: list[str] = []
        data = {
            k: typed_column(col, f"c{k}", table.ref(k), notes)
            for k, col in enumerate(table.columns)
        }
        frame = pd.DataFrame(data, index=pd.RangeIndex(len(table.row_numbers)))
        frame.columns = pd.Index([f"c{k}" for k in range(frame.shape[1])], dtype=object)
        frame_to_ipc(ensure_arrow(frame, notes, "sheet"))
        assert len(table.names) == frame.shape[1]
        tables += 1
    assert tables > 150
