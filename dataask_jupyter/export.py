"""The export stage: write an answer's value as CSV, JSON, XLSX or PNG (format from the suffix).

- CSV and JSON stream in chunks of rows; XLSX is written row by row in constant memory (xlsxwriter,
  else openpyxl's write-only mode). Every file is written beside the target and renamed into
  place, so a failed export never leaves half a file.
- JSON is an array of records (a table's meaningful index becomes columns), dates in ISO 8601.
- XLSX: one sheet per table (a dict or list of tables gives several), sheet names Excel accepts
  (31 characters, no ``[]:*?/\\``, unique, not "History"), Excel's row and column limits checked
  up front, header row frozen.
- Formula injection: text cells starting with ``= + - @``, tab or CR are neutralised unless
  ``formula_guard=False``: in CSV they get a leading apostrophe; in XLSX they are stored as text
  with Excel's quote prefix (the value is unchanged and never evaluated, even when edited). XLSX
  text is never written as a formula, guard or not.
- PNG: charts through plotly + kaleido (which drives a Chrome/Chromium installed on the system);
  tables and scalars are drawn as a table image the same way (matplotlib when there is no
  browser); a PNG the sandbox made is written as it is.
"""

from __future__ import annotations

import csv
import datetime as _dt
import decimal
import io
import json
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from dataask_jupyter.errors import ExportError
from dataask_jupyter.render import format_cell, is_date_only, is_figure
from dataask_jupyter.results import PngImage

FORMATS = ("csv", "json", "xlsx", "png")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384
EXCEL_MAX_CHARS = 32_767
CHUNK_ROWS = 50_000
PNG_TABLE_ROWS = 40
_SHEET_BAD = re.compile(r"[\[\]\:\*\?\/\\]")
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")
_EXCEL_FIRST_DAY = pd.Timestamp("1900-03-01")  # earlier serials hit Excel's 1900 leap-year bug
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")

__all__ = [
    "FORMATS",
    "FORMULA_PREFIXES",
    "ExportError",
    "export_value",
    "neutralise_formulas",
    "tables_of",
    "to_frame",
]


# --- shaping values into tables ---------------------------------------------------------------
def to_frame(value: Any) -> pd.DataFrame:
    """A table view of any answer value (scalars become a one-cell table)."""
    if isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, pd.Series):
        return value.to_frame(name="value" if value.name is None else value.name)
    if isinstance(value, dict):
        return pd.DataFrame({"key": list(value), "value": list(value.values())})
    if isinstance(value, (list, tuple)):
        return pd.DataFrame({"value": list(value)})
    return pd.DataFrame({"value": [value]})


def _is_table(v: Any) -> bool:
    return isinstance(v, (pd.DataFrame, pd.Series))


def tables_of(value: Any, name: str = "answer") -> dict[str, pd.DataFrame]:
    """Name -> table: several for a dict or list of DataFrames/Series, else one named ``name``."""
    if isinstance(value, dict) and value and all(_is_table(v) for v in value.values()):
        return {str(k): to_frame(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and value and all(_is_table(v) for v in value):
        return {f"{name} {i + 1}": to_frame(v) for i, v in enumerate(value)}
    return {name: to_frame(value)}


def _guard_text(v: Any) -> Any:
    if isinstance(v, str) and v.startswith(FORMULA_PREFIXES):
        return "'" + v
    return v


def _guard_series(s: pd.Series) -> pd.Series:
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        return s.cat.rename_categories(lambda c: _guard_text(c))
    if ptypes.is_string_dtype(dt) and not ptypes.is_object_dtype(dt):
        hit = s.str.startswith(FORMULA_PREFIXES).fillna(False).astype(bool)
        return s.mask(hit, "'" + s) if hit.any() else s
    if ptypes.is_object_dtype(dt):
        return s.map(_guard_text)
    return s


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with an apostrophe before text cells (and column names, and index labels) that a
    spreadsheet would run as a formula: those starting with = + - @, tab or CR."""
    out = frame.copy()
    for i in range(out.shape[1]):
        out.isetitem(i, _guard_series(out.iloc[:, i]).to_numpy())
    out.columns = pd.Index([_guard_text(c) for c in out.columns])
    if not isinstance(out.index, pd.MultiIndex) and ptypes.is_string_dtype(out.index.dtype):
        out.index = out.index.map(_guard_text)
    return out


def _keep_index(frame: pd.DataFrame) -> bool:
    """Whether the index carries information worth a column: a name, several levels, or labels
    (text, dates). An unnamed integer index is row numbers left over from filtering or sorting."""
    idx = frame.index
    if isinstance(idx, pd.MultiIndex) or any(n is not None for n in idx.names):
        return True
    return not ptypes.is_integer_dtype(idx.dtype)


def _flat(name: Any) -> str:
    if isinstance(name, tuple):
        return " / ".join(str(p) for p in name if str(p) != "")
    return str(name)


def _names(frame: pd.DataFrame, keep_index: bool) -> list[str]:
    """Output column names: index levels (when kept) then columns, flattened and unique."""
    names: list[str] = []
    if keep_index:
        levels = frame.index.names
        for i, n in enumerate(levels):
            names.append(
                _flat(n) if n is not None else ("index" if len(levels) == 1 else f"level_{i}")
            )
    names += [_flat(c) for c in frame.columns]
    seen: dict[str, int] = {}
    unique = []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        unique.append(n if k == 0 else f"{n}_{k + 1}")
    return unique


def _chunks(frame: pd.DataFrame, rows: int, guard: bool) -> Iterator[pd.DataFrame]:
    """Slices of ``frame`` with the index as columns (when kept) and positional column labels."""
    keep = _keep_index(frame)
    n = len(frame)
    for start in range(0, max(n, 1), max(1, rows)):
        part = frame.iloc[start : start + rows]
        if keep:
            index_cols = [
                pd.Series(part.index.get_level_values(i), index=part.index, copy=False)
                for i in range(part.index.nlevels)
            ]
            cols = [*index_cols, *(part.iloc[:, i] for i in range(part.shape[1]))]
        else:
            cols = [part.iloc[:, i] for i in range(part.shape[1])]
        if guard:
            cols = [_guard_series(c) for c in cols]
        out = pd.concat(cols, axis=1, ignore_index=True) if cols else pd.DataFrame(index=part.index)
        out.index = pd.RangeIndex(len(out))
        yield out


# --- entry point ------------------------------------------------------------------------------
def export_value(
    value: Any,
    path: str | os.PathLike[str],
    *,
    formula_guard: bool = True,
    sheet_name: str = "answer",
    chunk_rows: int = CHUNK_ROWS,
    width: int | None = None,
    height: int | None = None,
    scale: float | None = None,
) -> Path:
    """Write ``value`` to ``path``; the format comes from the suffix (csv, json, xlsx, png).

    ``formula_guard=False`` writes text cells exactly as they are. ``width``, ``height`` and
    ``scale`` size a PNG (pixels = size x scale).
    """
    p = Path(path).expanduser()
    fmt = p.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ExportError(f"cannot export to {p.name!r}: use a .csv, .json, .xlsx or .png name")
    if value is None:
        raise ExportError("the answer has no value to export")
    if fmt != "png" and isinstance(value, PngImage):
        raise ExportError(f"this answer is an image: export it as .png, not .{fmt}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the folder {p.parent}: {exc}") from None
    tmp = p.with_name(f".{p.name}.{os.getpid()}.part")
    try:
        if fmt == "png":
            tmp.write_bytes(_png(value, width=width, height=height, scale=scale))
        elif fmt == "json":
            with open(tmp, "w", encoding="utf-8", newline="\n") as f:
                _json(value, f, chunk_rows)
        elif fmt == "csv":
            tables = tables_of(value, sheet_name)
            if len(tables) > 1:
                raise ExportError(
                    f"this answer holds {len(tables)} tables; CSV holds one: use .xlsx (one sheet "
                    "per table) or .json"
                )
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                _csv(next(iter(tables.values())), f, formula_guard, chunk_rows)
        else:
            _xlsx(tables_of(value, sheet_name), tmp, formula_guard, chunk_rows)
        os.replace(tmp, p)
    except ExportError:
        tmp.unlink(missing_ok=True)
        raise
    except (OSError, ValueError, TypeError, OverflowError) as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"could not write {p}: {_one_line(exc)}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


def _one_line(exc: BaseException | str, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- CSV --------------------------------------------------------------------------------------
def _csv(frame: pd.DataFrame, f: IO[str], guard: bool, chunk_rows: int) -> None:
    names = _names(frame, _keep_index(frame))
    header = [_guard_text(n) for n in names] if guard else names
    # CRLF (RFC 4180): the csv module quotes fields holding any line-terminator character, so
    # with CRLF a bare CR inside a cell is quoted too (with "\n" it would split the row)
    csv.writer(f, lineterminator="\r\n").writerow(header)
    if len(frame) == 0:
        return
    for chunk in _chunks(frame, chunk_rows, guard):
        chunk.to_csv(f, header=False, index=False, lineterminator="\r\n")


# --- JSON -------------------------------------------------------------------------------------
def _date_unit(frame: pd.DataFrame) -> str:
    for i in range(frame.shape[1]):
        s = frame.iloc[:, i]
        if ptypes.is_datetime64_any_dtype(s.dtype):
            v = s.dropna()
            if len(v) and bool(((v.dt.microsecond != 0) | (v.dt.nanosecond != 0)).any()):
                return "us"
    return "s"


def _records(frame: pd.DataFrame, f: IO[str], chunk_rows: int) -> None:
    names = _names(frame, _keep_index(frame))
    unit = _date_unit(frame)
    f.write("[")
    first = True
    for chunk in _chunks(frame, chunk_rows, guard=False):
        if not len(chunk):
            continue
        chunk.columns = pd.Index(names)
        text: str = chunk.to_json(  # type: ignore[call-overload]
            orient="records",
            lines=True,
            date_format="iso",
            date_unit=unit,
            force_ascii=False,
            default_handler=str,
        )
        f.write(("\n" if first else ",\n") + text.rstrip("\n").replace("\n", ",\n"))
        first = False
    f.write("]" if first else "\n]")


def _plain(v: Any) -> Any:
    """Plain JSON types for a non-table value: ISO dates, finite numbers (NaN/inf -> null)."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    if v is None or v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating, decimal.Decimal)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, (pd.Timestamp, _dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, (pd.Timedelta, _dt.timedelta)):
        return pd.Timedelta(v).isoformat()
    if isinstance(v, str):
        return v
    if _is_table(v):
        return json.loads(to_frame(v).to_json(orient="records", date_format="iso"))
    return str(v)


def _json(value: Any, f: IO[str], chunk_rows: int) -> None:
    if is_figure(value):
        import plotly.io as pio

        f.write(pio.to_json(value, validate=False))
        return
    if _is_table(value):
        _records(to_frame(value), f, chunk_rows)
    elif isinstance(value, dict) and value and all(_is_table(v) for v in value.values()):
        f.write("{")
        for i, (k, v) in enumerate(value.items()):
            f.write(("\n" if i == 0 else ",\n") + json.dumps(str(k), ensure_ascii=False) + ": ")
            _records(to_frame(v), f, chunk_rows)
        f.write("\n}")
    elif isinstance(value, (list, tuple)) and value and all(_is_table(v) for v in value):
        f.write("[")
        for i, v in enumerate(value):
            f.write("\n" if i == 0 else ",\n")
            _records(to_frame(v), f, chunk_rows)
        f.write("\n]")
    else:
        f.write(json.dumps(_plain(value), ensure_ascii=False, indent=1, allow_nan=False))
    f.write("\n")


# --- XLSX -------------------------------------------------------------------------------------
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


def _check_excel_size(name: str, frame: pd.DataFrame) -> None:
    rows = len(frame) + 1
    cols = frame.shape[1] + (frame.index.nlevels if _keep_index(frame) else 0)
    if rows > EXCEL_MAX_ROWS or cols > EXCEL_MAX_COLUMNS:
        raise ExportError(
            f"table {name!r} is {len(frame):,} rows x {cols:,} columns: over Excel's "
            f"{EXCEL_MAX_ROWS - 1:,} data rows x {EXCEL_MAX_COLUMNS:,} columns; export .csv instead"
        )


def _widths(frame: pd.DataFrame, names: list[str]) -> list[float]:
    head = next(_chunks(frame.iloc[:100], 100, guard=False), pd.DataFrame())
    widths = []
    for i, n in enumerate(names):
        longest = len(n)
        if i < head.shape[1]:
            for v in head.iloc[:, i].tolist():
                longest = max(longest, len(format_cell(v) or ""))
        widths.append(float(min(max(longest + 2, 8), 60)))
    return widths


def _xlsx(tables: dict[str, pd.DataFrame], path: Path, guard: bool, chunk_rows: int) -> None:
    for name, t in tables.items():
        _check_excel_size(name, t)
    try:
        import xlsxwriter  # noqa: F401
    except ImportError:
        _xlsx_openpyxl(tables, path, guard, chunk_rows)
    else:
        _xlsx_xlsxwriter(tables, path, guard, chunk_rows)


def _date_formats(frame: pd.DataFrame) -> list[bool]:
    """Per output column: True for datetime columns with dates only (no time of day)."""
    out = []
    if _keep_index(frame):
        for i in range(frame.index.nlevels):
            out.append(is_date_only(pd.Series(frame.index.get_level_values(i), copy=False)))
    out += [is_date_only(frame.iloc[:, i]) for i in range(frame.shape[1])]
    return out


def _xlsx_xlsxwriter(
    tables: dict[str, pd.DataFrame], path: Path, guard: bool, chunk_rows: int
) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(
        str(path),
        {
            "constant_memory": True,  # rows go to disk as written
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
            "tmpdir": str(path.parent),
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
            names = _names(frame, _keep_index(frame))
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
            for chunk in _chunks(frame, chunk_rows, guard=False):
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
        names = _names(frame, _keep_index(frame))
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
        for chunk in _chunks(frame, chunk_rows, guard=False):
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


# --- PNG --------------------------------------------------------------------------------------
def _png(value: Any, *, width: int | None, height: int | None, scale: float | None) -> bytes:
    if isinstance(value, PngImage):
        return value.data
    if is_figure(value):
        return chart_png(value, width=width, height=height, scale=scale)
    tables = tables_of(value)
    frame = next(iter(tables.values()))
    try:
        fig, w, h = table_figure(frame)
        return chart_png(fig, width=width or w, height=height or h, scale=scale)
    except ExportError as browser_missing:
        try:
            return _table_png_matplotlib(frame)
        except ImportError:
            raise browser_missing from None


def chart_png(
    fig: Any, *, width: int | None = None, height: int | None = None, scale: float | None = None
) -> bytes:
    """A plotly figure as PNG bytes (kaleido + the system's Chrome/Chromium)."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        raise ExportError(
            "PNG export needs the kaleido package, which is not installed: pip install kaleido "
            "(it also needs Chrome or Chromium, e.g. apt-get install chromium)"
        ) from None
    import plotly.io as pio

    layout = fig.layout
    w = width or layout.width or 1000
    h = height or layout.height or 600
    try:
        data: bytes = pio.to_image(fig, format="png", width=w, height=h, scale=scale or 1)
    except Exception as exc:
        text = _one_line(exc)
        if "chrome" in text.lower() or "browser" in text.lower():
            raise ExportError(
                "PNG export found kaleido but no Chrome/Chromium browser for it: install one "
                "(e.g. apt-get install chromium) or point BROWSER_PATH at it"
            ) from None
        raise ExportError(f"PNG export failed in kaleido: {text}") from None
    return data


def table_figure(frame: pd.DataFrame, max_rows: int = PNG_TABLE_ROWS) -> tuple[Any, int, int]:
    """A plotly table of the first ``max_rows`` rows, and a width and height that fit it."""
    import plotly.graph_objects as go

    shown = frame.head(max_rows)
    names = _names(shown, _keep_index(shown))
    body = next(_chunks(shown, max(1, len(shown)), guard=False))
    columns = [
        [format_cell(v, is_date_only(body.iloc[:, i])) or "" for v in body.iloc[:, i].tolist()]
        for i in range(body.shape[1])
    ]
    widths = [
        min(max(len(n), *(len(v) for v in col), 4) * 7.5 + 24, 360)
        for n, col in zip(names, columns, strict=True)
    ]
    numeric = [ptypes.is_numeric_dtype(body.iloc[:, i].dtype) for i in range(body.shape[1])]
    fig = go.Figure(
        go.Table(
            columnwidth=widths,
            header={
                "values": [f"<b>{_plotly_text(n)}</b>" for n in names],
                "fill_color": "#e8eef7",
                "align": "left",
                "font": {"size": 13},
                "height": 28,
            },
            cells={
                "values": [[_plotly_text(v) for v in col] for col in columns],
                "align": ["right" if num else "left" for num in numeric],
                "fill_color": [["#ffffff", "#f6f8fb"] * (len(shown) // 2 + 1)],
                "font": {"size": 12},
                "height": 24,
            },
        )
    )
    note = f"first {max_rows} of {len(frame):,} rows" if len(frame) > max_rows else ""
    fig.update_layout(
        margin={"l": 10, "r": 10, "t": 10, "b": 30 if note else 10},
        annotations=[
            {
                "text": note,
                "showarrow": False,
                "x": 0,
                "y": 0,
                "xref": "paper",
                "yref": "paper",
                "yshift": -20,
                "xanchor": "left",
                "font": {"size": 11},
            }
        ]
        if note
        else [],
    )
    width = int(min(max(sum(widths) + 20, 300), 2400))
    height = int(28 + 24 * max(1, len(shown)) + (50 if note else 30))
    return fig, width, height


def _plotly_text(v: str) -> str:
    """Plotly table text is a small HTML subset: escape it."""
    import html

    return html.escape(v, quote=False)


def _table_png_matplotlib(frame: pd.DataFrame, max_rows: int = PNG_TABLE_ROWS) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    shown = frame.head(max_rows)
    names = _names(shown, _keep_index(shown))
    body = next(_chunks(shown, max(1, len(shown)), guard=False))
    cells = [[format_cell(v) or "" for v in row] for row in body.itertuples(index=False)]
    fig, ax = plt.subplots(figsize=(min(2 + 1.6 * len(names), 30), 0.6 + 0.3 * (len(cells) + 1)))
    ax.axis("off")
    table = ax.table(cellText=cells or [[""] * len(names)], colLabels=names, loc="upper left")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
