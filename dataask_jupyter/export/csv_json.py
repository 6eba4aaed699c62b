"""CSV and JSON writers: rows streamed in chunks, dates in ISO 8601.

CSV is one table, CRLF line ends (RFC 4180), formula guard on text cells and headers. JSON is an
array of records (a table's meaningful index becomes columns); a dict or list of tables gives an
object or array of those; a figure is its plotly JSON; other values plain JSON (NaN/inf -> null).
"""

from __future__ import annotations

import csv
import datetime as _dt
import decimal
import json
import math
from typing import IO, Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from dataask_jupyter.export.tables import chunks, column_names, guard_text, keep_index
from dataask_jupyter.values import is_figure, is_table, to_frame


def write_csv(frame: pd.DataFrame, f: IO[str], guard: bool, chunk_rows: int) -> None:
    names = column_names(frame, keep_index(frame))
    header = [guard_text(n) for n in names] if guard else names
    # CRLF (RFC 4180): the csv module quotes fields holding any line-terminator character, so
    # with CRLF a bare CR inside a cell is quoted too (with "\n" it would split the row)
    csv.writer(f, lineterminator="\r\n").writerow(header)
    if len(frame) == 0:
        return
    for chunk in chunks(frame, chunk_rows, guard):
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
    names = column_names(frame, keep_index(frame))
    unit = _date_unit(frame)
    f.write("[")
    first = True
    for chunk in chunks(frame, chunk_rows, guard=False):
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
    if is_table(v):
        return json.loads(to_frame(v).to_json(orient="records", date_format="iso"))
    return str(v)


def write_json(value: Any, f: IO[str], chunk_rows: int) -> None:
    if is_figure(value):
        import plotly.io as pio

        f.write(pio.to_json(value, validate=False))
        return
    if is_table(value):
        _records(to_frame(value), f, chunk_rows)
    elif isinstance(value, dict) and value and all(is_table(v) for v in value.values()):
        f.write("{")
        for i, (k, v) in enumerate(value.items()):
            f.write(("\n" if i == 0 else ",\n") + json.dumps(str(k), ensure_ascii=False) + ": ")
            _records(to_frame(v), f, chunk_rows)
        f.write("\n}")
    elif isinstance(value, (list, tuple)) and value and all(is_table(v) for v in value):
        f.write("[")
        for i, v in enumerate(value):
            f.write("\n" if i == 0 else ",\n")
            _records(to_frame(v), f, chunk_rows)
        f.write("\n]")
    else:
        f.write(json.dumps(_plain(value), ensure_ascii=False, indent=1, allow_nan=False))
    f.write("\n")
