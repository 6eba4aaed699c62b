"""Rendering and export cost of a large answer.

    python benchmarks/render.py [--rows 1000000] [--xlsx-rows N] [--no-png] [--out DIR]

1. Time to first page: from a 1,000,000-row answer to its widget view (``AnswerView``: the paged
   table, the code view, the export bar) and its display bundle, ready to send.
2. Bytes sent to the front end for it: every comm message the widgets open, recorded on the wire
   (state, front-end modules), plus the display bundle (text/plain and HTML fallbacks). Then the
   bytes and time of a page flip and of a sort.
3. Export time per format for the same answer: CSV, JSON, XLSX, PNG (table image), and a chart
   PNG; with file sizes.
4. PNG export of a chart, side by side: a browser started per image (``plotly.io.to_image``, what
   the exporter did before) against the kernel's kept browser (cold: the first PNG starts it;
   warm: every later one). ``--png-only`` runs just this part.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import comm  # noqa: E402
from comm.base_comm import BaseComm  # noqa: E402

from dataask_jupyter.export import close_png_renderer, export_value  # noqa: E402
from dataask_jupyter.session import Answer, Attempt  # noqa: E402
from dataask_jupyter.values import human_size as human  # noqa: E402
from dataask_jupyter.values import is_figure  # noqa: E402


class Wire:
    """Records what the kernel would send to the browser over widget comms."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, int]] = []

    def bytes(self) -> int:
        return sum(n for _, n in self.messages)

    def take(self) -> int:
        n = self.bytes()
        self.messages.clear()
        return n


WIRE = Wire()


class RecordingComm(BaseComm):
    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        body = json.dumps({"data": data, "metadata": metadata, **keys}, default=str)
        WIRE.messages.append((msg_type, len(body) + sum(len(b) for b in buffers or [])))


def answer_of(rows: int) -> Answer:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "order_id": np.arange(rows),
            "order_date": pd.Timestamp("2023-01-01")
            + pd.to_timedelta(rng.integers(0, 730, rows), "D"),
            "region": rng.choice(
                ["Europe", "Asia Pacific", "North America", "Latin America"], rows
            ),
            "product": rng.choice([f"Product {i:03d}" for i in range(300)], rows),
            "units": rng.integers(1, 6, rows),
            "revenue": (rng.random(rows) * 500).round(2),
        }
    )
    code = "result = df[df['revenue'] > 0]"
    a = Answer(question="all orders with revenue", dataset="orders", number=1)
    a.value, a.code, a.kind, a.attempts = frame, code, "table", [Attempt(code=code)]
    return a


def timed(fn: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def png_cold_warm(repeat: int) -> None:
    """Part 4: chart PNG with a browser per image vs the kept browser, cold and warm."""
    import plotly.express as px
    import plotly.io as pio

    months = pd.period_range("2023-01", periods=24, freq="M").to_timestamp()
    revenue = pd.Series(np.random.default_rng(1).random(24) * 1000, index=months, name="revenue")
    figs = [px.line(revenue, title=f"Revenue per month {i}") for i in range(repeat + 1)]
    out = Path(tempfile.mkdtemp(prefix="dataask-bench-png-"))
    print("\n4. PNG export of a chart (1000 x 600)")
    per_image = [
        timed(lambda f=f: pio.to_image(f, format="png", width=1000, height=600))[0]
        for f in figs[:2]
    ]
    close_png_renderer()
    cold, _ = timed(lambda: export_value(figs[0], out / "cold.png"))
    warm = [
        timed(lambda f=f, i=i: export_value(f, out / f"warm-{i}.png"))[0]
        for i, f in enumerate(figs[1:])
    ]
    close_png_renderer()
    best_warm = min(warm)
    mid_warm = sorted(warm)[len(warm) // 2]
    print(f"   browser per image (before):  {per_image[0]:6.2f} s, {per_image[1]:6.2f} s")
    print(f"   kept browser, cold:          {cold:6.2f} s  (starts Chromium)")
    print(
        f"   kept browser, warm:          {mid_warm:6.2f} s median of {len(warm)}, "
        f"best {best_warm:.2f} s"
    )
    print(f"   warm vs per image:           {min(per_image) / mid_warm:6.1f}x faster")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--xlsx-rows", type=int, default=None, help="default: --rows")
    p.add_argument("--no-png", action="store_true", help="skip the PNG exports (need Chromium)")
    p.add_argument("--out", type=Path, default=None, help="where to write the exports")
    p.add_argument("--png-only", action="store_true", help="only part 4 (chart PNG, cold/warm)")
    p.add_argument("--repeat", type=int, default=3, help="warm PNG exports to time (part 4)")
    args = p.parse_args()
    if args.png_only:
        png_cold_warm(args.repeat)
        return
    comm.create_comm = RecordingComm  # type: ignore[assignment]

    a = answer_of(args.rows)
    print(f"answer: {args.rows:,} rows x {a.value.shape[1]} columns")
    from dataask_jupyter.widgets import AnswerView, DataTable

    DataTable(pd.DataFrame({"warm": [1]}))  # imports and front-end modules loaded once
    WIRE.take()

    print("\n1. time to first page")
    t_table, table = timed(lambda: DataTable(a.value))
    t_view, view = timed(lambda: AnswerView(a))
    t_bundle, bundle = timed(lambda: view._repr_mimebundle_())
    print(f"   DataTable alone:                 {t_table * 1000:8.1f} ms")
    print(f"   AnswerView (table, code, export): {t_view * 1000:8.1f} ms")
    print(f"   display bundle (+ HTML fallback): {t_bundle * 1000:8.1f} ms")
    print(f"   first page ready:                 {(t_view + t_bundle) * 1000:8.1f} ms")

    print("\n2. bytes sent to the front end")
    wire = WIRE.take()
    bundle_bytes = len(json.dumps(bundle))
    table_state = view.table.get_state() if view.table else {}
    modules = sum(len(table_state.get(k, "")) for k in ("_esm", "_css"))
    page = len(json.dumps(table_state.get("page_rows", [])))
    print(f"   widget comms (state + modules):   {human(wire):>10}  ({len(bundle)} mime types)")
    print(f"     of which table front-end code:  {human(modules):>10}")
    print(f"     of which the visible page:      {human(page):>10}  (20 rows)")
    print(f"   display bundle:                   {human(bundle_bytes):>10}")
    print(f"   total for a {args.rows:,}-row answer: {human(wire + bundle_bytes)}")
    full = len(a.value.to_json(orient="split", date_format="iso"))
    print(f"   (the whole table as JSON would be {human(full)})")
    assert view.table is not None
    t_flip, _ = timed(lambda: setattr(view.table, "page", 1234))
    print(f"   page flip: {t_flip * 1000:.1f} ms, {human(WIRE.take())} sent")
    t_sort, _ = timed(lambda: view.table.sort("revenue", ascending=False))  # type: ignore[union-attr]
    print(f"   sort by revenue (first): {t_sort * 1000:.0f} ms, {human(WIRE.take())} sent")
    t_sort2, _ = timed(lambda: view.table.sort("product"))  # type: ignore[union-attr]
    print(f"   sort by product (text, first): {t_sort2 * 1000:.0f} ms")
    view.table.sort("")
    t_sort3, _ = timed(lambda: view.table.sort("revenue", ascending=False))  # type: ignore[union-attr]
    print(f"   sort by revenue again (cached): {t_sort3 * 1000:.1f} ms")
    del table

    print("\n3. export time per format")
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="dataask-bench-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    xlsx_rows = args.xlsx_rows or args.rows
    jobs: list[tuple[str, Any, str]] = [
        ("csv", a.value, f"{args.rows:,} rows"),
        ("json", a.value, f"{args.rows:,} rows"),
        ("xlsx", a.value.head(xlsx_rows), f"{min(xlsx_rows, args.rows):,} rows"),
    ]
    if not args.no_png:
        import plotly.express as px

        monthly = a.value.groupby(a.value["order_date"].dt.to_period("M").dt.start_time)[
            "revenue"
        ].sum()
        jobs += [
            ("png", a.value, "table image, first 40 rows"),
            ("png", px.line(monthly, title="Revenue per month"), "chart (kaleido, cold)"),
            ("png", px.bar(monthly), "chart again"),
        ]
    for i, (fmt, value, what) in enumerate(jobs):
        path = out_dir / f"export-{i}.{fmt}"
        seconds, _ = timed(lambda value=value, path=path: export_value(value, path))
        size = path.stat().st_size
        print(f"   {fmt:<5} {what:<28} {seconds:7.2f} s  {human(size):>10}")
    print(f"   (files in {out_dir})")
    if is_figure(jobs[-1][1]):
        from dataask_jupyter.widgets import AnswerView as View

        fig_answer = Answer(question="plot", dataset="orders", number=2)
        fig_answer.value, fig_answer.kind = jobs[-2][1], "figure"
        WIRE.take()
        View(fig_answer)._repr_mimebundle_()
        print(
            f"\n   for comparison, a chart answer (plotly FigureWidget) sends {human(WIRE.take())}"
        )
    if not args.no_png:
        png_cold_warm(args.repeat)


if __name__ == "__main__":
    main()
