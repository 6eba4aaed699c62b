"""The conversation as plain pandas code: a notebook (``.ipynb``) or a script (``.py``).

The result runs without dataask or any LLM. The first cells load the same files into ``dfs`` (all
datasets by name) and ``df`` with ``pd.read_csv`` / ``pd.read_excel`` / ``pd.read_parquet`` and the
arguments that match what dataask's reader decided (encoding, separator, decimal comma, sheet,
header row, range), then rename columns and parse dates the way the reader did. When the current
tables are given (``frames``), the load code is run once at export and its table compared with
them; a difference, or a file that cannot be loaded, is said in a markdown cell. Then per answer
a markdown cell with the question and a code cell with its code, ``df`` bound to the dataset the
question was about, ``prev`` chained as the sandbox does (``prev = result``) and ``result`` shown.
Questions without an answer keep their question and error as markdown only.
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dataask_jupyter.errors import ExportError
from dataask_jupyter.store import DatasetRecord, TurnRecord, source_state

if TYPE_CHECKING:
    import nbformat
    import pandas as pd

__all__ = ["to_notebook", "to_script", "write_conversation"]

CHECK_MAX_BYTES = 64 << 20  # files up to this size are re-read at export to check the load code
_WORKBOOKS = ("xlsx", "xls", "xlsb", "xlsm", "ods")
_RANGE = re.compile(r"^\s*([A-Za-z]{1,3})(\d*)(?:\s*:\s*([A-Za-z]{1,3})(\d*))?\s*$")


@dataclass
class _Cell:
    kind: str  # "markdown" | "code"
    source: str


# --- loading the datasets -----------------------------------------------------------------


def _call(func: str, args: list[str], kwargs: dict[str, Any]) -> str:
    parts = args + [f"{k}={v!r}" for k, v in kwargs.items()]
    one = f"{func}({', '.join(parts)})"
    if len(one) <= 88:
        return one
    return f"{func}(\n" + "".join(f"    {p},\n" for p in parts) + ")"


def _csv_kwargs(rec: DatasetRecord) -> dict[str, Any]:
    """``pd.read_csv`` arguments matching the reader's decisions for this CSV: it plans the read
    again (encoding, separator, title lines or the given header row, decimal comma)."""
    kwargs: dict[str, Any] = {}
    plan = None
    if rec.source and os.path.isfile(rec.source):
        try:
            from dataask_jupyter.readers.csvfile import csv_plan

            plan = csv_plan(rec.source, rec.header_row - 1 if rec.header_row else None)
        except Exception:  # the check at export says when the plain read differs
            plan = None
    sep = plan.delimiter if plan else rec.delimiter
    if sep and sep != ",":
        kwargs["sep"] = sep
    encoding = plan.encoding if plan else rec.encoding
    if encoding and encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
        kwargs["encoding"] = encoding
    if plan is not None:
        if plan.skiprows:
            kwargs["skiprows"] = plan.skiprows
        if plan.decimal != ".":
            kwargs["decimal"] = plan.decimal
        if plan.thousands:
            kwargs["thousands"] = plan.thousands
    elif rec.header_row is not None:
        kwargs["skiprows"] = rec.header_row - 1
    return kwargs


def _cell_range(text: str | None) -> tuple[str, int | None, str, int | None] | None:
    """("A", 5, "E", 9) for "A5:E9" (also "$A$5:$E$9", "A:E", "B3", "Sheet 2!A5:E9")."""
    if not text:
        return None
    m = _RANGE.match(text.rsplit("!", 1)[-1].replace("$", ""))
    if not m:
        return None
    c1, r1, c2, r2 = m.groups()
    c2, r2 = (c2, r2) if c2 else (c1, r1)
    return c1.upper(), int(r1) if r1 else None, c2.upper(), int(r2) if r2 else None


def _excel_kwargs(rec: DatasetRecord) -> dict[str, Any]:
    """``pd.read_excel`` arguments for the table the reader read: the range given or found,
    and the header row given or found (1-based rows, as Excel numbers them)."""
    kwargs: dict[str, Any] = {"sheet_name": rec.sheet if rec.sheet is not None else 0}
    if rec.engine in ("calamine", "openpyxl", "xlrd", "odf", "pyxlsb"):
        kwargs["engine"] = rec.engine
    cells = _cell_range(rec.range) or _cell_range(rec.table_range)
    header = rec.header_row or rec.table_header_row
    if cells is not None:
        c1, r1, c2, _ = cells
        kwargs["usecols"] = f"{c1}:{c2}"
        header = header or r1
    if header is not None and header > 1:
        kwargs["skiprows"] = header - 1
    if cells is not None and cells[3] is not None:
        kwargs["nrows"] = max(0, cells[3] - (header or 1))
    return kwargs


def _read_code(rec: DatasetRecord) -> str | None:
    """The pandas call that reads ``rec``'s file, or None if there is no file to read."""
    if not rec.source:
        return None
    path = rec.source
    if rec.format == "csv":
        return _call("pd.read_csv", [repr(path)], _csv_kwargs(rec))
    if rec.format in _WORKBOOKS:
        return _call("pd.read_excel", [repr(path)], _excel_kwargs(rec))
    if rec.format == "parquet":
        return _call("pd.read_parquet", [repr(path)], {})
    return None


def _fixups(name: str, frame: pd.DataFrame, rec: DatasetRecord) -> list[str]:
    """Lines that turn the plain read into the reader's table: column names, dates."""
    target = f"dfs[{name!r}]"
    lines = []
    names = [str(c) for c in frame.columns]
    if rec.columns and names != rec.columns and len(names) == len(rec.columns):
        lines.append(f"{target}.columns = {rec.columns!r}")
        names = list(rec.columns)
    for i, col in enumerate(names):
        want = rec.dtypes.get(col, "")
        if want.startswith("datetime64") and not str(frame.dtypes.iloc[i]).startswith("datetime"):
            lines.append(f"{target}[{col!r}] = pd.to_datetime({target}[{col!r}])")
    return lines


def _difference(got: pd.DataFrame, want: pd.DataFrame) -> str | None:
    """How ``got`` differs from ``want``, in a few words; None when the values are the same."""
    import pandas as pd

    if got.shape != want.shape:
        return f"{got.shape[0]:,} x {got.shape[1]} instead of {want.shape[0]:,} x {want.shape[1]}"
    if [str(c) for c in got.columns] != [str(c) for c in want.columns]:
        return "other column names"
    for i, col in enumerate(want.columns):
        a, b = got.iloc[:, i], want.iloc[:, i]
        try:
            pd.testing.assert_series_equal(
                a.reset_index(drop=True),
                b.reset_index(drop=True),
                check_dtype=False,
                check_names=False,
                check_exact=False,
            )
        except AssertionError:
            return f"other values in column {str(col)!r}"
        except Exception:
            return f"values in column {str(col)!r} could not be compared"
    return None


def _load_cells(
    datasets: Sequence[DatasetRecord], frames: Mapping[str, pd.DataFrame] | None
) -> list[_Cell]:
    import pandas as pd

    lines = ["dfs = {}"]
    caveats: list[str] = []
    for rec in datasets:
        read = _read_code(rec)
        if read is None:
            caveats.append(
                f"`{rec.name}` was not read from a file ({rec.format}), so this export cannot "
                f"load it: define `dfs[{rec.name!r}]` yourself before running the answers."
            )
            continue
        state = source_state(rec) if rec.fingerprint else "same"
        if not os.path.isfile(rec.source):
            caveats.append(f"`{rec.name}`: {rec.source} no longer exists; the load will fail.")
        elif state == "changed":
            caveats.append(
                f"`{rec.name}`: {rec.source} changed since dataask read it; the answers below "
                "may come out differently."
            )
        lines.append(f"dfs[{rec.name!r}] = {read}")
        if not os.path.isfile(rec.source) or os.path.getsize(rec.source) > CHECK_MAX_BYTES:
            continue
        try:  # run the load code once (our own literal call, never generated code) to check it
            ns: dict[str, Any] = {"pd": pd, "dfs": {}}
            exec(f"dfs[{rec.name!r}] = {read}", ns)
            fix = _fixups(rec.name, ns["dfs"][rec.name], rec)
            if fix:
                exec("\n".join(fix), ns)
                lines.extend(fix)
            want = (frames or {}).get(rec.name)
            diff = _difference(ns["dfs"][rec.name], want) if want is not None else None
        except Exception as exc:
            diff = f"pandas could not read it this way ({type(exc).__name__}: {exc})"
        if diff:
            done = "; ".join(rec.notes) if rec.notes else "no notes"
            caveats.append(
                f"`{rec.name}`: this plain pandas load gives a different table from the one "
                f"dataask read ({diff}). dataask's reader noted: {done}."
            )
    active = next((r.name for r in datasets if r.active), datasets[-1].name if datasets else None)
    if active is not None:
        lines.append(f"df = dfs[{active!r}]")
    lines.append("prev = None")
    cells = [_Cell("code", "\n".join(lines))]
    if caveats:
        text = "**Not reproduced exactly:**\n\n" + "\n".join(f"- {c}" for c in caveats)
        cells.append(_Cell("markdown", text))
    return cells


# --- the answers --------------------------------------------------------------------------


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _uses_df(code: str) -> tuple[bool, bool, set[str]]:
    """(rebinds ``df``, changes ``df`` in place, names read) for ``code``."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return True, True, set()
    rebinds = mutates = False
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
            if node.id == "df" and isinstance(node.ctx, (ast.Store, ast.Del)):
                rebinds = True
        elif isinstance(node, (ast.Subscript, ast.Attribute)) and isinstance(
            node.ctx, (ast.Store, ast.Del)
        ):
            mutates = mutates or _root(node) == "df"
        elif isinstance(node, ast.Call) and _root(node.func) == "df":
            inplace = any(
                k.arg == "inplace" and not (isinstance(k.value, ast.Constant) and not k.value.value)
                for k in node.keywords
            )
            method = node.func.attr if isinstance(node.func, ast.Attribute) else ""
            mutates = mutates or inplace or method in ("insert", "pop", "update")
    return rebinds, mutates, names


def _answer_cells(turns: Sequence[TurnRecord], first: str | None) -> tuple[list[_Cell], set[str]]:
    cells: list[_Cell] = []
    used: set[str] = set()
    bound, stale = first, False  # which dataset `df` holds; whether the last cell changed it
    for t in turns:
        head = f"**{t.number}.** {t.question.strip()}"
        if t.dataset and t.dataset != first:
            head += f"  \n*(dataset `{t.dataset}`)*"
        if t.cancelled or t.error is not None or not t.code.strip():
            why = "cancelled" if t.cancelled else (t.error or "no code")
            text = f"{head}\n\n*No answer: {why}*"
            if t.code.strip():
                text += "\n\n```python\n" + t.code.strip() + "\n```"
            cells.append(_Cell("markdown", text))
            continue
        rebinds, mutates, names = _uses_df(t.code)
        used |= names
        lines = []
        if t.dataset and (mutates or stale or t.dataset != bound):
            lines.append(f"df = dfs[{t.dataset!r}]" + (".copy()" if mutates else ""))
            bound = t.dataset
        lines += [t.code.strip(), "prev = result", "result"]
        cells.append(_Cell("markdown", head))
        cells.append(_Cell("code", "\n".join(lines)))
        stale = rebinds or mutates
    return cells, used


def _cells(
    turns: Sequence[TurnRecord],
    datasets: Sequence[DatasetRecord],
    frames: Mapping[str, pd.DataFrame] | None,
) -> list[_Cell]:
    active = next((r.name for r in datasets if r.active), datasets[-1].name if datasets else None)
    answers, used = _answer_cells(turns, active)
    imports = ["import numpy as np", "import pandas as pd"]
    if "px" in used:
        imports.append("import plotly.express as px")
    if "go" in used:
        imports.append("import plotly.graph_objects as go")
    intro = (
        f"# dataask conversation ({dt.date.today().isoformat()})\n\n"
        "The questions and the pandas code that answered them, runnable without dataask or an "
        "LLM. `dfs` holds the datasets by name, `df` the one each question was about, `prev` "
        "the previous answer's value; each answer is left in `result`."
    )
    load = _load_cells(datasets, frames)
    load[0].source = "\n".join(imports) + "\n\n" + load[0].source
    return [_Cell("markdown", intro), *load, *answers]


def to_notebook(
    turns: Sequence[TurnRecord],
    datasets: Sequence[DatasetRecord],
    *,
    frames: Mapping[str, pd.DataFrame] | None = None,
) -> nbformat.NotebookNode:
    """The conversation as a notebook of plain pandas code (see the module docstring)."""
    try:
        import nbformat
        from nbformat import v4
    except ImportError:
        raise ExportError(
            "exporting a notebook needs nbformat: pip install nbformat (or export .py)"
        ) from None
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for cell in _cells(turns, datasets, frames):
        make = v4.new_markdown_cell if cell.kind == "markdown" else v4.new_code_cell
        nb.cells.append(make(cell.source))
    nbformat.validate(nb)
    return nb


def to_script(
    turns: Sequence[TurnRecord],
    datasets: Sequence[DatasetRecord],
    *,
    frames: Mapping[str, pd.DataFrame] | None = None,
) -> str:
    """The conversation as a Python script in the percent format (``# %%`` cells)."""
    parts = []
    for cell in _cells(turns, datasets, frames):
        if cell.kind == "markdown":
            body = "\n".join(f"# {line}".rstrip() for line in cell.source.splitlines())
            parts.append(f"# %% [markdown]\n{body}")
        else:
            source = cell.source
            if source.endswith("\nresult"):
                source = source[: -len("result")] + "print(result)"
            parts.append(f"# %%\n{source}")
    return "\n\n".join(parts) + "\n"


def write_conversation(
    path: str | os.PathLike[str],
    turns: Sequence[TurnRecord],
    datasets: Sequence[DatasetRecord],
    *,
    frames: Mapping[str, pd.DataFrame] | None = None,
) -> Path:
    """Write the conversation to ``path`` (``.ipynb`` or ``.py``), atomically."""
    import tempfile

    target = Path(path).expanduser()
    suffix = target.suffix.lower()
    if not turns:
        raise ExportError("no questions asked yet: nothing to export")
    if suffix == ".ipynb":
        import nbformat

        text = nbformat.writes(to_notebook(turns, datasets, frames=frames))
    elif suffix == ".py":
        text = to_script(turns, datasets, frames=frames)
    else:
        raise ExportError(f"cannot write the conversation as {suffix or 'a file without suffix'}")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".part-", dir=target.parent or ".")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise ExportError(f"could not write {target}: {exc.strerror or exc}") from None
    return target
