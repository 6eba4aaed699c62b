"""The "load" stage: read CSV / Excel / ODS / parquet files (or take a DataFrame) into a DataFrame.

The format is decided by content (magic bytes), never by the file's suffix. Workbook sheets go
through layout detection (title rows, header rows, totals, several tables; see ``layout``) and
column typing (``coerce``); every decision is a sentence in ``ReadResult.notes``. Every frame
returned encodes as Arrow IPC (how it crosses to the sandbox). Every failure is one of the typed
exceptions of :mod:`dataask_jupyter.errors`, with a one-line message that names the file.

Modules: ``detect`` (format by content), ``csvfile`` (delimited text), ``workbook`` (sheets and
cells), ``layout`` (where the table is), ``coerce`` (column types, the Arrow guarantee),
``columns`` (names, ISO dates), ``common`` (the result type, file checks).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pandas as pd

from dataask_jupyter.errors import CorruptFileError, DataaskError, EmptyFileError, LoadError

from .coerce import ensure_arrow
from .columns import clean_columns, finish, plain_categoricals
from .common import ReadResult, cap_notes, check_file, display, one_line, read_head
from .csvfile import read_csv, text_table_shape
from .detect import detect, detect_format, unsupported
from .layout import CellRange, parse_range
from .workbook import WORKBOOK_FORMATS, list_workbook_sheets, read_workbook

__all__ = ["ReadResult", "detect_format", "list_sheets", "read_table"]

#: Suffixes that promise a workbook; text behind one of them gets a sentence, not a silent table.
_WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".xltx", ".xltm", ".ods")


def list_sheets(path: str | os.PathLike[str]) -> list[str]:
    """All sheet names of a workbook, in order; [] for CSV and parquet files."""
    p = os.fspath(path)
    check_file(p, None)
    fmt = detect(p, read_head(p))
    if fmt not in WORKBOOK_FORMATS:
        return []
    return list_workbook_sheets(p, fmt)


def _read_parquet(path: str) -> ReadResult:
    name = display(path)
    try:
        df = pd.read_parquet(path, engine="pyarrow")
    except Exception as exc:
        raise CorruptFileError(f"{name} could not be read as parquet ({one_line(exc)})") from None
    if df.shape[1] == 0:
        raise EmptyFileError(f"{name} holds no columns")
    notes: list[str] = []
    df = finish(df, notes)
    plain_categoricals(df, notes)
    df = ensure_arrow(df, notes, name)
    return ReadResult(frame=df, format="parquet", engine="pyarrow", notes=cap_notes(notes))


def _read_dataframe(source: pd.DataFrame) -> ReadResult:
    notes: list[str] = []
    frame = source.copy()
    frame.columns = pd.Index(clean_columns(list(frame.columns), None, notes), dtype=object)
    plain_categoricals(frame, notes)
    frame = ensure_arrow(frame, notes, "the DataFrame")
    return ReadResult(frame=frame, format="dataframe", engine="copy", notes=cap_notes(notes))


def _text_behind_workbook_suffix(path: str, head: bytes, size: int) -> str:
    """Text in a file named like a workbook: say so, and read it only if it is a real table."""
    name = display(path)
    suffix = os.path.splitext(path)[1].lower()
    shape = text_table_shape(path, head, size)
    if shape is None:
        raise unsupported(name, "a binary file")
    kind, columns, rows, first = shape
    if kind == "html":
        raise LoadError(
            f"{name} is a web page (HTML) saved under a {suffix} name, not a workbook; "
            "open it in Excel and save it as XLSX, or export the data as CSV"
        )
    if columns >= 2 and rows >= 1:
        return (
            f"{name} is a text file of values separated by {kind}, not an Excel workbook "
            f"despite its {suffix} name; it was read as CSV."
        )
    raise LoadError(
        f"{name} is a text file, not an Excel workbook (it starts with {first!r}); "
        "open the original in Excel and save it as XLSX, or save the data as CSV"
    )


def read_table(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    sheet: str | int | None = None,
    header_row: int | None = None,
    range: str | None = None,
    max_bytes: int = 1 << 30,
    max_uncompressed_bytes: int = 2 << 30,
) -> ReadResult:
    """Read a CSV / XLSX / XLSM / XLSB / XLS / ODS / parquet file, or copy a DataFrame.

    ``sheet``: a workbook sheet by name or 0-based index; None reads the first visible sheet
    that holds a table. ``header_row``: the row (1-based, as Excel numbers it) holding the column
    names, instead of the detected one. ``range``: the cells to read, Excel style ("A5:E9",
    "A:E", "Sheet2!A5:E9"); its first row names the columns unless ``header_row`` says otherwise.
    ``max_bytes`` caps the file size, ``max_uncompressed_bytes`` the unpacked size of a zipped
    workbook. Raises the LoadError subclasses of :mod:`dataask_jupyter.errors`, one-line messages.
    """
    if header_row is not None and (isinstance(header_row, bool) or not isinstance(header_row, int)):
        raise LoadError(f"header_row must be a row number (1 = the first row), not {header_row!r}")
    if header_row is not None and header_row < 1:
        raise LoadError(f"header_row {header_row} is not a row number; rows count from 1 in Excel")
    cells: CellRange | None = parse_range(range) if range is not None else None
    if (
        cells is not None
        and header_row is not None
        and (header_row - 1 < cells.r1 or (cells.r2 is not None and header_row - 1 > cells.r2))
    ):
        raise LoadError(f"header_row {header_row} lies outside the range {range}")
    if isinstance(source, pd.DataFrame):
        return _guarded("the DataFrame", _read_dataframe, source)
    if not isinstance(source, (str, os.PathLike)):
        raise LoadError(
            f"cannot load a {type(source).__name__}; give a file path or a pandas DataFrame"
        )
    path = os.fspath(source)
    return _guarded(
        display(path),
        _read_file,
        path,
        sheet,
        header_row,
        cells,
        max_bytes,
        max_uncompressed_bytes,
    )


def _guarded(label: str, fn: Callable[..., ReadResult], *args: Any) -> ReadResult:
    """Run a reader; whatever goes wrong leaves as a DataaskError sentence, never a traceback."""
    try:
        return fn(*args)
    except DataaskError:
        raise
    except MemoryError:
        raise LoadError(
            f"{label} is too big to load in the memory this kernel has; "
            "load a part of it with --range, or save a smaller extract"
        ) from None
    except Exception as exc:
        raise CorruptFileError(
            f"{label} could not be read ({type(exc).__name__}: {one_line(exc, 100)}); "
            "open it in Excel and save it as XLSX or CSV, or give the table's cells with --range"
        ) from None


def _read_file(
    path: str,
    sheet: str | int | None,
    header_row: int | None,
    cells: CellRange | None,
    max_bytes: int,
    max_uncompressed_bytes: int,
) -> ReadResult:
    size = check_file(path, max_bytes)
    head = read_head(path)
    fmt = detect(path, head)
    if fmt in WORKBOOK_FORMATS:
        return read_workbook(
            path, fmt, sheet, max_uncompressed_bytes, header_row=header_row, cells=cells
        )
    lead: list[str] = []
    tail: list[str] = []
    if fmt == "csv" and os.path.splitext(path)[1].lower() in _WORKBOOK_SUFFIXES:
        lead.append(_text_behind_workbook_suffix(path, head, size))
    if fmt == "csv":
        result = read_csv(path, head, size, header_row=header_row, cells=cells)
    else:
        result = _read_parquet(path)
        if header_row is not None or cells is not None:
            tail.append("A parquet file has named columns; header_row and range were ignored.")
    if sheet is not None:
        tail.append(f"Ignored sheet={sheet!r}: a {fmt} file has no sheets.")
    result.notes[:0] = lead
    result.notes.extend(tail)
    return result
