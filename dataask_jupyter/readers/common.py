"""Shared pieces of the readers: the result type, file checks and message helpers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from dataask_jupyter.errors import EmptyFileError, FileTooLargeError, LoadError

SAMPLE_BYTES = 64 * 1024
SUPPORTED = "CSV/Excel/ODS/parquet"
MAX_NOTES = 25


@dataclass(frozen=True)
class ReadResult:
    """A loaded table and how it was read."""

    frame: pd.DataFrame
    format: str  # "csv" | "xlsx" | "xlsm" | "xlsb" | "xls" | "ods" | "parquet" | "dataframe"
    sheets: list[str] = field(default_factory=list)  # all sheets of a workbook, [] otherwise
    sheet: str | None = None  # the sheet read
    encoding: str | None = None  # csv only
    delimiter: str | None = None  # csv only
    engine: str = ""  # "pyarrow", "c", "calamine", "openpyxl", "xlrd", "copy"
    notes: list[str] = field(default_factory=list)  # sentences on what the reader decided
    #: hidden sheets of a workbook: name -> "hidden" or "very hidden" (only VBA can show those)
    hidden_sheets: dict[str, str] = field(default_factory=dict)
    #: where the table was found, Excel style ("B4:F20"); None for CSV without overrides etc.
    range: str | None = None
    #: the 1-based row (as Excel numbers it) that gave the column names; None when not known
    header_row: int | None = None


# --------------------------------------------------------------------------------------------
# small helpers


def display(path: str | os.PathLike[str]) -> str:
    return os.path.basename(os.fspath(path)) or os.fspath(path)


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def one_line(exc: BaseException | str, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(name: object) -> str:
    return '"' + str(name).replace('"', '\\"') + '"'


def sheet_list(sheets: Sequence[str]) -> str:
    return ", ".join(quote(s) for s in sheets) if sheets else "(none)"


def read_head(path: str, size: int = SAMPLE_BYTES) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError as exc:
        raise LoadError(f"{display(path)} cannot be opened: {one_line(exc)}") from None


def check_file(path: str, max_bytes: int | None) -> int:
    """Return the file size; raise for missing files, directories, empty and over-size files."""
    name = display(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise LoadError(f"{name} not found (looked for {os.path.abspath(path)})") from None
    except OSError as exc:
        raise LoadError(f"{name} cannot be opened: {one_line(exc)}") from None
    if os.path.isdir(path):
        raise LoadError(f"{name} is a folder, not a file")
    if st.st_size == 0:
        raise EmptyFileError(f"{name} is empty (0 bytes)")
    if max_bytes is not None and st.st_size > max_bytes:
        raise FileTooLargeError(
            f"{name} is {human_bytes(st.st_size)}, over the {human_bytes(max_bytes)} cap; "
            "raise the setting Ask.max_file_bytes to load it"
        )
    return st.st_size


def cap_notes(notes: list[str]) -> list[str]:
    """At most MAX_NOTES notes; the rest summed up in the last one."""
    if len(notes) <= MAX_NOTES:
        return notes
    return [*notes[: MAX_NOTES - 1], f"... and {len(notes) - MAX_NOTES + 1} more notes like these."]
