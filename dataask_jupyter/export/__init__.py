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
  browser); a PNG the sandbox made is written as it is. One Chromium serves every PNG of the
  kernel (started on the first, about 3 s; later ones take a fraction of a second);
  ``close_png_renderer()`` stops it (called when the session closes and at exit).

Sections: ``tables`` (shaping values into tables, formula guard), ``csv_json``, ``xlsx``, ``png``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dataask_jupyter.errors import ExportError
from dataask_jupyter.export.csv_json import write_csv, write_json
from dataask_jupyter.export.png import (
    PNG_TABLE_ROWS,
    chart_png,
    close_png_renderer,
    table_figure,
    value_png,
)
from dataask_jupyter.export.tables import (
    FORMULA_PREFIXES,
    neutralise_formulas,
    one_line,
    tables_of,
)
from dataask_jupyter.export.xlsx import (
    EXCEL_MAX_CHARS,
    EXCEL_MAX_COLUMNS,
    EXCEL_MAX_ROWS,
    check_excel_size,
    write_xlsx,
)
from dataask_jupyter.results import PngImage
from dataask_jupyter.values import to_frame

FORMATS = ("csv", "json", "xlsx", "png")
CHUNK_ROWS = 50_000

__all__ = [
    "CHUNK_ROWS",
    "EXCEL_MAX_CHARS",
    "EXCEL_MAX_COLUMNS",
    "EXCEL_MAX_ROWS",
    "FORMATS",
    "FORMULA_PREFIXES",
    "PNG_TABLE_ROWS",
    "ExportError",
    "chart_png",
    "check_excel_size",
    "close_png_renderer",
    "export_value",
    "neutralise_formulas",
    "table_figure",
    "tables_of",
    "to_frame",
]


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
            tmp.write_bytes(value_png(value, width=width, height=height, scale=scale))
        elif fmt == "json":
            with open(tmp, "w", encoding="utf-8", newline="\n") as f:
                write_json(value, f, chunk_rows)
        elif fmt == "csv":
            tables = tables_of(value, sheet_name)
            if len(tables) > 1:
                raise ExportError(
                    f"this answer holds {len(tables)} tables; CSV holds one: use .xlsx (one sheet "
                    "per table) or .json"
                )
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                write_csv(next(iter(tables.values())), f, formula_guard, chunk_rows)
        else:
            write_xlsx(tables_of(value, sheet_name), tmp, formula_guard, chunk_rows)
        os.replace(tmp, p)
    except ExportError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as exc:  # a full disk (xlsxwriter says so in its own exception), bad data
        tmp.unlink(missing_ok=True)
        raise ExportError(f"could not write {p}: {one_line(exc)}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p
