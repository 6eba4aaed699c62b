"""The export stage: write an answer's value as CSV, JSON, XLSX or PNG (format from the suffix)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from dataask_jupyter.errors import ExportError
from dataask_jupyter.results import PngImage

FORMATS = ("csv", "json", "xlsx", "png")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_SHEET_BAD = re.compile(r"[\[\]\:\*\?\/\\]")

__all__ = ["FORMATS", "ExportError", "export_value", "neutralise_formulas", "to_frame"]


def to_frame(value: Any) -> pd.DataFrame:
    """A table view of any answer value (scalars become a one-cell table)."""
    if isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, pd.Series):
        return value.to_frame(name="value" if value.name is None else str(value.name))
    if isinstance(value, dict):
        return pd.DataFrame({"key": list(value), "value": list(value.values())})
    if isinstance(value, (list, tuple)):
        return pd.DataFrame({"value": list(value)})
    return pd.DataFrame({"value": [value]})


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula with an apostrophe."""

    def fix(v: Any) -> Any:
        if isinstance(v, str) and v.startswith(_FORMULA_START):
            return "'" + v
        return v

    out = frame.copy()
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c].dtype):
            out[c] = out[c].map(fix)
    out.columns = [fix(str(c)) if isinstance(c, str) else c for c in out.columns]
    if out.index.dtype == object:
        out.index = out.index.map(fix)
    return out


def _keep_index(frame: pd.DataFrame) -> bool:
    idx = frame.index
    return not (
        isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1 and idx.name is None
    )


def _sheet_name(name: str, used: set[str]) -> str:
    base = _SHEET_BAD.sub("_", name).strip("'") or "Sheet"
    base = base[:31]
    cand, k = base, 2
    while cand.lower() in used:
        suffix = f"_{k}"
        cand, k = base[: 31 - len(suffix)] + suffix, k + 1
    used.add(cand.lower())
    return cand


def export_value(
    value: Any,
    path: str | os.PathLike[str],
    *,
    formula_guard: bool = True,
    sheet_name: str = "answer",
) -> Path:
    """Write ``value`` to ``path``. CSV/XLSX cells that look like formulas are neutralised unless
    ``formula_guard=False``."""
    p = Path(path).expanduser()
    fmt = p.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ExportError(f"cannot export to {p.name!r}: use a .csv, .json, .xlsx or .png name")
    if value is None:
        raise ExportError("the answer has no value to export")
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        if fmt == "png":
            _png(value, p)
        elif fmt == "json":
            _json(value, p)
        else:
            frames = (
                value
                if isinstance(value, dict)
                and value
                and all(isinstance(v, pd.DataFrame) for v in value.values())
                else {sheet_name: value}
            )
            tables = {str(k): to_frame(v) for k, v in frames.items()}
            if formula_guard:
                tables = {k: neutralise_formulas(v) for k, v in tables.items()}
            if fmt == "csv":
                t = next(iter(tables.values()))
                t.to_csv(p, index=_keep_index(t), chunksize=100_000)
            else:
                _xlsx(tables, p)
    except ExportError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise ExportError(f"could not write {p}: {exc}") from None
    return p


def _json(value: Any, p: Path) -> None:
    if isinstance(value, (pd.DataFrame, pd.Series)):
        frame = to_frame(value)
        if _keep_index(frame):
            frame = frame.reset_index()
        frame.to_json(
            p, orient="records", date_format="iso", date_unit="s", indent=1, force_ascii=False
        )
        return
    if hasattr(value, "to_plotly_json"):
        p.write_text(value.to_json(), encoding="utf-8")
        return

    def default(o: Any) -> Any:
        if hasattr(o, "isoformat"):
            return o.isoformat()
        if hasattr(o, "item"):
            return o.item()
        return str(o)

    p.write_text(json.dumps(value, default=default, indent=1, ensure_ascii=False), encoding="utf-8")


def _xlsx(tables: dict[str, pd.DataFrame], p: Path) -> None:
    used: set[str] = set()
    with pd.ExcelWriter(p, engine="openpyxl") as writer:
        for name, t in tables.items():
            if len(t) > 1_048_575 or t.shape[1] > 16_384:
                raise ExportError(
                    f"table {name!r} is {t.shape[0]:,} x {t.shape[1]:,}: over "
                    "Excel's 1,048,576 rows x 16,384 columns; export CSV instead"
                )
            out = t.copy()
            for c in out.columns:
                if isinstance(out[c].dtype, pd.DatetimeTZDtype):
                    out[c] = out[c].dt.tz_localize(None)
            out.to_excel(writer, sheet_name=_sheet_name(name, used), index=_keep_index(out))


def _png(value: Any, p: Path) -> None:
    if isinstance(value, PngImage):
        p.write_bytes(value.data)
        return
    if hasattr(value, "to_plotly_json"):
        try:
            value.write_image(str(p), format="png")
        except Exception as exc:
            raise ExportError(
                "PNG export of a chart needs kaleido and a Chromium browser "
                f"(pip install kaleido; apt-get install chromium): {exc}"
            ) from None
        return
    _table_png(to_frame(value), p)


def _table_png(frame: pd.DataFrame, p: Path, max_rows: int = 40) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    shown = frame.head(max_rows)
    if _keep_index(shown):
        shown = shown.reset_index()
    cells = [[_fmt(v) for v in row] for row in shown.itertuples(index=False)]
    cols = [str(c) for c in shown.columns]
    width = min(2 + 1.6 * len(cols), 30)
    height = 0.6 + 0.3 * (len(cells) + 1) + (0.3 if len(frame) > max_rows else 0)
    fig, ax = plt.subplots(figsize=(width, height))
    ax.axis("off")
    table = ax.table(
        cellText=cells or [[""] * len(cols)], colLabels=cols, loc="upper left", cellLoc="left"
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    if len(frame) > max_rows:
        fig.text(0.01, 0.01, f"first {max_rows} of {len(frame):,} rows", fontsize=8)
    fig.savefig(p, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return (
            f"{v:,.4g}" if abs(v) < 1e-3 or abs(v) >= 1e7 else f"{v:,.4f}".rstrip("0").rstrip(".")
        )
    s = str(v)
    return s if len(s) <= 40 else s[:37] + "..."
