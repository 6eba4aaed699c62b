"""The "load" stage: read CSV / XLS / XLSX / parquet files (or take a DataFrame) into a DataFrame.

The format is decided by content (magic bytes), never by the file's suffix. Every failure is one of
the typed exceptions of :mod:`dataask_jupyter.errors`, with a one-line message that names the file.
Detection works on a sample of the first 64 KB; the file itself is read once.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as _dt
import io
import os
import re
import struct
import unicodedata
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .errors import (
    CorruptFileError,
    EmptyFileError,
    EncryptedFileError,
    FileTooLargeError,
    LoadError,
    SheetNotFoundError,
    UnsupportedFormatError,
)

__all__ = ["ReadResult", "detect_format", "list_sheets", "read_table"]

SAMPLE_BYTES = 64 * 1024
_SUPPORTED = "CSV/XLS/XLSX/parquet"
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
#: A deflate stream cannot expand more than ~1032x; genuine workbook XML expands 2-20x.
_MAX_ZIP_RATIO = 250
_ZIP_RATIO_GRACE = 16 << 20
_MAX_NOTES = 25


@dataclass(frozen=True)
class ReadResult:
    """A loaded table and how it was read."""

    frame: pd.DataFrame
    format: str  # "csv" | "xlsx" | "xls" | "xlsb" | "parquet" | "dataframe"
    sheets: list[str] = field(default_factory=list)  # all sheets of a workbook, [] otherwise
    sheet: str | None = None  # the sheet read
    encoding: str | None = None  # csv only
    delimiter: str | None = None  # csv only
    engine: str = ""  # "pyarrow", "c", "calamine", "openpyxl", "xlrd", "copy"
    notes: list[str] = field(default_factory=list)  # person-readable notes on what was changed


# --------------------------------------------------------------------------------------------
# small helpers


def _display(path: str | os.PathLike[str]) -> str:
    return os.path.basename(os.fspath(path)) or os.fspath(path)


def _human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def _one_line(exc: BaseException | str, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote(name: object) -> str:
    return '"' + str(name).replace('"', '\\"') + '"'


def _sheet_list(sheets: Sequence[str]) -> str:
    return ", ".join(_quote(s) for s in sheets) if sheets else "(none)"


def _read_head(path: str, size: int = SAMPLE_BYTES) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError as exc:
        raise LoadError(f"{_display(path)} cannot be opened: {_one_line(exc)}") from None


def _check_file(path: str, max_bytes: int | None) -> int:
    """Return the file size; raise for missing files, directories, empty and over-size files."""
    name = _display(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise LoadError(f"{name} not found (looked for {os.path.abspath(path)})") from None
    except OSError as exc:
        raise LoadError(f"{name} cannot be opened: {_one_line(exc)}") from None
    if os.path.isdir(path):
        raise LoadError(f"{name} is a folder, not a file")
    if st.st_size == 0:
        raise EmptyFileError(f"{name} is empty (0 bytes)")
    if max_bytes is not None and st.st_size > max_bytes:
        raise FileTooLargeError(
            f"{name} is {_human_bytes(st.st_size)}, over the {_human_bytes(max_bytes)} cap; "
            "raise the setting Ask.max_file_bytes to load it"
        )
    return st.st_size


# --------------------------------------------------------------------------------------------
# format detection

_MAGIC: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip-compressed file (decompress it first)"),
    (b"BZh", "a bzip2-compressed file (decompress it first)"),
    (b"\xfd7zXZ\x00", "an xz-compressed file (decompress it first)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x7fELF", "a program (ELF executable)"),
    (b"MZ", "a Windows program"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"ARROW1", "an Arrow/Feather file"),
    (b"{\\rtf", "an RTF document"),
    (b"\x00\x00\x01\x00", "an icon image"),
    (b"OggS", "an audio file"),
    (b"ID3", "an MP3 audio file"),
]

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _unsupported(name: str, what: str) -> UnsupportedFormatError:
    return UnsupportedFormatError(f"{name} looks like {what}, not {_SUPPORTED}")


def _ole_entry_names(path: str) -> set[str]:
    """Names of all directory entries of an OLE2 compound file (a minimal, bounded CFB reader)."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        file_size = fh.tell()
        fh.seek(0)
        header = fh.read(512)
        if len(header) < 512 or header[:8] != _OLE_MAGIC:
            raise ValueError("not an OLE2 file")
        sector_shift = struct.unpack_from("<H", header, 0x1E)[0]
        if sector_shift not in (9, 12):
            raise ValueError("bad sector size")
        ss = 1 << sector_shift
        first_dir = struct.unpack_from("<I", header, 0x30)[0]
        first_difat, n_difat = struct.unpack_from("<II", header, 0x44)
        difat = list(struct.unpack_from("<109I", header, 0x4C))
        max_sectors = file_size // ss + 1
        per_sector = ss // 4

        def read_sector(n: int) -> bytes:
            if n >= max_sectors:
                raise ValueError("sector out of range")
            fh.seek((n + 1) * ss)
            data = fh.read(ss)
            if len(data) < ss:
                raise ValueError("truncated")
            return data

        sec = first_difat
        for _ in range(min(n_difat, max_sectors)):
            if sec >= 0xFFFFFFFA:
                break
            vals = struct.unpack(f"<{per_sector}I", read_sector(sec))
            difat.extend(vals[:-1])
            sec = vals[-1]

        def fat_next(n: int) -> int:
            idx, off = divmod(n, per_sector)
            if idx >= len(difat) or difat[idx] >= 0xFFFFFFFA:
                raise ValueError("FAT out of range")
            fh.seek((difat[idx] + 1) * ss + off * 4)
            raw = fh.read(4)
            if len(raw) < 4:
                raise ValueError("truncated")
            return int(struct.unpack("<I", raw)[0])

        names: set[str] = set()
        sec = first_dir
        for _ in range(max_sectors):
            if sec >= 0xFFFFFFFA:
                break
            data = read_sector(sec)
            for off in range(0, ss, 128):
                entry = data[off : off + 128]
                name_len = struct.unpack_from("<H", entry, 0x40)[0]
                kind = entry[0x42]
                if kind in (1, 2, 5) and 2 <= name_len <= 64:
                    names.add(entry[: name_len - 2].decode("utf-16-le", "replace"))
            sec = fat_next(sec)
        return names


def _classify_ole(path: str, name: str) -> str:
    try:
        names = _ole_entry_names(path)
    except (ValueError, OSError, struct.error):
        # A damaged compound file; let the XLS readers report what is wrong.
        return "xls"
    lowered = {n.lower() for n in names}
    if "encryptioninfo" in lowered or "encryptedpackage" in lowered:
        raise EncryptedFileError(
            f"{name} is password-protected; remove the password in Excel and save again"
        )
    if "workbook" in lowered or "book" in lowered:
        return "xls"
    if "worddocument" in lowered:
        raise _unsupported(name, "a Word document")
    if "powerpoint document" in lowered:
        raise _unsupported(name, "a PowerPoint presentation")
    if any(n.startswith("__substg1.0_") for n in lowered):
        raise _unsupported(name, "an Outlook message")
    raise _unsupported(name, "an Office compound document without a workbook")


def _classify_zip(path: str, name: str, head: bytes) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        if b"xl/" in head or b"[Content_Types].xml" in head:
            raise CorruptFileError(
                f"{name} is a damaged or truncated XLSX file ({_one_line(exc)}); "
                "open it in Excel and save it again"
            ) from None
        raise _unsupported(name, "a damaged ZIP archive") from None
    if "[Content_Types].xml" in names:
        if "xl/workbook.xml" in names:
            return "xlsx"
        if "xl/workbook.bin" in names:
            return "xlsb"
        if any(n.startswith("word/") for n in names):
            raise _unsupported(name, "a Word document")
        if any(n.startswith("ppt/") for n in names):
            raise _unsupported(name, "a PowerPoint presentation")
        if any(n.startswith("xl/") for n in names):
            raise CorruptFileError(
                f"{name} is an Excel package without xl/workbook.xml; "
                "open it in Excel and save it again"
            )
    if "mimetype" in names and b"opendocument.spreadsheet" in head:
        raise _unsupported(name, "an OpenDocument spreadsheet (.ods); save it as XLSX or CSV")
    raise _unsupported(name, "a ZIP archive that is not a workbook")


def _classify_bytes(head: bytes, name: str) -> str | None:
    """Classify by magic bytes alone; None means "text, maybe CSV"."""
    if head.startswith(_OLE_MAGIC):
        return "ole"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return "zip"
    if head.startswith(b"PAR1"):
        return "parquet"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise _unsupported(name, what)
    return None


def detect_format(path: str | os.PathLike[str]) -> str:
    """Return "csv", "xlsx", "xlsb", "xls" or "parquet", judged by content, never by suffix.

    Raises EmptyFileError, UnsupportedFormatError (e.g. an image renamed .csv),
    EncryptedFileError (password-protected workbook) or CorruptFileError (damaged XLSX).
    """
    p = os.fspath(path)
    _check_file(p, None)
    return _detect(p, _read_head(p))


def _detect(path: str, head: bytes) -> str:
    name = _display(path)
    kind = _classify_bytes(head, name)
    if kind == "ole":
        return _classify_ole(path, name)
    if kind == "zip":
        return _classify_zip(path, name, head)
    if kind == "parquet":
        return "parquet"
    return "csv"


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


def _plan_csv(path: str, head: bytes, size: int) -> _CsvPlan:
    name = _display(path)
    whole = len(head) >= size
    try:
        encoding, text = _detect_encoding(head, whole)
    except (UnicodeError, ValueError):
        raise _unsupported(name, "a binary file") from None
    if _is_binary_text(text):
        raise _unsupported(name, "a binary file")
    stripped = text.lstrip("\ufeff \t\r\n\f\v\x00")
    if not stripped and whole:
        raise EmptyFileError(f"{name} holds only whitespace, no table")
    if _HTML_RE.match(stripped):
        raise _unsupported(name, "an HTML page (maybe an error page saved instead of the data)")
    if stripped.startswith("<?xml") and _XMLSS_RE.search(stripped[:4000]):
        raise _unsupported(name, "an Excel 2003 XML spreadsheet; save it as XLSX")
    text = _complete_lines_text(text.lstrip("\ufeff"), whole)
    skiprows = 0
    m = re.match(r"sep=(.)\r?\n", text)
    if m:  # Excel's "sep=;" hint line
        skiprows = 1
        delimiter = m.group(1)
        text = text[m.end() :]
    else:
        delimiter = _sniff_delimiter(text)
    rows = _parse_rows(text, delimiter)
    dec, thousands = _decimal_comma(rows, delimiter)
    return _CsvPlan(
        encoding=encoding,
        delimiter=delimiter,
        skiprows=skiprows,
        decimal="," if dec else ".",
        thousands="." if thousands else None,
        header=rows[0] if rows else None,
        ascii_head=head.isascii(),
    )


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
            notes.append("the file is not UTF-8 past its first 64 KB; read it as cp1252")
        try:
            df, caught = attempt()
        except UnicodeDecodeError:
            df, caught = attempt(encoding_errors="replace")
            notes.append(f"some bytes were not valid {plan.encoding} and were replaced by \ufffd")
    except pd.errors.ParserError as exc:
        first = _one_line(exc)
        df, caught = attempt(on_bad_lines="warn")
        skipped = sum(str(w.message).count("Skipping line") for w in caught)
        where = re.search(r"line (\d+)", first)
        notes.append(
            f"skipped {skipped or 'some'} malformed line(s) with too many fields"
            + (f", first at line {where.group(1)}" if where else "")
        )
    if any(issubclass(w.category, pd.errors.DtypeWarning) for w in caught):
        df, caught = attempt(low_memory=False)
    return df


def _read_csv(path: str, head: bytes, size: int) -> ReadResult:
    name = _display(path)
    plan = _plan_csv(path, head, size)
    notes: list[str] = []
    if plan.decimal == ",":
        notes.append('read numbers with a decimal comma ("1,5" = 1.5)')
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
            raise CorruptFileError(f"{name} could not be read as CSV: {_one_line(exc)}") from None
    if df.shape[1] == 0:
        raise EmptyFileError(f"{name} holds no table (no columns)")
    if raw_names is not None and len(raw_names) != df.shape[1]:
        raw_names = None
    df = _finish(df, notes, raw_names)
    return ReadResult(
        frame=df,
        format="csv",
        encoding=plan.encoding,
        delimiter=plan.delimiter,
        engine=engine,
        notes=_cap_notes(notes),
    )


# --------------------------------------------------------------------------------------------
# column names and light type fixes

_UNNAMED_RE = re.compile(r"^Unnamed: \d+(_level_\d+)?$")
_MANGLED_RE = re.compile(r"^(.*)\.(\d+)$", re.DOTALL)


def _is_blank_name(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and value != value:
        return True
    text = str(value)
    return not text.strip() or bool(_UNNAMED_RE.match(text))


def _flatten(col: Hashable) -> object:
    if isinstance(col, tuple):
        parts = [str(p).strip() for p in col if not _is_blank_name(p)]
        return "_".join(parts)
    return col


def _unmangle(names: list[str]) -> list[str]:
    """Undo pandas' "price", "price.1" renaming of duplicate headers (we rename our own way)."""
    out: list[str] = []
    for n in names:
        m = _MANGLED_RE.match(n)
        out.append(m.group(1) if m and m.group(1) in out else n)
    return out


def _clean_columns(
    columns: Sequence[Hashable], raw: Sequence[str] | None, notes: list[str]
) -> list[str]:
    flat = [_flatten(c) for c in columns]
    if raw is not None:
        names: list[str] = [str(r) for r in raw]
    else:
        names = _unmangle(["" if _is_blank_name(c) else str(c) for c in flat])
    out: list[str] = []
    for i, n in enumerate(names):
        if _is_blank_name(n):
            new = f"unnamed_{i + 1}"
            notes.append(f"renamed blank column {i + 1} to {_quote(new)}")
            out.append(new)
        elif n != n.strip():
            out.append(n.strip())
            notes.append(f"trimmed spaces around column name {_quote(n)}")
        else:
            out.append(n)
    taken = set(out)
    seen: set[str] = set()
    for i, n in enumerate(out):
        if n in seen:
            k = 2
            while f"{n}_{k}" in taken:
                k += 1
            new = f"{n}_{k}"
            taken.add(new)
            out[i] = new
            notes.append(f"renamed duplicate {_quote(n)} to {_quote(new)}")
            seen.add(new)
        else:
            seen.add(n)
    return out


_ISO_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
)


def _parse_dates(df: pd.DataFrame, notes: list[str]) -> None:
    """Turn text columns whose values are all ISO dates into datetime64 (conservative)."""
    for i in range(df.shape[1]):
        col = df.iloc[:, i]
        if col.dtype != object and not isinstance(col.dtype, pd.StringDtype):
            continue
        probe = col.iloc[:5000].dropna()
        if probe.empty:
            continue
        sample = probe.iloc[:500]
        first = sample.iloc[0]
        if isinstance(first, _dt.date) and all(isinstance(v, _dt.date) for v in sample):
            converted = pd.to_datetime(col, errors="coerce")
        elif all(isinstance(v, str) and _ISO_RE.match(v) for v in sample):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    converted = pd.to_datetime(col, format="ISO8601")
            except (ValueError, TypeError, OverflowError):
                continue
        else:
            continue
        if int(converted.isna().sum()) != int(col.isna().sum()):
            continue
        df.isetitem(i, converted.array)
        notes.append(f"parsed {_quote(df.columns[i])} as dates")


def _plain_categoricals(df: pd.DataFrame, notes: list[str]) -> None:
    """Categorical columns (parquet, DataFrames) become their plain values.

    Generated code trips over them: ``groupby().sum()`` raises, ``max()`` needs an order,
    ``groupby`` lists unobserved categories, ``unique()`` is not a plain array.
    """
    changed = []
    for i in range(df.shape[1]):
        col = df.iloc[:, i]
        if isinstance(col.dtype, pd.CategoricalDtype):
            df.isetitem(i, col.astype(col.cat.categories.dtype).array)
            changed.append(_quote(df.columns[i]))
    if changed:
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        plural = "s" if len(changed) > 1 else ""
        notes.append(
            f"read categorical column{plural} {', '.join(changed[:5])}{more} as plain values"
        )


def _finish(df: pd.DataFrame, notes: list[str], raw: Sequence[str] | None = None) -> pd.DataFrame:
    df.columns = pd.Index(_clean_columns(list(df.columns), raw, notes), dtype=object)
    _parse_dates(df, notes)
    return df


def _cap_notes(notes: list[str]) -> list[str]:
    if len(notes) <= _MAX_NOTES:
        return notes
    return [*notes[: _MAX_NOTES - 1], f"... and {len(notes) - _MAX_NOTES + 1} more changes"]


# --------------------------------------------------------------------------------------------
# workbooks


def _check_zip_size(path: str, max_uncompressed: int) -> None:
    name = _display(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CorruptFileError(
            f"{name} is a damaged or truncated workbook ({_one_line(exc)}); "
            "open it in Excel and save it again"
        ) from None
    total = sum(i.file_size for i in infos)
    if total > max_uncompressed:
        raise FileTooLargeError(
            f"{name} expands to {_human_bytes(total)} uncompressed, over the "
            f"{_human_bytes(max_uncompressed)} cap; raise the setting Ask.max_uncompressed_bytes "
            "if the file is genuine"
        )
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _ZIP_RATIO_GRACE and ratio > _MAX_ZIP_RATIO:
            raise FileTooLargeError(
                f"{name} looks like a zip bomb: {info.filename} expands {ratio:,.0f}x "
                f"({_human_bytes(info.compress_size)} to {_human_bytes(info.file_size)}); "
                "workbooks do not compress like that"
            )


_ENGINES = {"xlsx": ("calamine", "openpyxl"), "xlsb": ("calamine",), "xls": ("calamine", "xlrd")}
_ENCRYPTED_RE = re.compile(r"password|encrypt", re.IGNORECASE)


def _workbook_error(name: str, fmt: str, exc: BaseException) -> LoadError:
    if isinstance(exc, LoadError):
        return exc
    text = f"{type(exc).__name__}: {exc}"
    if _ENCRYPTED_RE.search(text):
        return EncryptedFileError(
            f"{name} is password-protected; remove the password in Excel and save again"
        )
    return CorruptFileError(
        f"{name} could not be read as {fmt.upper()} ({_one_line(exc)}); "
        "open it in Excel and save it again"
    )


def _quiet(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _open_workbook(path: str, fmt: str) -> tuple[pd.ExcelFile, str, list[str]]:
    name = _display(path)
    first: BaseException | None = None
    for engine in _ENGINES[fmt]:
        try:
            xl = _quiet(pd.ExcelFile, path, engine=engine)
            return xl, engine, [str(s) for s in xl.sheet_names]
        except Exception as exc:
            err = _workbook_error(name, fmt, exc)
            if isinstance(err, EncryptedFileError):
                raise err from None
            first = first or exc
    assert first is not None
    raise _workbook_error(name, fmt, first) from None


def _first_visible_sheet(xl: pd.ExcelFile, sheets: list[str]) -> str | None:
    """The first visible worksheet, when the engine can tell (calamine can)."""
    try:
        import python_calamine as pcal

        for meta in xl.book.sheets_metadata:
            if (
                meta.visible == pcal.SheetVisibleEnum.Visible
                and meta.typ == pcal.SheetTypeEnum.WorkSheet
                and str(meta.name) in sheets
            ):
                return str(meta.name)
    except Exception:
        return None
    return None


def _resolve_sheet(
    name: str, sheets: list[str], sheet: str | int | None, first: str | None = None
) -> str:
    if not sheets:
        raise EmptyFileError(f"{name} has no sheets")
    if sheet is None:
        return first or sheets[0]
    if isinstance(sheet, bool) or not isinstance(sheet, (int, str)):
        raise SheetNotFoundError(
            f"Sheet {sheet!r} not valid for {name}; give a sheet name or a 0-based index; "
            f"sheets: {_sheet_list(sheets)}",
            sheets,
        )
    if isinstance(sheet, int):
        if 0 <= sheet < len(sheets):
            return sheets[sheet]
        raise SheetNotFoundError(
            f"Sheet {sheet} not found in {name} (0-based index, {len(sheets)} sheet"
            f"{'s' if len(sheets) != 1 else ''}); sheets: {_sheet_list(sheets)}",
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
        f"Sheet {_quote(sheet)} not found in {name}; sheets: {_sheet_list(sheets)}", sheets
    )


def _read_workbook(
    path: str, fmt: str, sheet: str | int | None, max_uncompressed: int
) -> ReadResult:
    name = _display(path)
    if fmt in ("xlsx", "xlsb"):
        _check_zip_size(path, max_uncompressed)
    xl, engine, sheets = _open_workbook(path, fmt)
    visible = _first_visible_sheet(xl, sheets) if sheet is None else None
    target = _resolve_sheet(name, sheets, sheet, visible)
    notes: list[str] = []
    if sheet is None and target != sheets[0]:
        notes.append(f"read {_quote(target)}, the first visible worksheet")
    if isinstance(sheet, str) and target != sheet:
        how = "name" if target.strip().casefold() == sheet.strip().casefold() else "index"
        notes.append(f"read sheet {_quote(target)} for sheet {how} {_quote(sheet)}")
    engines = [engine] + [e for e in _ENGINES[fmt] if e != engine]
    df: pd.DataFrame | None = None
    first: BaseException | None = None
    for eng in engines:
        try:
            if eng == engine:
                src: Any = xl
            else:
                src = _quiet(pd.ExcelFile, path, engine=eng)
            df = _quiet(pd.read_excel, src, sheet_name=target)
            engine = eng
            break
        except Exception as exc:
            err = _workbook_error(name, fmt, exc)
            if isinstance(err, EncryptedFileError):
                raise err from None
            first = first or exc
    with contextlib.suppress(Exception):
        xl.close()
    if df is None:
        assert first is not None
        raise _workbook_error(name, fmt, first) from None
    if df.shape[1] == 0:
        raise EmptyFileError(f"Sheet {_quote(target)} in {name} is empty")
    df = _finish(df, notes)
    return ReadResult(
        frame=df,
        format=fmt,
        sheets=sheets,
        sheet=target,
        engine=engine,
        notes=_cap_notes(notes),
    )


def list_sheets(path: str | os.PathLike[str]) -> list[str]:
    """All sheet names of a workbook, in order; [] for CSV and parquet files."""
    p = os.fspath(path)
    _check_file(p, None)
    fmt = _detect(p, _read_head(p))
    if fmt not in _ENGINES:
        return []
    xl, _engine, sheets = _open_workbook(p, fmt)
    xl.close()
    return sheets


# --------------------------------------------------------------------------------------------
# parquet, DataFrame, entry point


def _read_parquet(path: str) -> ReadResult:
    name = _display(path)
    try:
        df = pd.read_parquet(path, engine="pyarrow")
    except Exception as exc:
        raise CorruptFileError(f"{name} could not be read as parquet ({_one_line(exc)})") from None
    if df.shape[1] == 0:
        raise EmptyFileError(f"{name} holds no columns")
    notes: list[str] = []
    df = _finish(df, notes)
    _plain_categoricals(df, notes)
    return ReadResult(frame=df, format="parquet", engine="pyarrow", notes=_cap_notes(notes))


def read_table(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    sheet: str | int | None = None,
    max_bytes: int = 1 << 30,
    max_uncompressed_bytes: int = 2 << 30,
) -> ReadResult:
    """Read a CSV / XLS / XLSX / parquet file (format judged by content) or copy a DataFrame.

    ``sheet``: a workbook sheet by name or 0-based index; None reads the first sheet.
    ``max_bytes`` caps the file size, ``max_uncompressed_bytes`` the unpacked size of an XLSX.
    Raises the LoadError subclasses of :mod:`dataask_jupyter.errors`, one-line messages.
    """
    if isinstance(source, pd.DataFrame):
        notes: list[str] = []
        frame = source.copy()
        frame.columns = pd.Index(_clean_columns(list(frame.columns), None, notes), dtype=object)
        _plain_categoricals(frame, notes)
        return ReadResult(frame=frame, format="dataframe", engine="copy", notes=_cap_notes(notes))
    if not isinstance(source, (str, os.PathLike)):
        raise LoadError(
            f"cannot load a {type(source).__name__}; give a file path or a pandas DataFrame"
        )
    path = os.fspath(source)
    size = _check_file(path, max_bytes)
    head = _read_head(path)
    fmt = _detect(path, head)
    if fmt in ("csv", "parquet"):
        result = _read_csv(path, head, size) if fmt == "csv" else _read_parquet(path)
        if sheet is not None:
            result.notes.append(f"ignored sheet={sheet!r}: a {fmt} file has no sheets")
        return result
    return _read_workbook(path, fmt, sheet, max_uncompressed_bytes)
