"""Workbooks (XLSX, XLSM, XLSB, XLS, ODS): pick the sheet, read its cells, find and type the table.

Cells are read with python-calamine (every format); openpyxl (XLSX/XLSM) and xlrd (XLS) step in
when calamine cannot read a file. Dates come out right for 1900- and 1904-based workbooks and
formulas as their cached values. Calamine reads Excel error cells as blank, so when the table has
blank cells the sheet is scanned for error values to name them in the notes.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dataask_jupyter.errors import (
    CorruptFileError,
    EmptyFileError,
    EncryptedFileError,
    FileTooLargeError,
    LoadError,
    SheetNotFoundError,
)

from .coerce import ERROR_CODES, CellError, ensure_arrow, typed_column
from .columns import clean_columns, parse_dates
from .common import ReadResult, cap_notes, display, human_bytes, one_line, quote, sheet_list
from .layout import CellRange, Grid, Table, find_table

WORKBOOK_FORMATS = ("xlsx", "xlsm", "xlsb", "xls", "ods")
_ZIPPED = ("xlsx", "xlsm", "xlsb", "ods")
#: A deflate stream cannot expand more than ~1032x; genuine workbook XML expands 2-20x.
MAX_ZIP_RATIO = 250
ZIP_RATIO_GRACE = 16 << 20
_ENCRYPTED_RE = re.compile(r"password|encrypt", re.IGNORECASE)
_SAVE_AGAIN = {"ods": "open it in LibreOffice or Excel and save it again"}


@dataclass(frozen=True)
class SheetInfo:
    name: str
    visibility: str  # "visible" | "hidden" | "very hidden"
    worksheet: bool = True  # False for chart sheets, dialogs, macros


# --------------------------------------------------------------------------------------------
# opening


def check_zip_size(path: str, max_uncompressed: int) -> None:
    """Refuse zip bombs and over-size packages before any XML is parsed."""
    name = display(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CorruptFileError(
            f"{name} is a damaged or truncated workbook ({one_line(exc)}); "
            "open it in Excel and save it again"
        ) from None
    total = sum(i.file_size for i in infos)
    if total > max_uncompressed:
        raise FileTooLargeError(
            f"{name} expands to {human_bytes(total)} uncompressed, over the "
            f"{human_bytes(max_uncompressed)} cap; raise the setting Ask.max_uncompressed_bytes "
            "if the file is genuine"
        )
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > ZIP_RATIO_GRACE and ratio > MAX_ZIP_RATIO:
            raise FileTooLargeError(
                f"{name} looks like a zip bomb: {info.filename} expands {ratio:,.0f}x "
                f"({human_bytes(info.compress_size)} to {human_bytes(info.file_size)}); "
                "workbooks do not compress like that"
            )


def workbook_error(name: str, fmt: str, exc: BaseException) -> LoadError:
    """A one-sentence LoadError for whatever an engine raised."""
    if isinstance(exc, LoadError):
        return exc
    text = f"{type(exc).__name__}: {exc}"
    if _ENCRYPTED_RE.search(text):
        return EncryptedFileError(
            f"{name} is password-protected; remove the password in Excel and save again"
        )
    advice = _SAVE_AGAIN.get(fmt, "open it in Excel and save it again")
    return CorruptFileError(
        f"{name} could not be read as {fmt.upper()} ({one_line(exc)}); {advice}"
    )


class _Book:
    """One open workbook: its sheets and a grid of cells per sheet."""

    engine = ""

    def __init__(self, path: str) -> None:
        self.sheets: list[SheetInfo] = []

    def grid(self, sheet: str) -> Grid:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        return None


_VISIBILITY = {"Visible": "visible", "Hidden": "hidden", "VeryHidden": "very hidden"}


class _CalamineBook(_Book):
    engine = "calamine"

    def __init__(self, path: str) -> None:
        import python_calamine as pcal

        super().__init__(path)
        self.book = pcal.CalamineWorkbook.from_path(path)
        for meta in self.book.sheets_metadata:
            vis = _VISIBILITY.get(str(meta.visible).rsplit(".", 1)[-1], "visible")
            is_sheet = meta.typ == pcal.SheetTypeEnum.WorkSheet
            self.sheets.append(SheetInfo(str(meta.name), vis, is_sheet))

    def grid(self, sheet: str) -> Grid:
        sh = self.book.get_sheet_by_name(sheet)
        rows = sh.to_python(skip_empty_area=True)
        top, left = sh.start or (0, 0)
        merges = [(a[0], a[1], b[0], b[1]) for a, b in (sh.merged_cell_ranges or [])]
        return Grid(rows, top, left, merges)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.book.close()


class _OpenpyxlBook(_Book):
    engine = "openpyxl"

    def __init__(self, path: str) -> None:
        import openpyxl

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        states = {"visible": "visible", "hidden": "hidden", "veryHidden": "very hidden"}
        self.sheets = [
            SheetInfo(ws.title, states.get(ws.sheet_state, "visible"), hasattr(ws, "iter_rows"))
            for ws in self.book.worksheets
        ]

    def grid(self, sheet: str) -> Grid:
        ws = self.book[sheet]
        rows = []
        for row in ws.iter_rows(values_only=True):
            rows.append(["" if v is None else _openpyxl_cell(v) for v in row])
        width = max((len(r) for r in rows), default=0)
        return Grid([r + [""] * (width - len(r)) for r in rows])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.book.close()


def _openpyxl_cell(v: Any) -> Any:
    if isinstance(v, str) and v.strip() in ERROR_CODES:
        return CellError(v.strip())
    return v


class _XlrdBook(_Book):
    engine = "xlrd"

    def __init__(self, path: str) -> None:
        import xlrd

        super().__init__(path)
        self.book = xlrd.open_workbook(path, on_demand=True, logfile=io.StringIO())
        vis = {0: "visible", 1: "hidden", 2: "very hidden"}
        for i, name in enumerate(self.book.sheet_names()):
            sh = self.book.sheet_by_index(i)
            self.sheets.append(SheetInfo(str(name), vis.get(sh.visibility, "visible")))

    def grid(self, sheet: str) -> Grid:
        sh = self.book.sheet_by_name(sheet)
        rows = [list(_xlrd_row(self.book, sh, r)) for r in range(sh.nrows)]
        width = max((len(r) for r in rows), default=0)
        return Grid([r + [""] * (width - len(r)) for r in rows])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.book.release_resources()


def _xlrd_row(book: Any, sh: Any, r: int) -> Iterator[Any]:
    import xlrd

    for cell in sh.row(r):
        t, v = cell.ctype, cell.value
        if t in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
            yield ""
        elif t == xlrd.XL_CELL_DATE:
            try:
                d = xlrd.xldate.xldate_as_datetime(v, book.datemode)
                yield d.time() if v < 1 else d
            except (ValueError, OverflowError, xlrd.xldate.XLDateError):
                yield v
        elif t == xlrd.XL_CELL_BOOLEAN:
            yield bool(v)
        elif t == xlrd.XL_CELL_ERROR:
            yield CellError(xlrd.error_text_from_code.get(v, "#N/A"))
        else:
            yield v


_FALLBACKS: dict[str, tuple[type[_Book], ...]] = {
    "xlsx": (_CalamineBook, _OpenpyxlBook),
    "xlsm": (_CalamineBook, _OpenpyxlBook),
    "xlsb": (_CalamineBook,),
    "xls": (_CalamineBook, _XlrdBook),
    "ods": (_CalamineBook,),
}


def _open(path: str, fmt: str, skip: tuple[str, ...] = ()) -> _Book:
    name = display(path)
    first: BaseException | None = None
    for cls in _FALLBACKS[fmt]:
        if cls.engine in skip:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return cls(path)
        except Exception as exc:
            err = workbook_error(name, fmt, exc)
            if isinstance(err, EncryptedFileError):
                raise err from None
            first = first or exc
    assert first is not None
    raise workbook_error(name, fmt, first) from None


# --------------------------------------------------------------------------------------------
# choosing the sheet


def _resolve_sheet(name: str, sheets: list[str], sheet: str | int) -> str:
    if isinstance(sheet, bool) or not isinstance(sheet, (int, str)):
        raise SheetNotFoundError(
            f"Sheet {sheet!r} not valid for {name}; give a sheet name or a 0-based index; "
            f"sheets: {sheet_list(sheets)}",
            sheets,
        )
    if isinstance(sheet, int):
        if 0 <= sheet < len(sheets):
            return sheets[sheet]
        raise SheetNotFoundError(
            f"Sheet {sheet} not found in {name} (0-based index, {len(sheets)} sheet"
            f"{'s' if len(sheets) != 1 else ''}); sheets: {sheet_list(sheets)}",
            sheets,
        )
    if sheet in sheets:
        return sheet
    folded = [s for s in sheets if s.strip().casefold() == sheet.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    if sheet.strip().isdigit() and int(sheet) < len(sheets):  # "--sheet 1" from a command line
        return sheets[int(sheet)]
    raise SheetNotFoundError(
        f"Sheet {quote(sheet)} not found in {name}; sheets: {sheet_list(sheets)}", sheets
    )


def _has_cells(grid: Grid) -> bool:
    return any(len(r) - r.count("") - r.count(None) > 0 for r in grid.rows)


@dataclass
class _Read:
    sheet: str
    grid: Grid
    table: Table


def _read_sheet(
    book: _Book, name: str, sheet: str, header_row: int | None, cells: CellRange | None
) -> _Read:
    grid = book.grid(sheet)
    if not _has_cells(grid):
        raise EmptyFileError(f"Sheet {quote(sheet)} in {name} is empty")
    try:
        table = find_table(grid, header_row=header_row, cells=cells)
    except LoadError as exc:
        raise LoadError(f"Sheet {quote(sheet)} in {name}: {exc}") from None
    return _Read(sheet, grid, table)


def _pick(
    book: _Book,
    name: str,
    sheet: str | int | None,
    header_row: int | None,
    cells: CellRange | None,
    notes: list[str],
) -> _Read:
    names = [s.name for s in book.sheets]
    if not names:
        raise EmptyFileError(f"{name} has no sheets")
    if cells is not None and cells.sheet and sheet is None:
        sheet = cells.sheet
    if sheet is not None:
        target = _resolve_sheet(name, names, sheet)
        if isinstance(sheet, str) and target != sheet:
            how = "name" if target.strip().casefold() == sheet.strip().casefold() else "index"
            notes.append(f"Read sheet {quote(target)} for the sheet {how} {quote(sheet)}.")
        info = next(s for s in book.sheets if s.name == target)
        if not info.worksheet:
            raise LoadError(f"Sheet {quote(target)} in {name} is a chart, not a table of cells")
        return _read_sheet(book, name, target, header_row, cells)
    visible = [s.name for s in book.sheets if s.visibility == "visible" and s.worksheet]
    empty: list[str] = []
    single: list[str] = []  # sheets of one column (lists, text lines)
    fallback: _Read | None = None
    for candidate in visible:
        try:
            read = _read_sheet(book, name, candidate, header_row, cells)
        except EmptyFileError:
            empty.append(candidate)
            continue
        except LoadError:
            if header_row is not None or cells is not None:
                raise
            continue
        if read.table.row_numbers and len(read.table.names) >= 2:
            break  # a table: rows under a header, several columns
        if read.table.row_numbers:
            single.append(candidate)
        if fallback is None or (read.table.row_numbers and not fallback.table.row_numbers):
            fallback = read  # a cover page of text lines, or a header without rows
    else:
        if fallback is None:
            hidden = [s.name for s in book.sheets if s.visibility != "visible" and s.worksheet]
            if hidden:
                raise EmptyFileError(
                    f"{name} shows no data: its visible sheets are empty; hidden sheets: "
                    f"{sheet_list(hidden)}; load one with --sheet NAME"
                )
            raise EmptyFileError(
                f"{name} holds no data: "
                + (
                    f"its sheet {quote(names[0])} is empty"
                    if len(names) == 1
                    else f"all its sheets are empty ({sheet_list(names)})"
                )
            )
        read = fallback
    skipped = names[: names.index(read.sheet)]
    if skipped:
        why = []
        for s in skipped:
            if s in empty:
                why.append(f"{quote(s)} is empty")
            elif s not in visible:
                info = next(i for i in book.sheets if i.name == s)
                why.append(f"{quote(s)} is {info.visibility if info.worksheet else 'a chart'}")
            else:
                why.append(
                    f"{quote(s)} holds " + ("one column only" if s in single else "no table")
                )
        shown = "; ".join(why[:5]) + ("; …" if len(why) > 5 else "")
        notes.append(f"Read sheet {quote(read.sheet)}, the first sheet with a table ({shown}).")
    return read


# --------------------------------------------------------------------------------------------
# Excel error values (calamine reads them as blank cells)


_ERROR_CELL_RE = re.compile(rb'<c\b([^>]*\bt="e"[^>]*)>(.*?)</c>', re.S)
_REF_RE = re.compile(rb'\br="([A-Z]+)(\d+)"')
_V_RE = re.compile(rb"<v>([^<]*)</v>")


def _xlsx_sheet_member(zf: zipfile.ZipFile, sheet: str) -> str | None:
    import xml.etree.ElementTree as ET

    ns_main = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    ns_rel = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
    wb = ET.fromstring(zf.read("xl/workbook.xml"))
    rid = None
    for el in wb.iter(f"{ns_main}sheet"):
        if el.get("name") == sheet:
            rid = el.get(f"{ns_rel}id")
    if rid is None:
        return None
    rels = ET.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
    for el in rels:
        if el.get("Id") == rid:
            target = el.get("Target", "")
            return target.lstrip("/") if target.startswith("/") else "xl/" + target
    return None


def _error_cells(path: str, fmt: str, sheet: str) -> dict[tuple[int, int], str]:
    """(0-based row, column) -> error value of every error cell of ``sheet``; {} if unknown."""
    from .layout import col_index

    found: dict[tuple[int, int], str] = {}
    try:
        if fmt in ("xlsx", "xlsm"):
            with zipfile.ZipFile(path) as zf:
                member = _xlsx_sheet_member(zf, sheet)
                if member is None:
                    return {}
                xml = zf.read(member)
            for m in _ERROR_CELL_RE.finditer(xml):
                ref, v = _REF_RE.search(m.group(1)), _V_RE.search(m.group(2))
                if ref:
                    code = v.group(1).decode("utf-8", "replace") if v else "#N/A"
                    found[(int(ref.group(2)) - 1, col_index(ref.group(1).decode()))] = code
        elif fmt == "xls":
            import xlrd

            book = xlrd.open_workbook(path, on_demand=True, logfile=io.StringIO())
            try:
                sh = book.sheet_by_name(sheet)
                for r in range(sh.nrows):
                    for c, t in enumerate(sh.row_types(r)):
                        if t == xlrd.XL_CELL_ERROR:
                            code = xlrd.error_text_from_code.get(sh.cell_value(r, c), "#N/A")
                            found[(r, c)] = code
            finally:
                book.release_resources()
    except Exception:
        return {}  # naming error cells is a courtesy; they read as missing either way
    return found


def _only_errors(path: str, fmt: str, name: str, book: _Book) -> None:
    """Raise a clearer EmptyFileError when the blank-looking sheet holds only error values."""
    first = next((s.name for s in book.sheets if s.worksheet), None)
    errors = _error_cells(path, fmt, first) if first and book.engine == "calamine" else {}
    if errors:
        codes = ", ".join(sorted(set(errors.values()))[:6])
        raise EmptyFileError(
            f"{name} holds no data: the cells of sheet {quote(first)} hold only Excel error "
            f"values ({codes}); fix the formulas in Excel, save, and load it again"
        )


def _mark_errors(path: str, fmt: str, read: _Read, engine: str) -> None:
    if engine != "calamine" or fmt not in ("xlsx", "xlsm", "xls"):
        return
    table = read.table
    if not any("" in col for col in table.columns):
        return
    errors = _error_cells(path, fmt, read.sheet)
    if not errors:
        return
    row_pos = {n - 1: i for i, n in enumerate(table.row_numbers)}
    col_pos = {c: k for k, c in enumerate(table.col_numbers)}
    for (r, c), code in errors.items():
        i, k = row_pos.get(r), col_pos.get(c)
        if i is not None and k is not None and table.columns[k][i] == "":
            table.columns[k][i] = CellError(code)


# --------------------------------------------------------------------------------------------
# the entry point


def read_workbook(
    path: str,
    fmt: str,
    sheet: str | int | None,
    max_uncompressed: int,
    header_row: int | None = None,
    cells: CellRange | None = None,
) -> ReadResult:
    """Read the table of one sheet of a workbook (see the module docstring)."""
    name = display(path)
    if fmt in _ZIPPED:
        check_zip_size(path, max_uncompressed)
    notes: list[str] = []
    book = _open(path, fmt)
    try:
        try:
            read = _pick(book, name, sheet, header_row, cells, notes)
        except EmptyFileError:
            _only_errors(path, fmt, name, book)
            raise
        except LoadError:
            raise
        except Exception as exc:
            err = workbook_error(name, fmt, exc)
            if len(_FALLBACKS[fmt]) < 2 or book.engine != "calamine":
                raise err from None
            book.close()
            notes.clear()
            book = _open(path, fmt, skip=("calamine",))
            read = _pick(book, name, sheet, header_row, cells, notes)
        sheets = [s.name for s in book.sheets]
        hidden = {s.name: s.visibility for s in book.sheets if s.visibility != "visible"}
        engine = book.engine
    finally:
        book.close()
    _mark_errors(path, fmt, read, engine)
    table = read.table
    notes.extend(table.notes)
    if hidden:
        listed = ", ".join(f"{quote(n)} ({v})" for n, v in hidden.items())
        notes.append(f"The workbook also has hidden sheets: {listed}; load one with --sheet NAME.")
    frame = _frame(table, notes)
    parse_dates(frame, notes)
    if len(frame) == 0:
        notes.append("The table has column names but no rows.")
    frame = ensure_arrow(frame, notes, name)
    return ReadResult(
        frame=frame,
        format=fmt,
        sheets=sheets,
        sheet=read.sheet,
        engine=engine,
        notes=cap_notes(notes),
        hidden_sheets=hidden,
        range=table.range,
        header_row=table.header_row,
    )


def _frame(table: Table, notes: list[str]) -> pd.DataFrame:
    names = clean_columns(table.names, None, notes)
    data = {
        k: typed_column(col, names[k], table.ref(k), notes) for k, col in enumerate(table.columns)
    }
    frame = pd.DataFrame(data, index=pd.RangeIndex(len(table.row_numbers)))
    frame.columns = pd.Index(names, dtype=object)
    return frame


def list_workbook_sheets(path: str, fmt: str) -> list[str]:
    """All sheet names of a workbook, in order."""
    book = _open(path, fmt)
    try:
        return [s.name for s in book.sheets]
    finally:
        book.close()
