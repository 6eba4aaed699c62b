"""Column types for cells read one by one (workbooks, DataFrames), and the Arrow guarantee.

A workbook column can hold anything: numbers with the odd "TBD", dates next to text, times of
day, durations, Excel error values. :func:`typed_column` turns such a column into one type a
person expects (numbers, dates, times, durations, booleans or text) and writes a note naming the
cells it could not keep. :func:`ensure_arrow` makes sure every frame the readers return encodes
as Arrow IPC, the way it crosses to the sandbox.
"""

from __future__ import annotations

import datetime as _dt
import re
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from dataask_jupyter.errors import LoadError

from .common import one_line, quote

#: Excel's error values; a cell holding one reads as missing.
ERROR_CODES = frozenset(
    {
        "#DIV/0!",
        "#N/A",
        "#NAME?",
        "#NULL!",
        "#NUM!",
        "#REF!",
        "#VALUE!",
        "#GETTING_DATA",
        "#SPILL!",
        "#CALC!",
        "#FIELD!",
        "#BLOCKED!",
        "#CONNECT!",
        "#BUSY!",
        "#UNKNOWN!",
    }
)
_MAX_CELLS_NAMED = 5
_NUMBER_TEXT_RE = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?([eE][+-]?\d+)?$")
_LEADING_ZERO_RE = re.compile(r"^[+-]?0\d")
_KIND_WORDS = {
    "number": "numbers",
    "datetime": "dates",
    "time": "times of day",
    "duration": "durations",
    "bool": "TRUE/FALSE values",
}


class CellError(str):
    """An Excel error value (``#DIV/0!``, ``#N/A``...) read from a cell."""


def is_blank(value: Any) -> bool:
    """An empty cell: None, NaN/NaT, or text of spaces only."""
    if value is None or value == "":
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, float):
        return value != value
    return value is pd.NaT


def _kind(value: Any) -> str:
    """What a cell holds: number, datetime, time, duration, bool, text, error or blank."""
    if isinstance(value, str):
        if isinstance(value, CellError) or value.strip() in ERROR_CODES:
            return "error"
        return "text" if value.strip() else "blank"
    if value is None or value is pd.NaT:
        return "blank"
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "blank" if value != value else "number"
    if isinstance(value, (_dt.datetime, _dt.date, np.datetime64)):
        return "datetime"
    if isinstance(value, _dt.time):
        return "time"
    if isinstance(value, (_dt.timedelta, np.timedelta64)):
        return "duration"
    try:
        float(value)
    except (TypeError, ValueError):
        return "text"
    return "number"  # Decimal, Fraction and the like


def _number_from_text(text: str) -> float | None:
    """A number written as text ("1,234.5", " 42 "), or None; "007" stays text."""
    t = text.strip()
    if not t or not _NUMBER_TEXT_RE.match(t) or _LEADING_ZERO_RE.match(t):
        return None
    if not any(ch.isdigit() for ch in t):
        return None
    return float(t.replace(",", ""))


def as_text(value: Any) -> str | None:
    """A cell as the text a person sees (whole numbers without ".0"); None when blank."""
    if is_blank(value):
        return None
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    if isinstance(value, _dt.datetime):
        return value.isoformat(sep=" ") if value.time() != _dt.time() else value.date().isoformat()
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    return str(value)


def _cell_list(cells: list[tuple[str, Any]], total: int) -> str:
    shown = [f"{ref} ({quote(v)})" if v is not None else ref for ref, v in cells]
    more = f" and {total - len(shown)} more" if total > len(shown) else ""
    return ", ".join(shown) + more


def _numbers(values: Sequence[Any]) -> np.ndarray | pd.api.extensions.ExtensionArray:
    try:
        arr = np.array(values, dtype="float64")  # numbers and None (-> NaN), at C speed
    except (TypeError, ValueError):
        arr = np.array([np.nan if is_blank(v) else float(v) for v in values], dtype="float64")
    finite = arr[~np.isnan(arr)]
    if (
        len(finite) == len(arr)
        and len(arr) > 0
        and np.all(np.mod(finite, 1) == 0)
        and np.all(np.abs(finite) < 2**53)
    ):
        return arr.astype("int64")
    return arr


def _datetimes(values: Sequence[Any]) -> Any:
    clean = [None if is_blank(v) else v for v in values]
    try:
        # microseconds, like the CSV reader: Excel stores no finer, and years 1-9999 fit
        return pd.to_datetime(pd.Series(clean, dtype=object)).astype("datetime64[us]").array
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # time zones: the wall-clock time in UTC is kept
        arr = np.array(
            [np.datetime64("NaT") if v is None else np.datetime64(v, "us") for v in clean],
            dtype="datetime64[us]",
        )
    return pd.array(arr)


def _convert(kind: str, values: Sequence[Any]) -> Any:
    if kind == "number":
        return _numbers(values)
    if kind == "datetime":
        return _datetimes(values)
    if kind == "duration":
        return pd.to_timedelta(pd.Series([None if is_blank(v) else v for v in values])).array
    if kind == "bool":
        if not any(is_blank(v) for v in values):
            return np.array([bool(v) for v in values], dtype=bool)
        return pd.array([None if is_blank(v) else bool(v) for v in values], dtype="boolean")
    if kind == "time":
        return np.array([None if is_blank(v) else v for v in values], dtype=object)
    return pd.array([as_text(v) for v in values], dtype="str")


_TYPE_KINDS: dict[type, str] = {
    float: "number",
    int: "number",
    bool: "bool",
    _dt.datetime: "datetime",
    _dt.date: "datetime",
    _dt.time: "time",
    _dt.timedelta: "duration",
    type(None): "blank",
}


def _kinds(values: Sequence[Any]) -> list[str]:
    """The kind of every cell; plain types by a C-level lookup, the rest one by one."""
    kinds = list(map(_TYPE_KINDS.get, map(type, values)))
    return [
        k if k is not None and not (k == "number" and values[i] != values[i]) else _kind(values[i])
        for i, k in enumerate(kinds)
    ]


def _fast(values: Sequence[Any]) -> Any:
    """The typed column when every cell is of one plain type or blank (""), else None."""
    types = set(map(type, values))
    if str in types:
        if types == {str}:
            if ERROR_CODES.isdisjoint(values):
                return pd.array([v if v.strip() else None for v in values], dtype="str")
            return None
        if any(type(v) is str and v.strip() for v in values):
            return None
        values = [None if type(v) is str else v for v in values]
        types.discard(str)
        types.add(type(None))
    plain = types - {type(None)}
    if plain <= {float, int} and plain:
        return _convert("number", values)
    if plain <= {_dt.datetime, _dt.date} and plain:
        return _convert("datetime", values)
    if plain == {_dt.timedelta}:
        return _convert("duration", values)
    if plain == {_dt.time}:
        return _convert("time", values)
    if plain == {bool}:
        return _convert("bool", values)
    return None


def typed_column(
    values: Sequence[Any],
    name: str,
    ref: Callable[[int], str],
    notes: list[str],
) -> Any:
    """Values of one column as one type; notes name the cells that did not fit.

    ``ref(i)`` names the i-th cell the way the user finds it (``"C7"``, or ``"row 7"``).
    Numbers (or dates, times, ...) with a few odd cells (at most a third) stay numbers and the odd
    cells read as missing; otherwise the column is text. Error values read as missing.
    """
    fast = _fast(values)
    if fast is not None:
        return fast
    kinds = _kinds(values)
    counts = Counter(kinds)
    errors = [i for i, k in enumerate(kinds) if k == "error"]
    if errors:
        codes = Counter(str(values[i]).strip() for i in errors)
        what = ", ".join(f"{n} {code}" for code, n in codes.most_common(4))
        notes.append(
            f"Column {quote(name)}: {len(errors)} cell{'s' if len(errors) > 1 else ''} held "
            f"Excel error values ({what}) and read as missing: "
            f"{_cell_list([(ref(i), None) for i in errors[:_MAX_CELLS_NAMED]], len(errors))}."
        )
        values = [None if k == "error" else v for v, k in zip(values, kinds, strict=False)]
        for i in errors:
            kinds[i] = "blank"
        counts = Counter(kinds)
    filled = {k: n for k, n in counts.items() if k != "blank"}
    if not filled:
        return pd.array([None] * len(values), dtype="str")
    if len(filled) == 1:
        return _convert(next(iter(filled)), values)
    if counts.get("number") and counts.get("text"):
        values, kinds = _numbers_stored_as_text(values, kinds, name, ref, notes)
        filled = {k: n for k, n in Counter(kinds).items() if k != "blank"}
        if len(filled) == 1:
            return _convert("number", values)
    main, _n_main = max(filled.items(), key=lambda kv: (kv[0] != "text", kv[1]))
    total = sum(filled.values())
    odd = [i for i, k in enumerate(kinds) if k not in ("blank", main)]
    if main != "text" and len(odd) * 3 <= total:
        cells = [(ref(i), as_text(values[i])) for i in odd[:_MAX_CELLS_NAMED]]
        notes.append(
            f"Column {quote(name)} holds {_KIND_WORDS[main]}; {len(odd)} cell"
            f"{'s' if len(odd) > 1 else ''} held something else and read as missing: "
            f"{_cell_list(cells, len(odd))}."
        )
        kept = [None if k != main else v for v, k in zip(values, kinds, strict=True)]
        return _convert(main, kept)
    mixed = " and ".join(_KIND_WORDS.get(k, "text") for k in sorted(filled, key=filled.__getitem__))
    notes.append(f"Column {quote(name)} mixes {mixed}; it was read as text.")
    return _convert("text", values)


def _numbers_stored_as_text(
    values: Sequence[Any], kinds: list[str], name: str, ref: Callable[[int], str], notes: list[str]
) -> tuple[list[Any], list[str]]:
    """Text cells that spell a number, in a column that holds numbers, become numbers."""
    out = list(values)
    kinds = list(kinds)
    changed: list[int] = []
    for i, k in enumerate(kinds):
        if k == "text":
            number = _number_from_text(str(values[i]))
            if number is not None:
                out[i] = number
                kinds[i] = "number"
                changed.append(i)
    if changed:
        cells = [(ref(i), None) for i in changed[:_MAX_CELLS_NAMED]]
        notes.append(
            f"Column {quote(name)}: {len(changed)} cell{'s' if len(changed) > 1 else ''} held "
            f"numbers stored as text and read as numbers: {_cell_list(cells, len(changed))}."
        )
    return out, kinds


# --------------------------------------------------------------------------------------------
# the Arrow guarantee


def _arrow_ok(values: Any) -> bool:
    try:
        pa.array(values, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return False
    return True


def ensure_arrow(frame: pd.DataFrame, notes: list[str], source: str) -> pd.DataFrame:
    """Make ``frame`` encode as Arrow IPC (how it crosses to the sandbox), retyping columns.

    Object columns that Arrow refuses are typed with :func:`typed_column` (cells named by row);
    a non-trivial index that Arrow refuses becomes a plain column. Raises LoadError if the frame
    still cannot be encoded.
    """
    from dataask_jupyter.results import frame_to_ipc

    for i in range(frame.shape[1]):
        col = frame.iloc[:, i]
        if col.dtype != object or _arrow_ok(col):
            continue
        name = str(frame.columns[i])
        fixed = typed_column(col.tolist(), name, lambda j: f"row {j + 1}", notes)
        if not _arrow_ok(fixed):
            fixed = pd.array([as_text(v) for v in col.tolist()], dtype="str")
            notes.append(f"Column {quote(name)} was read as text so that it can be analysed.")
        frame.isetitem(i, fixed)
    if not isinstance(frame.index, pd.RangeIndex) and not _arrow_ok(frame.index):
        frame = frame.reset_index(drop=False)
        frame.columns = pd.Index([str(c) for c in frame.columns], dtype=object)
        notes.append("The row labels were kept as a column, in text form where needed.")
        first = frame.iloc[:, 0]
        if not _arrow_ok(first):
            frame.isetitem(0, pd.array([as_text(v) for v in first.tolist()], dtype="str"))
    try:
        frame_to_ipc(frame.head(1000))
    except Exception as exc:
        raise LoadError(
            f"{source} was read, but its table cannot be prepared for analysis "
            f"({one_line(exc, 120)}); save it as CSV or XLSX and load that"
        ) from None
    return frame
