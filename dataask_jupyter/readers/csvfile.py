"""Delimited text: encoding, delimiter, decimal comma, title lines; pyarrow or pandas' C parser."""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import unicodedata
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dataask_jupyter.errors import CorruptFileError, EmptyFileError, LoadError

from .coerce import ensure_arrow
from .columns import finish
from .common import SAMPLE_BYTES, ReadResult, cap_notes, display, one_line, quote
from .detect import unsupported
from .layout import CellRange

#: pandas' default NA strings, also used for the pyarrow reader so both engines agree.
_NA_VALUES = [
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
]
_DELIMITERS = ",;\t|"

# --------------------------------------------------------------------------------------------
# text: encoding and dialect


def _looks_utf16(sample: bytes) -> str | None:
    """Detect BOM-less UTF-16 by the NUL pattern of mostly-ASCII text."""
    n = len(sample) // 2
    if n < 2:
        return None
    even = sample[0 : 2 * n : 2].count(0)
    odd = sample[1 : 2 * n : 2].count(0)
    if odd > 0.3 * n and even < 0.05 * n:
        return "utf-16-le"
    if even > 0.3 * n and odd < 0.05 * n:
        return "utf-16-be"
    return None


def _decode(sample: bytes, encoding: str, final: bool) -> str:
    """Decode strictly; a sample cut mid-character is fine when ``final`` is false."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    return str(decoder.decode(sample, final=final))


def _detect_encoding(sample: bytes, whole: bool) -> tuple[str, str]:
    """Return (encoding, decoded sample). Raises UnicodeError / ValueError for binary data."""
    boms = [
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ]
    for bom, enc in boms:
        if sample.startswith(bom):
            return enc, _decode(sample, enc, whole)
    if b"\x00" in sample:
        enc16 = _looks_utf16(sample)
        if enc16 is None:
            raise ValueError("NUL bytes in text")
        return enc16, _decode(sample, enc16, whole)
    try:
        return "utf-8", _decode(sample, "utf-8", whole)
    except UnicodeDecodeError:
        pass
    enc = _guess_legacy_encoding(sample)
    try:
        return enc, _decode(sample, enc, whole)
    except (UnicodeDecodeError, LookupError):
        return "latin-1", sample.decode("latin-1")


def _guess_legacy_encoding(sample: bytes) -> str:
    """charset-normalizer as a fallback; prefer cp1252 whenever it is a plausible reading."""
    try:
        from charset_normalizer import from_bytes

        matches = list(from_bytes(sample[:SAMPLE_BYTES]))
    except Exception:  # pragma: no cover - defensive: detection must never crash loading
        matches = []
    if not matches:
        return "cp1252"
    best = matches[0]
    for m in matches:  # ties are common (Latin-1 text reads the same in cp1250/cp1252/...)
        if m.chaos <= best.chaos + 0.01 and m.coherence >= best.coherence - 0.01:
            names = {codecs.lookup(e).name for e in m.could_be_from_charset if _known(e)}
            if "cp1252" in names:
                return "cp1252"
    return codecs.lookup(best.encoding).name if _known(best.encoding) else "cp1252"


def _known(enc: str) -> bool:
    try:
        codecs.lookup(enc)
    except LookupError:
        return False
    return True


def _is_binary_text(text: str) -> bool:
    if not text:
        return False
    bad = sum(
        1 for ch in text[:20000] if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f\v"
    )
    return bad > max(2, len(text[:20000]) // 100)


_HTML_RE = re.compile(r"^\s*<(!doctype\s+html|html|head|body)\b", re.IGNORECASE)
_XMLSS_RE = re.compile(r"urn:schemas-microsoft-com:office:spreadsheet")


def _complete_lines_text(text: str, whole: bool) -> str:
    if whole:
        return text
    cut = max(text.rfind("\n"), text.rfind("\r"))
    return text[: cut + 1] if cut > 0 else text


def _parse_rows(text: str, delim: str, limit: int = 200) -> list[list[str]]:
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO(text), delimiter=delim):
            if row:
                rows.append(row)
            if len(rows) >= limit:
                break
    except csv.Error:
        pass
    return rows


def _consistency(rows: list[list[str]]) -> tuple[int, float]:
    """(mode of the field count, share of rows having it)."""
    if not rows:
        return 1, 0.0
    counts = Counter(len(r) for r in rows)
    mode, hits = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    return mode, hits / len(rows)


def _sniff_delimiter(text: str) -> str:
    """Pick among , ; tab | : csv.Sniffer checked for consistency, then counting."""
    head = text[:16384]
    cut = head.rfind("\n")
    head = head[: cut + 1] if cut > 0 else head
    try:
        sniffed = csv.Sniffer().sniff(head, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        sniffed = None
    if sniffed:
        mode, share = _consistency(_parse_rows(text, sniffed))
        if mode >= 2 and share >= 0.9:
            return sniffed
    best, best_key = ",", (False, 0.0, 0)
    for delim in _DELIMITERS:
        mode, share = _consistency(_parse_rows(text, delim))
        key = (mode >= 2, share, mode)
        if key > best_key:
            best, best_key = delim, key
    return best if best_key[0] else ","


_DEC_COMMA_RE = re.compile(r"^[+-]?(\d{1,3}(\.\d{3})+|\d+),\d+$")
_THOUSANDS_DOT_RE = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+(,\d+)?$")
_DEC_DOT_RE = re.compile(r"^[+-]?\d*\.\d+$")
_INT_RE = re.compile(r"^[+-]?\d+$")


def _decimal_comma(rows: list[list[str]], delim: str) -> tuple[bool, bool]:
    """(uses decimal comma, uses '.' as thousands separator) judged from data rows of the sample."""
    if delim == "," or len(rows) < 2:
        return False, False
    data = rows[1:]
    width = max(len(r) for r in data)
    comma_cols = 0
    thousands = False
    for i in range(width):
        vals = [r[i].strip() for r in data if i < len(r) and r[i].strip()]
        if not vals:
            continue
        if any(_DEC_DOT_RE.match(v) and not _THOUSANDS_DOT_RE.match(v) for v in vals):
            return False, False  # genuine dot decimals somewhere: leave numbers alone
        if any(_DEC_COMMA_RE.match(v) for v in vals) and all(
            _DEC_COMMA_RE.match(v) or _INT_RE.match(v) or _THOUSANDS_DOT_RE.match(v) for v in vals
        ):
            comma_cols += 1
            thousands = thousands or any(_THOUSANDS_DOT_RE.match(v) for v in vals)
    return comma_cols > 0, thousands


@dataclass
class _CsvPlan:
    encoding: str
    delimiter: str
    skiprows: int
    decimal: str
    thousands: str | None
    header: list[str] | None
    ascii_head: bool


def _sample_text(path: str, head: bytes, size: int) -> tuple[str, str, bool]:
    """(encoding, decoded sample, whole file) of a text file; UnsupportedFormatError if binary."""
    name = display(path)
    whole = len(head) >= size
    try:
        encoding, text = _detect_encoding(head, whole)
    except (UnicodeError, ValueError):
        raise unsupported(name, "a binary file") from None
    if _is_binary_text(text):
        raise unsupported(name, "a binary file")
    return encoding, text, whole


def _numbered_rows(text: str, delim: str, limit: int = 200) -> list[tuple[int, list[str]]]:
    """(0-based line where the row starts, fields) of the first rows, blank lines left out."""
    out: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text), delimiter=delim)
    start = 0
    try:
        for row in reader:
            if row and any(f.strip() for f in row):
                out.append((start, row))
            start = reader.line_num
            if len(out) >= limit:
                break
    except csv.Error:
        pass
    return out


def _title_lines(rows: list[tuple[int, list[str]]]) -> int:
    """How many leading rows are a title block (one field, over a table of several)."""
    if len(rows) < 3:
        return 0
    mode, _share = _consistency([r for _i, r in rows[min(10, len(rows) // 2) :]])
    if mode < 2:
        return 0
    k = 0
    while k < min(10, len(rows) - 2):
        filled = sum(1 for f in rows[k][1] if f.strip())
        if filled > max(1, mode // 3):
            break
        k += 1
    if k == 0 or sum(1 for f in rows[k][1] if f.strip()) * 2 < mode:
        return 0
    return k


def _plan_csv(
    path: str, head: bytes, size: int, skip: int | None = None
) -> tuple[_CsvPlan, list[str]]:
    """How to read the file, and the title lines skipped above the header (if any)."""
    name = display(path)
    encoding, text, whole = _sample_text(path, head, size)
    stripped = text.lstrip("\ufeff \t\r\n\f\v\x00")
    if not stripped and whole:
        raise EmptyFileError(f"{name} holds only whitespace, no table")
    if _HTML_RE.match(stripped):
        raise unsupported(name, "an HTML page (maybe an error page saved instead of the data)")
    if stripped.startswith("<?xml") and _XMLSS_RE.search(stripped[:4000]):
        raise unsupported(name, "an Excel 2003 XML spreadsheet; save it as XLSX")
    text = _complete_lines_text(text.lstrip("\ufeff"), whole)
    skiprows = 0
    m = re.match(r"sep=(.)\r?\n", text)
    if m:  # Excel's "sep=;" hint line
        skiprows = 1
        delimiter = m.group(1)
        text = text[m.end() :]
    else:
        delimiter = _sniff_delimiter(text)
    numbered = _numbered_rows(text, delimiter)
    title: list[str] = []
    if skip is not None:
        lines = text.splitlines(keepends=True)
        skiprows += skip
        text = "".join(lines[skip:])
        numbered = _numbered_rows(text, delimiter)
    else:
        k = _title_lines(numbered)
        if k:
            title = [" ".join(f for f in r if f.strip()) for _i, r in numbered[:k]]
            start = numbered[k][0]
            skiprows += start
            text = "".join(text.splitlines(keepends=True)[start:])
            numbered = numbered[k:]
    rows = [r for _i, r in numbered]
    dec, thousands = _decimal_comma(rows, delimiter)
    plan = _CsvPlan(
        encoding=encoding,
        delimiter=delimiter,
        skiprows=skiprows,
        decimal="," if dec else ".",
        thousands="." if thousands else None,
        header=rows[0] if rows else None,
        ascii_head=head.isascii(),
    )
    return plan, title


def csv_plan(path: str, skip: int | None = None) -> _CsvPlan:
    """How ``read_table`` reads this text file: encoding, delimiter, lines skipped (title lines,
    or the ``skip`` lines above a header row the user chose, and Excel's "sep=" line), decimal
    mark and thousands separator. For code that re-reads it."""
    with open(path, "rb") as fh:
        head = fh.read(SAMPLE_BYTES)
    plan, _title = _plan_csv(path, head, os.path.getsize(path), skip)
    return plan


_DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "pipes"}


def text_table_shape(path: str, head: bytes, size: int) -> tuple[str, int, int, str] | None:
    """(what separates the values or "html", columns, data rows, first words) of a text file.

    Judged on the first 64 KB; None when the bytes are not text.
    """
    try:
        _encoding, text, whole = _sample_text(path, head, size)
    except LoadError:
        return None
    stripped = text.lstrip("\ufeff \t\r\n\f\v\x00")
    first = " ".join(stripped[:60].split())
    if _HTML_RE.match(stripped):
        return "html", 0, 0, first
    text = _complete_lines_text(text.lstrip("\ufeff"), whole)
    delimiter = _sniff_delimiter(text)
    rows = [r for _i, r in _numbered_rows(text, delimiter)]
    mode, share = _consistency(rows)
    if share < 0.8:
        mode = 1
    return _DELIMITER_NAMES.get(delimiter, delimiter), mode, max(0, len(rows) - 1), first


def _has_quotes(path: str) -> bool:
    """Whether a ``"`` occurs anywhere in the file (a memchr scan: ~10 ms per 100 MB)."""
    import mmap

    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return False
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return m.find(b'"') != -1


def _read_csv_pyarrow(path: str, plan: _CsvPlan) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(skip_rows=plan.skiprows, block_size=4 << 20),
        # Quote-aware chunking costs ~35% but is needed when there are quotes: without it a
        # quoted line break at a block edge is silently mis-read (seen with one-column files).
        parse_options=pacsv.ParseOptions(
            delimiter=plan.delimiter, newlines_in_values=_has_quotes(path)
        ),
        convert_options=pacsv.ConvertOptions(
            null_values=_NA_VALUES,
            strings_can_be_null=True,
            true_values=["True", "TRUE", "true"],
            false_values=["False", "FALSE", "false"],
        ),
    )
    names = list(table.column_names)
    for i, fld in enumerate(table.schema):
        t = fld.type
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            raise UnicodeError("not UTF-8 past the sample")  # the C parser decides
        if pa.types.is_date(t):
            table = table.set_column(i, fld.name, table.column(i).cast(pa.timestamp("us")))
        elif pa.types.is_timestamp(t) and t.unit != "us":
            table = table.set_column(i, fld.name, table.column(i).cast(pa.timestamp("us", t.tz)))
        elif pa.types.is_time(t):
            table = table.set_column(i, fld.name, table.column(i).cast(pa.string()))
        elif pa.types.is_null(t):
            table = table.set_column(i, fld.name, table.column(i).cast(pa.float64()))
    table = table.rename_columns([f"c{i}" for i in range(len(names))])
    df = table.to_pandas(split_blocks=True, self_destruct=True)
    df.columns = pd.Index(names, dtype=object)
    return df


def _read_csv_c(path: str, plan: _CsvPlan, notes: list[str]) -> pd.DataFrame:
    kwargs: dict[str, Any] = {
        "sep": plan.delimiter,
        "encoding": plan.encoding,
        "engine": "c",
        "index_col": False,
        "skiprows": plan.skiprows or None,
        "decimal": plan.decimal,
        "thousands": plan.thousands,
    }

    def attempt(**extra: Any) -> tuple[pd.DataFrame, list[warnings.WarningMessage]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = pd.read_csv(path, **kwargs, **extra)
        return frame, list(caught)

    try:
        df, caught = attempt()
    except UnicodeDecodeError:
        if plan.ascii_head and plan.encoding in ("utf-8", "utf-8-sig"):
            # plain ASCII at the top, other bytes further down: most likely a Windows code page
            plan.encoding = kwargs["encoding"] = "cp1252"
            notes.append("The file is not UTF-8 past its first 64 KB; it was read as cp1252.")
        try:
            df, caught = attempt()
        except UnicodeDecodeError:
            df, caught = attempt(encoding_errors="replace")
            notes.append(f"Some bytes were not valid {plan.encoding} and were replaced by \ufffd.")
    except pd.errors.ParserError as exc:
        first = one_line(exc)
        df, caught = attempt(on_bad_lines="warn")
        skipped = sum(str(w.message).count("Skipping line") for w in caught)
        where = re.search(r"line (\d+)", first)
        notes.append(
            f"Skipped {skipped or 'some'} malformed line(s) with too many fields"
            + (f", the first at line {where.group(1)}" if where else "")
            + "."
        )
    if any(issubclass(w.category, pd.errors.DtypeWarning) for w in caught):
        df, caught = attempt(low_memory=False)
    return df


def read_csv(
    path: str,
    head: bytes,
    size: int,
    *,
    header_row: int | None = None,
    cells: CellRange | None = None,
) -> ReadResult:
    """Read a delimited text file; ``header_row`` / ``cells`` as in ``read_table`` (by line)."""
    name = display(path)
    skip = None
    if header_row is not None:
        skip = header_row - 1
    elif cells is not None:
        skip = cells.r1
    plan, title = _plan_csv(path, head, size, skip)
    notes: list[str] = []
    if title:
        lines = f"line {1}" if len(title) == 1 else f"lines 1-{plan.skiprows}"
        notes.append(f"Skipped the title above the header ({lines}: {quote(title[0][:60])}).")
    elif skip:
        notes.append(f"Took the column names from line {skip + 1}, as asked.")
    if plan.decimal == ",":
        notes.append('Read numbers with a decimal comma ("1,5" = 1.5).')
    df: pd.DataFrame | None = None
    engine = "c"
    raw_names: list[str] | None = plan.header
    if plan.encoding in ("utf-8", "utf-8-sig") and plan.decimal == "." and len(plan.delimiter) == 1:
        try:
            df = _read_csv_pyarrow(path, plan)
            engine = "pyarrow"
            raw_names = [str(c) for c in df.columns]
        except Exception:
            df = None  # anything pyarrow cannot do, the C parser gets a go at
    if df is None:
        try:
            df = _read_csv_c(path, plan, notes)
        except pd.errors.EmptyDataError:
            raise EmptyFileError(f"{name} holds no table (no header, no rows)") from None
        except (pd.errors.ParserError, ValueError, UnicodeError, csv.Error) as exc:
            raise CorruptFileError(f"{name} could not be read as CSV: {one_line(exc)}") from None
    if df.shape[1] == 0:
        raise EmptyFileError(f"{name} holds no table (no columns)")
    if raw_names is not None and len(raw_names) != df.shape[1]:
        raw_names = None
    if cells is not None:
        df, raw_names = _slice(df, raw_names, cells, skip or 0, notes)
    df = finish(df, notes, raw_names)
    if len(df) == 0:
        notes.append("The file holds column names but no rows.")
    df = ensure_arrow(df, notes, name)
    return ReadResult(
        frame=df,
        format="csv",
        encoding=plan.encoding,
        delimiter=plan.delimiter,
        engine=engine,
        notes=cap_notes(notes),
        header_row=plan.skiprows + 1,
    )


def _slice(
    df: pd.DataFrame, names: list[str] | None, cells: CellRange, header_line: int, notes: list[str]
) -> tuple[pd.DataFrame, list[str] | None]:
    """Keep the rows and columns of an Excel-style range (rows counted as lines)."""
    c2 = df.shape[1] - 1 if cells.c2 is None else min(cells.c2, df.shape[1] - 1)
    if cells.c1 > c2:
        raise LoadError(
            f"the range starts at column {cells.c1 + 1}, but the file has {df.shape[1]}"
        )
    rows = None if cells.r2 is None else max(0, cells.r2 - header_line)
    df = df.iloc[:rows, cells.c1 : c2 + 1].reset_index(drop=True)
    notes.append(f"Read the cells of the range given ({len(df)} rows, {df.shape[1]} columns).")
    return df, (names[cells.c1 : c2 + 1] if names is not None else None)
