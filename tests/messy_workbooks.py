"""Workbooks laid out the way people lay them out, with the frame a reader should return.

``messy_workbook`` writes a sheet with any mix of: a title block above the table, a blank
leading column, a two-row header with merged cells, numbers with the odd "TBD", a totals row
(formulas with their cached values), a note under the table and a second, smaller table beside
it. ``clean_workbook`` writes the same data as a plain table (header in row 1). Both return a
``Messy``: the path, the expected frame and phrases the reader's notes must contain.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xlsxwriter

REGIONS = ["North", "South", "East", "West", "Centre", "Coast", "Hills", "Islands"]
MONTHS = ["Jul", "Aug", "Sep"]
COLUMNS = [
    "Region",
    *(f"Revenue (EUR) {m}" for m in MONTHS),
    "Units Jul",
    "Units Aug",
    "Updated",
]


@dataclass
class Messy:
    path: Path
    frame: pd.DataFrame  # what the reader must return
    notes: list[str] = field(default_factory=list)  # phrases the notes must contain
    header_row: int = 1  # 1-based sheet row of the (last) header row
    first_col: int = 0  # 0-based sheet column where the table starts


def table_data(rows: int, seed: int = 0, tbd_every: int = 0) -> pd.DataFrame:
    """The data of the generated table; with ``tbd_every`` > 0 some units are "TBD" (NaN)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "Region": [
                REGIONS[i % len(REGIONS)] + f" {i // len(REGIONS) + 1}" for i in range(rows)
            ],
            **{f"Revenue (EUR) {m}": np.round(rng.uniform(100, 10_000, rows), 2) for m in MONTHS},
            "Units Jul": rng.integers(1, 500, rows),
            "Units Aug": rng.integers(1, 500, rows).astype("float64"),
            "Updated": pd.to_datetime(
                [
                    dt.datetime(2024, 1, 1) + dt.timedelta(days=int(d))
                    for d in rng.integers(0, 365, rows)
                ]
            ),
        }
    )
    if tbd_every:
        frame.loc[frame.index % tbd_every == tbd_every - 1, "Units Aug"] = np.nan
    else:
        frame["Units Aug"] = frame["Units Aug"].astype("int64")
    return frame


def messy_workbook(
    path: Path,
    rows: int = 12,
    *,
    seed: int = 0,
    title: bool = True,
    lead_col: bool = True,
    merged_header: bool = True,
    tbd_every: int = 5,
    totals: bool = True,
    note: bool = True,
    second_table: str = "beside",
) -> Messy:
    """Write a messy one-sheet workbook to ``path`` (see the module docstring).

    ``second_table``: "beside" (one blank column to the right), "below" (under the note) or "".
    """
    data = table_data(rows, seed, tbd_every)
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("Report")
    date_fmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    bold = wb.add_format({"bold": True})
    c0 = 1 if lead_col else 0
    r = 0
    notes: list[str] = []
    if title:
        ws.write(0, c0, "Regional sales report, second half 2024", bold)
        ws.write(1, c0, "Exported from the ERP on 2025-01-06")
        r = 3
        notes.append("Skipped the title above the table (rows 1-2")
    side = c0 + len(COLUMNS) + 1  # column of the second table
    side_rows = [("Target", "EUR"), ("North 1", 5000), ("South 1", 4000), ("East 1", 4500)]
    if merged_header:
        ws.merge_range(r, c0, r + 1, c0, "Region", bold)
        ws.merge_range(r, c0 + 1, r, c0 + 3, "Revenue (EUR)", bold)
        ws.merge_range(r, c0 + 4, r, c0 + 5, "Units", bold)
        ws.merge_range(r, c0 + 6, r + 1, c0 + 6, "Updated", bold)
        if second_table == "beside":
            ws.write_row(r, side, side_rows[0], bold)
        for k, m in enumerate(MONTHS):
            ws.write(r + 1, c0 + 1 + k, m, bold)
        ws.write(r + 1, c0 + 4, "Jul", bold)
        ws.write(r + 1, c0 + 5, "Aug", bold)
        if second_table == "beside":
            ws.write_row(r + 1, side, side_rows[1])
        notes.append(f"Joined the header rows {r + 1}-{r + 2}")
        header_row = r + 2
        r += 2
        side_next = 2
    else:
        ws.write_row(r, c0, COLUMNS, bold)
        if second_table == "beside":
            ws.write_row(r, side, side_rows[0], bold)
        header_row = r + 1
        r += 1
        side_next = 1
    first_data = r
    values = data.to_dict("list")
    for i in range(rows):
        ws.write_string(r, c0, values["Region"][i])
        for k, m in enumerate(MONTHS):
            ws.write_number(r, c0 + 1 + k, values[f"Revenue (EUR) {m}"][i])
        ws.write_number(r, c0 + 4, int(values["Units Jul"][i]))
        aug = values["Units Aug"][i]
        if tbd_every and (i % tbd_every == tbd_every - 1):
            ws.write_string(r, c0 + 5, "TBD")
        else:
            ws.write_number(r, c0 + 5, float(aug))
        ws.write_datetime(r, c0 + 6, values["Updated"][i].to_pydatetime(), date_fmt)
        if second_table == "beside" and side_next < len(side_rows):
            ws.write_row(r, side, side_rows[side_next])
            side_next += 1
        r += 1
    if tbd_every and rows >= tbd_every:
        notes.append('Column "Units Aug" holds numbers')
        notes.append('("TBD")')
    if totals:
        ws.write_string(r, c0, "Total", bold)
        for k in range(1, 6):
            col = xlsxwriter.utility.xl_col_to_name(c0 + k)
            total = float(np.nansum(data.iloc[:, k].to_numpy(dtype="float64")))
            ws.write_formula(r, c0 + k, f"=SUM({col}{first_data + 1}:{col}{r})", bold, total)
        notes.append(f'row {r + 1} ("Total"), the totals of the rows above')
        r += 1
    if note:
        ws.write_string(r + 1, c0, "Source: ERP export; figures before audit.")
        notes.append("under the table")
        r += 2
    if second_table == "below":
        for k, row in enumerate(side_rows):
            ws.write_row(r + 1 + k, c0, row, bold if k == 0 else None)
    if second_table:
        notes.append("This sheet holds 1 more table")
    wb.close()
    return Messy(path, data, notes, header_row, c0)


def clean_workbook(path: Path, rows: int = 12, *, seed: int = 0) -> Messy:
    """The same data as a plain table: header in row 1, nothing else on the sheet."""
    return messy_workbook(
        path,
        rows,
        seed=seed,
        title=False,
        lead_col=False,
        merged_header=False,
        tbd_every=0,
        totals=False,
        note=False,
        second_table="",
    )
