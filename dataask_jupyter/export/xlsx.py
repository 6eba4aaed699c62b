"""XLSX writer: one sheet per table, row by row in constant memory (xlsxwriter, else openpyxl's
write-only mode).

Sheet names Excel accepts (31 characters, no ``[]:*?/\\``, unique, not "History"); Excel's row
and column limits checked up front; header row frozen; dates as Excel dates. Text is never written
as a formula; with the guard, text that starts like one is stored with Excel's quote prefix.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import math
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from dataask_jupyter.errors import ExportError
from dataask_jupyter.export.tables import FORMULA_PREFIXES, chunks, column_names, keep_index
from dataask_jupyter.values import format_cell, is_date_only

EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384
EXCEL_MAX_CHARS = 32_767
_SHEET_BAD = re.compile(r"[\[\]\:\*\?\/\\]")
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")
_EXCEL_FIRST_DAY = pd.Timestamp("1900-03-01")  # earlier serials hit Excel's 1900 leap-year bug
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _sheet_name(name: str, used: set[str]) -> str:
    base = _SHEET_BAD.sub("_", _ILLEGAL_XML.sub("", name)).strip().strip("'").strip()
    base = (base or "Sheet")[:31].strip("'") or "Sheet"
    if base.lower() == "history":  # reserved by Excel
        base = "History_"
    cand, k = base, 2
    while cand.lower() in used:
        suffix = f"_{k}"
        cand, k = base[: 31 - len(suffix)] + suffix, k + 1
    used.add(cand.lower())
    return cand


def _excel_values(s: pd.Series) -> tuple[str, list[Any]]:
    """``(kind, values)`` for one column of a chunk: kind is number, date, bool or any."""
    dt = s.dtype
    if ptypes.is_bool_dtype(dt):
        return "bool", [None if v is None or v is pd.NA else bool(v) for v in s.tolist()]
    if ptypes.is_datetime64_any_dtype(dt):
        if isinstance(dt, pd.DatetimeTZDtype):
            s = s.dt.tz_localize(None)  # Excel has no time zones: keep the wall-clock time
        serial = ((s - _EXCEL_EPOCH) / pd.Timedelta(days=1)).to_numpy(dtype=float, na_value=np.nan)
        early = (s < _EXCEL_FIRST_DAY).to_numpy(dtype=bool, na_value=False)
        values: list[Any] = [None if math.isnan(x) else x for x in serial.tolist()]
        if early.any():
            for i in np.flatnonzero(early):
                values[i] = s.iloc[i].isoformat()
        return "date", values
    if ptypes.is_numeric_dtype(dt) and not ptypes.is_complex_dtype(dt):
        raw = s.astype(object).where(s.notna(), None).tolist()
        out: list[Any] = []
        for v in raw:
            if v is None:
                out.append(None)
            elif isinstance(v, float) and not math.isfinite(v):
                out.append(None if math.isnan(v) else ("inf" if v > 0 else "-inf"))
            elif isinstance(v, (int, np.integer)) and abs(int(v)) >= 2**53:
                out.append(str(int(v)))  # beyond a double's exact integers: keep every digit
            else:
                out.append(v.item() if hasattr(v, "item") else v)
        return "number", out
    return "any", s.astype(object).tolist()


def _excel_cell(v: Any) -> Any:
    """A cell of an "any" column as str, number, bool, datetime or None."""
    if v is None or v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return None
        return v if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v) if abs(int(v)) < 2**53 else str(int(v))
    if isinstance(v, (np.floating, decimal.Decimal)):
        return _excel_cell(float(v))
    if isinstance(v, pd.Timestamp):
        ts = v.tz_localize(None) if v.tzinfo is not None else v
        return ts.to_pydatetime() if ts >= _EXCEL_FIRST_DAY else ts.isoformat()
    if isinstance(v, _dt.datetime):
        naive = v.replace(tzinfo=None)
        return naive if naive >= _EXCEL_FIRST_DAY.to_pydatetime() else naive.isoformat()
    if isinstance(v, _dt.date):
        return v if v >= _EXCEL_FIRST_DAY.date() else v.isoformat()
    if isinstance(v, (pd.Timedelta, _dt.timedelta)):
        return str(pd.Timedelta(v))
    return str(v)


def _clean_text(v: str) -> str:
    v = _ILLEGAL_XML.sub("", v)
    return v if len(v) <= EXCEL_MAX_CHARS else v[: EXCEL_MAX_CHARS - 1] + "…"


def check_excel_size(name: str, frame: pd.DataFrame) -> None:
    rows = len(frame) + 1
    cols = frame.shape[1] + (frame.index.nlevels if keep_index(frame) else 0)
    if rows > EXCEL_MAX_ROWS or cols > EXCEL_MAX_COLUMNS:
        raise ExportError(
            f"table {name!r} is {len(frame):,} rows x {cols:,} columns: over Excel's "
            f"{EXCEL_MAX_ROWS - 1:,} data rows x {EXCEL_MAX_COLUMNS:,} columns; export .csv instead"
        )


def _widths(frame: pd.DataFrame, names: list[str]) -> list[float]:
    head = next(chunks(frame.iloc[:100], 100, guard=False), pd.DataFrame())
    widths = []
    for i, n in enumerate(names):
        longest = len(n)
        if i < head.shape[1]:
            for v in head.iloc[:, i].tolist():
                longest = max(longest, len(format_cell(v) or ""))
        widths.append(float(min(max(longest + 2, 8), 60)))
    return widths


def write_xlsx(tables: dict[str, pd.DataFrame], path: Path, guard: bool, chunk_rows: int) -> None:
    for name, t in tables.items():
        check_excel_size(name, t)
    try:
        import xlsxwriter  # noqa: F401
    except ImportError:
        _xlsx_openpyxl(tables, path, guard, chunk_rows)
    else:
        _xlsx_xlsxwriter(tables, path, guard, chunk_rows)


def _date_formats(frame: pd.DataFrame) -> list[bool]:
    """Per output column: True for datetime columns with dates only (no time of day)."""
    out = []
    if keep_index(frame):
        for i in range(frame.index.nlevels):
            out.append(is_date_only(pd.Series(frame.index.get_level_values(i), copy=False)))
    out += [is_date_only(frame.iloc[:, i]) for i in range(frame.shape[1])]
    return out


def _xlsx_xlsxwriter(
    tables: dict[str, pd.DataFrame], path: Path, guard: bool, chunk_rows: int
) -> None:
    import xlsxwriter

    # xlsxwriter's scratch files go in a folder of ours, removed whatever happens (on a full
    # disk xlsxwriter leaves its own temporary folder behind)
    scratch = tempfile.mkdtemp(prefix=".dataask-xlsx-", dir=path.parent)
    try:
        _xlsxwriter_book(xlsxwriter, tables, path, guard, chunk_rows, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _xlsxwriter_book(
    xlsxwriter: Any,
    tables: dict[str, pd.DataFrame],
    path: Path,
    guard: bool,
    chunk_rows: int,
    scratch: str,
) -> None:
    wb = xlsxwriter.Workbook(
        str(path),
        {
            "constant_memory": True,  # rows go to disk as written
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
            "tmpdir": scratch,
        },
    )
    try:
        header_fmt = wb.add_format({"bold": True, "bottom": 1})
        header_quoted = wb.add_format({"bold": True, "bottom": 1, "quote_prefix": True})
        quoted = wb.add_format({"quote_prefix": True})
        date_fmt = wb.add_format({"num_format": "yyyy-mm-dd"})
        stamp_fmt = wb.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        used: set[str] = set()
        for name, frame in tables.items():
            ws = wb.add_worksheet(_sheet_name(name, used))
            names = column_names(frame, keep_index(frame))
            for c, width in enumerate(_widths(frame, names)):
                ws.set_column(c, c, width)
            ws.freeze_panes(1, 0)
            for c, n in enumerate(names):
                text = _clean_text(n)
                ws.write_string(
                    0, c, text, header_quoted if text.startswith(FORMULA_PREFIXES) else header_fmt
                )
            date_only = _date_formats(frame)
            row = 1
            for chunk in chunks(frame, chunk_rows, guard=False):
                cols = [_excel_values(chunk.iloc[:, i]) for i in range(chunk.shape[1])]
                for r in range(len(chunk)):
                    for c, (kind, values) in enumerate(cols):
                        v = values[r]
                        if v is None:
                            continue
                        if kind == "any":
                            v = _excel_cell(v)
                            if v is None:
                                continue
                        if isinstance(v, str):
                            v = _clean_text(v)
                            fmt = quoted if guard and v.startswith(FORMULA_PREFIXES) else None
                            ws.write_string(row, c, v, fmt)
                        elif kind == "date":
                            ws.write_number(row, c, v, date_fmt if date_only[c] else stamp_fmt)
                        elif isinstance(v, bool):
                            ws.write_boolean(row, c, v)
                        elif isinstance(v, (int, float)):
                            ws.write_number(row, c, v)
                        elif isinstance(v, (_dt.datetime, _dt.date)):
                            ws.write_datetime(
                                row, c, v, stamp_fmt if isinstance(v, _dt.datetime) else date_fmt
                            )
                        else:
                            ws.write_string(row, c, _clean_text(str(v)))
                    row += 1
    finally:
        wb.close()


def _xlsx_openpyxl(
    tables: dict[str, pd.DataFrame], path: Path, guard: bool, chunk_rows: int
) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    wb = Workbook(write_only=True)
    used: set[str] = set()
    for name, frame in tables.items():
        ws = wb.create_sheet(_sheet_name(name, used))
        names = column_names(frame, keep_index(frame))
        ws.freeze_panes = "A2"

        def text_cell(v: str, bold: bool = False, ws: Any = ws) -> Any:
            cell = WriteOnlyCell(ws, value=_clean_text(v))
            cell.data_type = "s"  # never a formula
            if guard and v.startswith(FORMULA_PREFIXES):
                cell.quotePrefix = True
            if bold:
                cell.font = Font(bold=True)
            return cell

        ws.append([text_cell(n, bold=True) for n in names])
        date_only = _date_formats(frame)
        for chunk in chunks(frame, chunk_rows, guard=False):
            cols = [_excel_values(chunk.iloc[:, i]) for i in range(chunk.shape[1])]
            for r in range(len(chunk)):
                out: list[Any] = []
                for c, (kind, values) in enumerate(cols):
                    v = values[r]
                    if kind == "any":
                        v = _excel_cell(v)
                    if isinstance(v, str):
                        out.append(text_cell(v))
                    elif kind == "date" and v is not None:
                        cell = WriteOnlyCell(ws, value=v)
                        cell.number_format = "yyyy-mm-dd" if date_only[c] else "yyyy-mm-dd hh:mm:ss"
                        out.append(cell)
                    else:
                        out.append(v)
                ws.append(out)
    wb.save(path)
