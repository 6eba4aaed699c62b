"""Find the table in a sheet of cells, the way a person lays one out.

Input is a grid of cell values (``""`` for a blank cell) with its position on the sheet and the
merged ranges. :func:`find_table` returns the column names, the data cells by column and a note
for every decision: title rows above the header skipped, header rows found (two-row headers with
merged cells joined, e.g. ``Revenue (EUR) Jul``), blank rows and columns dropped, totals and notes
rows under the table, other tables on the sheet. ``header_row`` and ``cells`` (an Excel range)
override the detection. Only the top and bottom rows of a block are examined one by one; the rest
is C-level list work, so a 100,000-row sheet costs little more than a clean one.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dataask_jupyter.errors import LoadError

from .coerce import as_text, is_blank
from .common import quote

_HEADER_SCAN = 30
_TOTAL_RE = re.compile(
    r"^\s*(grand\s+|sub-?\s*)?totals?\b|^\s*(sum|summe|gesamt|insgesamt|totaal|totale|suma)\b"
    r"|^\s*total\s+g[ée]n[ée]ral",
    re.IGNORECASE,
)
_NOTE_RE = re.compile(
    r"^\s*([*†‡¹²³]|\(\d\)|notes?\b|source\b|sources\b|quelle\b|hinweis\b|fuente\b|nb\b)",
    re.IGNORECASE,
)
_RANGE_RE = re.compile(
    r"^\s*(?:(?P<sheet>'[^']+'|[^!]+)!)?\$?(?P<c1>[A-Za-z]{1,3})\$?(?P<r1>\d*)"
    r"(?::\$?(?P<c2>[A-Za-z]{1,3})\$?(?P<r2>\d*))?\s*$"
)


# --------------------------------------------------------------------------------------------
# Excel coordinates


def col_letter(index: int) -> str:
    """0-based column index -> Excel letters (0 -> "A", 27 -> "AB")."""
    out = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        out = chr(65 + rem) + out
    return out


def col_index(letters: str) -> int:
    """Excel letters -> 0-based column index."""
    n = 0
    for ch in letters.upper():
        n = n * 26 + ord(ch) - 64
    return n - 1


def a1(r1: int, c1: int, r2: int, c2: int) -> str:
    """0-based inclusive corners -> "B4:F20"."""
    return f"{col_letter(c1)}{r1 + 1}:{col_letter(c2)}{r2 + 1}"


@dataclass(frozen=True)
class CellRange:
    """An Excel range, 0-based and inclusive; ``r2``/``c2`` None when open-ended ("A:E")."""

    r1: int
    c1: int
    r2: int | None
    c2: int | None
    sheet: str | None = None


def parse_range(text: str) -> CellRange:
    """Parse "A5:E9", "$A$5:$E$9", "A:E", "B3" or "Sheet 2!A5:E9"; LoadError if malformed."""
    m = _RANGE_RE.match(str(text))
    bad = LoadError(
        f"range {quote(text)} is not an Excel range; write it like A5:E9 "
        "(top-left and bottom-right cells) or A:E (whole columns)"
    )
    if not m:
        raise bad
    c1, r1, c2, r2 = m.group("c1"), m.group("r1"), m.group("c2"), m.group("r2")
    if c2 is None:
        c2, r2 = c1, r1
    if bool(r1) != bool(r2) or (r1 and int(r1) < 1) or (r2 and int(r2) < 1):
        raise bad
    sheet = m.group("sheet")
    if sheet:
        sheet = sheet.strip()
        if sheet.startswith("'") and sheet.endswith("'"):
            sheet = sheet[1:-1]
    top, left = (int(r1) - 1 if r1 else 0), col_index(c1)
    bottom, right = (int(r2) - 1 if r2 else None), col_index(c2)
    if right < left or (bottom is not None and bottom < top):
        raise bad
    return CellRange(top, left, bottom, right, sheet or None)


# --------------------------------------------------------------------------------------------
# the grid and the table found in it


@dataclass
class Grid:
    """Cells of a sheet: ``rows[i][j]`` is sheet cell (top + i, left + j), 0-based."""

    rows: list[list[Any]]  # blank cells are "" (never None)
    top: int = 0
    left: int = 0
    merges: list[tuple[int, int, int, int]] = field(default_factory=list)  # r1, c1, r2, c2
    width: int = field(init=False)
    #: the columns of each band of non-blank rows, by the band's first row (filled by _blocks)
    band_cols: dict[int, tuple[int, list[tuple[Any, ...]]]] = field(init=False)

    def __post_init__(self) -> None:
        self.width = max(map(len, self.rows), default=0)
        if any(len(r) != self.width for r in self.rows):
            self.rows = [r + [""] * (self.width - len(r)) for r in self.rows]
        self.band_cols = {}


@dataclass
class Table:
    """What :func:`find_table` found: names, data cells by column, where, and why."""

    names: list[str]
    columns: list[list[Any]]
    row_numbers: list[int]  # 1-based sheet rows of the data rows
    col_numbers: list[int]  # 0-based sheet columns
    header_row: int | None  # 1-based sheet row of the (last) header row; None: no header
    range: str
    notes: list[str] = field(default_factory=list)

    def ref(self, col: int) -> Callable[[int], str]:
        """A function naming the i-th data cell of column ``col`` ("C7")."""
        letter = col_letter(self.col_numbers[col])
        rows = self.row_numbers
        return lambda i: f"{letter}{rows[i]}"


@dataclass
class _Block:
    rows: list[int]  # indices into grid.rows
    c1: int  # grid column, inclusive
    c2: int  # grid column, exclusive
    dense: bool = False  # looks like a table (several rows with several cells)

    @property
    def size(self) -> int:
        return len(self.rows) * (self.c2 - self.c1)


def _nonblank(row: Sequence[Any], c1: int, c2: int) -> int:
    part = row[c1:c2]
    return len(part) - part.count("")


def _cells(row: Sequence[Any], c1: int, c2: int) -> list[tuple[int, Any]]:
    return [(j, v) for j, v in enumerate(row[c1:c2], start=c1) if not is_blank(v)]


def _year_like(v: Any) -> bool:
    return (
        isinstance(v, (int, float))
        and not isinstance(v, bool)
        and float(v).is_integer()
        and 1900 <= v <= 2100
    )


def _label_like(v: Any) -> bool:
    """A cell that can be (part of) a column name: text, a year, a date."""
    return isinstance(v, (str, _dt.date)) or _year_like(v)


def _is_text(v: Any) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _short(v: Any, limit: int = 60) -> str:
    text = " ".join(str(as_text(v) or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rows_text(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"row {numbers[0]}"
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"rows {numbers[0]}-{numbers[-1]}"
    return "rows " + ", ".join(str(n) for n in numbers[:8]) + ("…" if len(numbers) > 8 else "")


# --------------------------------------------------------------------------------------------
# blocks: what blank rows and columns separate


def _bands(rows: list[list[Any]], width: int) -> list[tuple[int, int]]:
    """Runs [start, end) of rows that are not entirely blank."""
    bands: list[tuple[int, int]] = []
    start = None
    for i, row in enumerate(rows):
        blank = row.count("") >= len(row)
        if not blank and start is None:
            start = i
        elif blank and start is not None:
            bands.append((start, i))
            start = None
    if start is not None:
        bands.append((start, len(rows)))
    return bands


def _blocks(grid: Grid) -> list[_Block]:
    rows, width = grid.rows, grid.width
    blocks: list[_Block] = []
    for s, e in _bands(rows, width):
        cols = list(zip(*rows[s:e], strict=True))
        grid.band_cols[s] = (e, cols)
        occupied = [len(c) - c.count("") > 0 for c in cols]
        groups: list[list[int]] = []  # [c1, c2)
        for j, occ in enumerate(occupied):
            if occ and groups and groups[-1][1] == j:
                groups[-1][1] = j + 1
            elif occ:
                groups.append([j, j + 1])
        row_sets = []
        for c1, c2 in groups:
            if len(groups) == 1:
                row_sets.append(list(range(s, e)))
                continue
            filled = np.zeros(e - s, dtype=bool)
            for j in range(c1, c2):
                col = np.array(cols[j], dtype=object)
                filled |= col != ""
            row_sets.append((np.flatnonzero(filled) + s).tolist())
        # spacer columns inside one table: neighbours that fill the same rows belong together
        merged: list[tuple[list[int], list[int]]] = []
        for g, rs in zip(groups, row_sets, strict=False):
            if merged:
                prev_g, prev_rs = merged[-1]
                before, here = set(prev_rs), set(rs)
                if len(before & here) >= 0.9 * len(before | here):
                    merged[-1] = ([prev_g[0], g[1]], sorted(before | here))
                    continue
            merged.append((g, rs))
        for (c1, c2), rs in merged:
            blocks.append(_Block(rs, c1, c2))
    for b in blocks:
        wide = 0
        for i in sorted(set(b.rows[:_HEADER_SCAN] + b.rows[-5:])):
            if _nonblank(rows[i], b.c1, b.c2) >= 2:
                wide += 1
                if wide >= 2:
                    break
        b.dense = (b.c2 - b.c1) >= 2 and wide >= 2
    return blocks


def _starts_with_data(grid: Grid, b: _Block) -> bool:
    return any(not _label_like(v) for _j, v in _cells(grid.rows[b.rows[0]], b.c1, b.c2))


def _groups(grid: Grid, blocks: list[_Block]) -> list[list[_Block]]:
    """Table blocks, with blocks that continue the one above (same columns, no header) joined."""
    out: list[list[_Block]] = []
    tables = [b for b in blocks if b.dense]
    if not tables:
        biggest = max(blocks, key=lambda b: (len(b.rows), b.size))
        return [[biggest]]
    for b in sorted(tables, key=lambda b: (b.c1, b.rows[0])):
        if out:
            last = out[-1][-1]
            between = [
                o
                for o in blocks
                if o is not last
                and o is not b
                and last.rows[-1] < o.rows[0] < b.rows[0]
                and o.c1 < b.c2
                and b.c1 < o.c2
            ]
            if (last.c1, last.c2) == (b.c1, b.c2) and not between and _starts_with_data(grid, b):
                out[-1].append(b)
                continue
        out.append([b])
    return out


# --------------------------------------------------------------------------------------------
# header rows


def _value_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "year" if _year_like(v) else "number"
    if isinstance(v, (_dt.date, _dt.time, _dt.timedelta)):
        return "date"
    return "text"


def _is_data_row(grid: Grid, r: int, data: list[int], c1: int, c2: int) -> bool:
    """Whether the candidate header row is a row of data (the table has no header)."""
    first = _cells(grid.rows[r], c1, c2)
    if any(not _label_like(v) for _j, v in first):
        return True
    if not data:
        return False
    below = [grid.rows[d] for d in data[:20]]
    same = False
    for j, v in first:
        kinds = [_value_kind(row[j]) for row in below if j < len(row) and not is_blank(row[j])]
        if not kinds:
            continue
        top = max(set(kinds), key=kinds.count)
        if _value_kind(v) == "text" and top != "text":
            return False  # a name over figures: a header
        if (
            _value_kind(v) != "text"
            and top == _value_kind(v)
            and kinds.count(top) * 3 >= 2 * len(kinds)
        ):
            same = True
    return same


def _merge_cover(grid: Grid, r: int, c1: int, c2: int) -> int:
    """Blank cells of grid row ``r`` in [c1, c2) that a merged range covers."""
    if not grid.merges:
        return 0
    ar = grid.top + r
    n = 0
    for mr1, mc1, mr2, mc2 in grid.merges:
        if mr1 <= ar <= mr2 and (mc2 > mc1 or mr2 > mr1):
            lo, hi = max(mc1 - grid.left, c1), min(mc2 - grid.left + 1, c2)
            n += sum(1 for j in range(lo, hi) if is_blank(_at(grid, r, j)))
    return n


def _at(grid: Grid, r: int, c: int) -> Any:
    row = grid.rows[r]
    return row[c] if c < len(row) else ""


def _find_header(grid: Grid, rows: list[int], c1: int, c2: int) -> int:
    """Position in ``rows`` of the first row wide enough to name the columns."""
    width = c2 - c1
    need = 1 if width < 2 else max(2, math.ceil(width / 2))
    for k, r in enumerate(rows[:_HEADER_SCAN]):
        cells = _cells(grid.rows[r], c1, c2)
        if len(cells) + _merge_cover(grid, r, c1, c2) >= need:
            return k
    return 0


def _header_part_above(grid: Grid, r: int, c1: int, c2: int) -> bool:
    """An upper header row (e.g. merged group names), not a title or a "key: value" line."""
    cells = _cells(grid.rows[r], c1, c2)
    if not cells or not all(_label_like(v) for _j, v in cells):
        return False
    if any(str(v).rstrip().endswith((":", "\uff1a")) for _j, v in cells):
        return False
    if len(cells) == 1:
        return cells[0][0] != c1 and len(_short(cells[0][1], 200)) <= 40
    return cells[-1][0] >= c1 + 2 or (c2 - c1) <= 3


def _sub_header(grid: Grid, header: list[int], r: int, data: list[int], c1: int, c2: int) -> bool:
    """Whether grid row ``r`` continues the header rows above it (merged two-row headers)."""
    cells = _cells(grid.rows[r], c1, c2)
    if not cells or not all(_label_like(v) for _j, v in cells):
        return False
    above = header[-1]
    cols = {j for j, _v in cells}
    spans = False
    for mr1, mc1, mr2, mc2 in grid.merges:
        covers = cols & set(range(mc1 - grid.left, mc2 - grid.left + 1))
        if mr1 - grid.top <= above <= mr2 - grid.top < r and mc2 > mc1 and covers:
            spans = True
            break
    if not spans:
        top = grid.rows[above]
        for j in cols:
            if is_blank(_at(grid, above, j)) and any(
                not is_blank(top[k]) for k in range(c1, min(j, len(top)))
            ):
                spans = True
                break
    if not spans:
        return False
    for d in data[:20]:
        row = grid.rows[d]
        if any(not _is_text(row[j]) and not is_blank(row[j]) for j in cols if j < len(row)):
            return True
    return False


def _names(grid: Grid, header: list[int], c1: int, c2: int) -> list[str]:
    """One name per column from the header rows; upper rows carried over merged spans."""
    parts: list[list[str]] = [[] for _ in range(c1, c2)]
    for n, r in enumerate(header):
        last = n == len(header) - 1
        carry = ""
        carry_end = c2
        for j in range(c1, c2):
            v = _at(grid, r, j)
            if is_blank(v):
                v = _merged_value(grid, r, j)
            if not is_blank(v):
                carry = _short(v, 200)
                carry_end = _merge_end(grid, r, j, c2)
                text = carry
            elif not last and carry and j < carry_end and _below_filled(grid, header[n + 1 :], j):
                text = carry
            else:
                carry = ""
                text = ""
            if text and (not parts[j - c1] or parts[j - c1][-1] != text):
                parts[j - c1].append(text)
    return [" ".join(p) for p in parts]


def _merged_value(grid: Grid, r: int, j: int) -> Any:
    """The value of the merged range that covers blank cell (r, j) from above, or ""."""
    ar, aj = grid.top + r, grid.left + j
    for mr1, mc1, mr2, mc2 in grid.merges:
        if mr1 < ar <= mr2 and mc1 <= aj <= mc2:
            r0, j0 = mr1 - grid.top, mc1 - grid.left
            if 0 <= r0 < len(grid.rows) and j0 >= 0:
                return _at(grid, r0, j0)
    return ""


def _merge_end(grid: Grid, r: int, j: int, c2: int) -> int:
    """Where a value at (r, j) stops being carried right: its merged range, or no limit."""
    ar, aj = grid.top + r, grid.left + j
    for mr1, mc1, mr2, mc2 in grid.merges:
        if mr1 <= ar <= mr2 and mc1 <= aj <= mc2:
            return mc2 - grid.left + 1
    return 0 if grid.merges and _any_merge_in_row(grid, ar) else c2


def _any_merge_in_row(grid: Grid, ar: int) -> bool:
    return any(mr1 <= ar <= mr2 and mc2 > mc1 for mr1, mc1, mr2, mc2 in grid.merges)


def _below_filled(grid: Grid, rows: list[int], j: int) -> bool:
    return any(not is_blank(_at(grid, r, j)) for r in rows)


# --------------------------------------------------------------------------------------------
# rows under the table


def _label(row: Sequence[Any], c1: int, c2: int) -> str | None:
    for v in row[c1 : min(c2, c1 + 3)]:
        if _is_text(v):
            return str(v)
        if not is_blank(v):
            return None
    return None


def _numbers_in(grid: Grid, data: list[int], j: int) -> list[float]:
    """The finite numbers of column ``j`` in rows ``data``."""
    cells = _columns(grid, data, j, j + 1)[0]
    return [x for x in cells if type(x) in (int, float) and math.isfinite(x)]


def _is_total(grid: Grid, r: int, data: list[int], c1: int, c2: int) -> bool | None:
    """None: not a totals row; True: its numbers are the sums above; False: labelled only."""
    row = grid.rows[r]
    label = _label(row, c1, c2)
    if label is None or not _TOTAL_RE.match(label):
        return None
    for j in range(c1, min(c2, len(row))):
        v = row[j]
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            nums = _numbers_in(grid, data, j)
            if nums:
                s = math.fsum(nums)
                # the first figure decides: the sum (a total), the mean (an average row) or not
                if math.isclose(v, s, rel_tol=1e-6, abs_tol=0.01):
                    return True
                return None if math.isclose(v, s / len(nums), rel_tol=1e-6, abs_tol=0.01) else False
    return False


def _is_note(grid: Grid, r: int, c1: int, c2: int) -> bool:
    cells = _cells(grid.rows[r], c1, c2)
    if len(cells) != 1 or not _is_text(cells[0][1]) or c2 - c1 < 2:
        return False
    text = str(cells[0][1]).strip()
    return bool(_NOTE_RE.match(text)) or len(text) > 40


# --------------------------------------------------------------------------------------------
# the entry point


def find_table(
    grid: Grid,
    *,
    header_row: int | None = None,
    cells: CellRange | None = None,
) -> Table:
    """The table of ``grid`` (see the module docstring); LoadError if the sheet holds none.

    ``header_row``: 1-based sheet row of the column names. ``cells``: read exactly this range
    (its first row names the columns unless ``header_row`` says otherwise); rows that look like
    totals or notes are then flagged but kept.
    """
    if cells is not None:
        return _explicit(grid, cells, header_row)
    blocks = _blocks(grid)
    if not blocks:
        raise LoadError("no cells")
    groups = _groups(grid, blocks)
    if header_row is not None:
        hr = header_row - 1 - grid.top
        chosen = [g for g in groups if any(hr in b.rows for b in g)]
        if not chosen:
            near = [b for b in blocks if hr in b.rows]
            if not near:
                raise LoadError(
                    f"row {header_row} is blank; give the row that holds the column names"
                )
            groups.append([near[0]])
            chosen = [groups[-1]]
        main = chosen[0]
    else:
        main = max(groups, key=lambda g: sum(b.size for b in g))
    c1, c2 = main[0].c1, main[0].c2
    rows = [r for b in main for r in b.rows]
    notes: list[str] = []
    if len(main) > 1:
        gaps = [
            r + grid.top + 1
            for a, b in itertools.pairwise(main)
            for r in range(a.rows[-1] + 1, b.rows[0])
        ]
        notes.append(f"Skipped the blank {_rows_text(gaps)} inside the table.")
    # header
    if header_row is not None:
        k = rows.index(header_row - 1 - grid.top)
        header = [rows[k]]
        title = rows[:k]
    else:
        k = _find_header(grid, rows, c1, c2)
        top = k
        while (
            top > 0
            and rows[top - 1] == rows[top] - 1
            and _header_part_above(grid, rows[top - 1], c1, c2)
        ):
            top -= 1
        header = rows[top : k + 1]
        title = rows[:top]
    data = rows[rows.index(header[-1]) + 1 :]
    has_header = True
    if header_row is None and len(header) == 1 and _is_data_row(grid, header[0], data, c1, c2):
        has_header = False
        data = [header[0], *data]
        header = []
    if header_row is None and has_header:
        while data and len(header) < 4 and _sub_header(grid, header, data[0], data[1:], c1, c2):
            header.append(data.pop(0))
    # what lies around the table
    others = [g for g in groups if g is not main]
    outside = [b for b in blocks if not any(b in g for g in groups)]
    above = [b for b in outside if b.rows[-1] < rows[0] and b.c1 < c2 and c1 < b.c2]
    if header_row is None:
        for b in above:
            title = [*b.rows, *title]
    if title:
        title = sorted(set(title))
        texts = [_short(v) for r in title for _j, v in _cells(grid.rows[r], 0, grid.width)]
        notes.append(
            f"Skipped the title above the table ({_rows_text([r + grid.top + 1 for r in title])}"
            + (f": {quote(texts[0])}" if texts else "")
            + ")."
        )
    # rows under the table: totals and notes
    dropped: list[str] = []
    explicit_header = header_row is not None
    while data:
        r = data[-1]
        total = _is_total(grid, r, data[:-1], c1, c2)
        label = _label(grid.rows[r], c1, c2) or ""
        where = f"row {r + grid.top + 1}"
        if total:
            data.pop()
            dropped.append(f"{where} ({quote(_short(label))}), the totals of the rows above")
        elif total is False:
            notes.append(
                f"{where.capitalize()} ({quote(_short(label))}) looks like a totals row but its "
                "figures are not the sums of the rows above; it was kept as data."
            )
            break
        elif _is_note(grid, r, c1, c2) and len(data) > 1:
            data.pop()
            text = _short(_cells(grid.rows[r], c1, c2)[0][1])
            dropped.append(f"{where} ({quote(text)}), a note under the table")
        else:
            break
    below = [b for b in outside if b.rows[0] > rows[-1] and b.c1 < c2 and c1 < b.c2]
    below_rows = sorted({r for b in below for r in b.rows})
    if below_rows:
        texts = [_short(v) for r in below_rows for _j, v in _cells(grid.rows[r], c1, c2)]
        dropped.append(
            f"{_rows_text([r + grid.top + 1 for r in below_rows])} under the table"
            + (f" ({quote(texts[0])}…)" if texts else "")
        )
    if dropped:
        notes.append(
            "Left out "
            + "; ".join(dropped)
            + ". Give the table's range (--range) to keep such rows."
        )
    if not has_header:
        notes.append(
            "The first row holds data, not column names, so the columns are named after "
            "their Excel letters."
        )
    if others:
        listed = [
            f"{_group_range(grid, g)} ({sum(len(b.rows) for b in g)} rows)" for g in others[:5]
        ]
        more = f" and {len(others) - 5} more" if len(others) > 5 else ""
        notes.append(
            f"This sheet holds {len(others)} more table{'s' if len(others) > 1 else ''}: "
            f"{', '.join(listed)}{more}. The largest one was read; to read another, give its "
            f"range, e.g. --range {listed[0].split(' ')[0]} (range= in Session.load)."
        )
    return _table(grid, header, data, c1, c2, notes, has_header, explicit_header)


def _group_range(grid: Grid, group: list[_Block]) -> str:
    first, last = group[0], group[-1]
    return a1(
        first.rows[0] + grid.top,
        first.c1 + grid.left,
        last.rows[-1] + grid.top,
        first.c2 - 1 + grid.left,
    )


def _explicit(grid: Grid, cells: CellRange, header_row: int | None) -> Table:
    r1 = cells.r1 - grid.top
    r2 = (cells.r2 if cells.r2 is not None else grid.top + len(grid.rows) - 1) - grid.top
    c1 = cells.c1 - grid.left
    c2 = (cells.c2 if cells.c2 is not None else grid.left + grid.width - 1) - grid.left + 1
    height = len(grid.rows)
    pad = max(0, c2 - grid.width)
    sub_rows = []
    for r in range(r1, r2 + 1):
        if 0 <= r < height:
            row = grid.rows[r]
            sub_rows.append([""] * max(0, -c1) + row[max(c1, 0) : c2] + [""] * pad)
        else:
            sub_rows.append([""] * (c2 - c1))
    sub = Grid(sub_rows, cells.r1, cells.c1)
    nonblank = [i for i, r in enumerate(sub.rows) if r.count("") + r.count(None) < len(r)]
    if not nonblank:
        where = a1(cells.r1, cells.c1, cells.r1 + len(sub_rows) - 1, cells.c1 + c2 - c1 - 1)
        raise LoadError(f"the range {where} is blank")
    notes: list[str] = []
    if header_row is not None:
        h = header_row - 1 - cells.r1
        if not 0 <= h < len(sub.rows):
            raise LoadError(f"header row {header_row} lies outside the range")
    else:
        h = nonblank[0]
    data = [i for i in nonblank if i > h]
    skipped = [i + cells.r1 + 1 for i in range(len(sub.rows)) if i > h and i not in set(data)]
    if skipped:
        notes.append(f"Skipped the blank {_rows_text(skipped)}.")
    width = c2 - c1
    for r in reversed(data):
        total = _is_total(sub, r, [d for d in data if d < r], 0, width)
        if total is None:
            break
        notes.append(
            f"Row {r + cells.r1 + 1} ({quote(_short(_label(sub.rows[r], 0, width)))}) looks like "
            "a totals row; it was kept because the range includes it."
        )
    return _table(sub, [h], data, 0, width, notes, True, True)


def _columns(grid: Grid, data: list[int], c1: int, c2: int) -> list[list[Any]]:
    """The cells of rows ``data`` in columns [c1, c2), column by column."""
    if not data:
        return [[] for _ in range(c1, c2)]
    a, b = data[0], data[-1]
    if b - a + 1 == len(data):  # contiguous: slice the band's columns, transposed already
        for s, (e, cols) in grid.band_cols.items():
            if s <= a and b < e:
                return [list(cols[j][a - s : b - s + 1]) for j in range(c1, c2)]
    rows = [grid.rows[r][c1:c2] for r in data]
    return [list(c) for c in zip(*rows, strict=True)]


def _table(
    grid: Grid,
    header: list[int],
    data: list[int],
    c1: int,
    c2: int,
    notes: list[str],
    has_header: bool,
    explicit: bool,
) -> Table:
    names = _names(grid, header, c1, c2) if has_header else ["" for _ in range(c1, c2)]
    keep = list(range(c1, c2))
    columns = _columns(grid, data, c1, c2)
    # columns with neither a name nor a value (spacers)
    empty = [
        k
        for k, col in enumerate(columns)
        if not names[k] and len(col) - col.count("") - col.count(None) == 0
    ]
    if empty and len(empty) < len(keep):
        gone = ", ".join(col_letter(keep[k] + grid.left) for k in empty[:8])
        notes.append(f"Dropped the empty column{'s' if len(empty) > 1 else ''} {gone}.")
        names = [n for k, n in enumerate(names) if k not in set(empty)]
        columns = [c for k, c in enumerate(columns) if k not in set(empty)]
        keep = [j for k, j in enumerate(keep) if k not in set(empty)]
    if not has_header:
        names = [col_letter(j + grid.left) for j in keep]
    header_row = header[-1] + grid.top + 1 if header else None
    first_row = (header[0] if header else data[0] if data else 0) + grid.top
    last_row = (data[-1] if data else (header[-1] if header else 0)) + grid.top
    where = a1(first_row, keep[0] + grid.left, last_row, keep[-1] + grid.left)
    intro: list[str] = []
    if not explicit and (first_row, keep[0] + grid.left) != (0, 0):
        intro.append(
            f"Read the table at {where}"
            + (f"; its column names are in row {header_row}." if header_row else ".")
        )
    if len(header) > 1:
        example = next((n for n in names if " " in n), names[0] if names else "")
        intro.append(
            f"Joined the header rows {header[0] + grid.top + 1}-{header[-1] + grid.top + 1} into "
            f"one name per column (e.g. {quote(example)})."
        )
    return Table(
        names=names,
        columns=columns,
        row_numbers=[r + grid.top + 1 for r in data],
        col_numbers=[j + grid.left for j in keep],
        header_row=header_row,
        range=where,
        notes=intro + notes,
    )
