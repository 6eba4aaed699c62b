"""Sandbox overhead and reader speed, measured side by side in one run.

    python benchmarks/overhead.py [--rows 1000000] [--repeat 5] [--csv-mb 100] [--xlsx-rows 100000]
                                  [--sandbox local|docker]

1. The same code on a 1,000,000-row frame (groupby-sum, filter, sort-head): in-process ``exec``
   against the warm sandbox round trip (send code, run, send the result back as Arrow, decode).
2. Loading a ~100 MB CSV and a 100,000-row XLSX with dataask's readers against pandas' defaults.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dataask_jupyter import readers  # noqa: E402
from dataask_jupyter.config import Ask  # noqa: E402
from dataask_jupyter.sandbox import Sandbox  # noqa: E402

CASES = {
    "groupby-sum": "result = df.groupby('region')['revenue'].sum()",
    "filter": "result = df[(df['units'] > 3) & (df['region'] == 'Europe')]['revenue'].mean()",
    "sort-head": "result = df.sort_values('revenue', ascending=False).head(10)",
}


def frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "order_id": np.arange(rows),
            "region": rng.choice(["Europe", "Asia", "Americas", "Africa"], rows),
            "product": rng.choice([f"P{i}" for i in range(50)], rows),
            "units": rng.integers(1, 6, rows),
            "revenue": rng.random(rows) * 100,
            "date": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), "D"),
        }
    )


def best(fn: Any, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def bench_exec(rows: int, repeat: int, backend: str) -> None:
    df = frame(rows)
    sb = Sandbox(Ask(sandbox=backend, exec_timeout=120))
    t = time.perf_counter()
    sb.load("data", df)
    first = time.perf_counter() - t
    info = sb.info()
    print(f"\n## Sandbox round trip vs in-process exec ({rows:,} rows, backend {info['backend']})")
    print(f"start + send the frame once: {first * 1000:,.0f} ms")
    print(f"{'case':<14}{'in-process ms':>15}{'sandbox ms':>13}{'overhead ms':>13}{'ratio':>8}")
    for name, code in CASES.items():

        def local(code: str = code) -> None:
            ns = {"df": df, "pd": pd, "np": np}
            exec(code, ns)  # the benchmark's own fixed code, for comparison only

        def remote(code: str = code) -> None:
            out = sb.run(code, "data")
            assert out.ok, out.error

        remote()  # warm
        lo, _ = best(local, repeat)
        ro, _ = best(remote, repeat)
        print(
            f"{name:<14}{lo * 1000:>15.1f}{ro * 1000:>13.1f}{(ro - lo) * 1000:>13.1f}"
            f"{ro / lo:>8.2f}"
        )
    triv, _ = best(lambda: sb.run("result = 1", "data"), repeat * 4)
    print(f"trivial query round trip: {triv * 1000:.1f} ms")
    sb.close()


def bench_readers(csv_mb: int, xlsx_rows: int, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    csv_path = work / f"bench_{csv_mb}mb.csv"
    if not csv_path.exists():
        per_row = len(frame(10_000).to_csv(index=False).encode()) / 10_000
        frame(int(csv_mb * 1e6 / per_row)).to_csv(csv_path, index=False)
    xlsx_path = work / f"bench_{xlsx_rows}.xlsx"
    if not xlsx_path.exists():
        frame(xlsx_rows).drop(columns=["date"]).to_excel(xlsx_path, index=False)
    size = csv_path.stat().st_size / 1e6
    print(f"\n## Readers (best of 3/2; CSV {size:,.0f} MB, XLSX {xlsx_rows:,} rows)")
    ours, _ = best(lambda: readers.read_table(csv_path, max_bytes=1 << 40), 3)
    engine = readers.read_table(csv_path, max_bytes=1 << 40).engine
    theirs, _ = best(lambda: pd.read_csv(csv_path), 3)
    print(
        f"CSV  dataask ({engine}): {ours:6.2f} s   pandas read_csv default: {theirs:6.2f} s"
        f"   speed-up x{theirs / ours:.2f}"
    )
    same, _ = best(lambda: pd.read_csv(csv_path, parse_dates=["date"]), 3)
    print(
        "     (dataask also parses the date column; pandas read_csv with parse_dates: "
        f"{same:.2f} s, speed-up x{same / ours:.2f})"
    )
    ours, _ = best(lambda: readers.read_table(xlsx_path), 2)
    engine = readers.read_table(xlsx_path).engine
    theirs, _ = best(lambda: pd.read_excel(xlsx_path, engine="openpyxl"), 1)
    print(
        f"XLSX dataask ({engine}): {ours:6.2f} s   pandas read_excel openpyxl: {theirs:6.2f} s"
        f"   speed-up x{theirs / ours:.2f}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--csv-mb", type=int, default=100)
    p.add_argument("--xlsx-rows", type=int, default=100_000)
    p.add_argument("--sandbox", default="local", choices=["local", "docker", "auto"])
    p.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "_data")
    p.add_argument("--skip-readers", action="store_true")
    a = p.parse_args()
    bench_exec(a.rows, a.repeat, a.sandbox)
    if not a.skip_readers:
        bench_readers(a.csv_mb, a.xlsx_rows, a.work)


if __name__ == "__main__":
    main()
