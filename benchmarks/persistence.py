"""Conversation persistence: what a stored turn costs, and what bringing 500 back costs.

    python benchmarks/persistence.py [--turns 500] [--dir /tmp/dataask-bench]

1. History write cost per question (``ConversationStore.add_turn``): median and p99 over a
   realistic mix of answer values (grouped Series, small tables, scalars, lists, a chart every
   20th turn, a 200,000-row table that keeps only its summary), split into encoding the value and
   the SQLite transaction, side by side with the same turns written with ``synchronous=FULL``.
2. Restore time for a notebook with ``--turns`` turns: opening the store (with its quick_check),
   reading every turn with its value, reading only the last 200 (``Ask.max_history``), and reading
   without values.
3. Memory after ``--turns`` turns: Python allocations held by the restored records (tracemalloc),
   the process's resident memory, and the database size on disk.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dataask_jupyter.results import summarize  # noqa: E402
from dataask_jupyter.store import ConversationStore, TurnRecord, encode_value  # noqa: E402


def value_for(n: int, rng: np.random.Generator) -> Any:
    """The n-th answer's value: the kinds of values a conversation holds, in rough proportion."""
    import plotly.express as px

    regions = ["Europe", "Asia", "Americas", "Africa", "Oceania"]
    if n % 100 == 99:
        return pd.DataFrame({"x": rng.random(200_000), "y": rng.integers(0, 9, 200_000)})
    if n % 20 == 19:
        return px.bar(x=regions, y=rng.random(5) * 1000, title="revenue by region")
    kind = n % 5
    if kind == 0:
        return pd.Series(
            rng.random(5) * 1e5, index=pd.Index(regions, name="region"), name="revenue"
        )
    if kind == 1:
        return float(rng.random() * 1e6)
    if kind == 2:
        return pd.DataFrame(
            {
                "product": [f"P{i}" for i in range(50)],
                "units": rng.integers(1, 500, 50),
                "revenue": rng.random(50) * 1e4,
                "first_sale": pd.Timestamp("2024-01-01")
                + pd.to_timedelta(rng.integers(0, 365, 50), "D"),
                "region": rng.choice(regions, 50),
            }
        )
    if kind == 3:
        return [f"P{i}" for i in rng.integers(0, 50, 10)]
    return {"Europe": 12.5, "Asia": 8.25, "count": int(rng.integers(0, 1000))}


def kind_of(n: int) -> str:
    """What ``value_for(n)`` returns, for the per-kind figures."""
    if n % 100 == 99:
        return "200k-row table (summary only)"
    if n % 20 == 19:
        return "plotly figure"
    return ["Series", "float", "50-row table", "list", "dict"][n % 5]


def record(n: int, rng: np.random.Generator) -> TurnRecord:
    value = value_for(n, rng)
    return TurnRecord(
        number=n,
        question=f"Question {n}: what is the revenue by region for the products sold in 2024?",
        dataset="sales",
        code="result = df.groupby('region')['revenue'].sum().sort_values(ascending=False)",
        kind="table",
        summary=summarize(value),
        seconds=1.2,
        value=value,
    )


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def write_turns(state: Path, turns: int, synchronous: str) -> tuple[list[float], list[float]]:
    """Write ``turns`` turns; (total seconds per add_turn, seconds spent encoding the value)."""
    rng = np.random.default_rng(0)
    store = ConversationStore(state, "notebook:/bench/analysis.ipynb")
    assert store._conn is not None
    store._conn.execute(f"PRAGMA synchronous={synchronous}")
    totals, encodes = [], []
    for n in range(1, turns + 1):
        rec = record(n, rng)
        t0 = time.perf_counter()
        encode_value(rec.value)
        t1 = time.perf_counter()
        store.add_turn(rec)  # encodes again: the figure below is the whole write
        t2 = time.perf_counter()
        encodes.append(t1 - t0)
        totals.append(t2 - t1)
    store.close()
    return totals, encodes


def ms(x: float) -> str:
    return f"{x * 1000:8.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument(
        "--dir", default=None, help="where to put the databases (default: a temp dir)"
    )
    args = parser.parse_args()
    base = Path(args.dir or tempfile.mkdtemp(prefix="dataask-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    normal, full = base / "normal", base / "full"
    for d in (normal, full):
        shutil.rmtree(d, ignore_errors=True)
    print(f"dataask persistence benchmark: {args.turns} turns, databases under {base}\n")

    totals, encodes = write_turns(normal, args.turns, "NORMAL")
    totals_full, _ = write_turns(full, args.turns, "FULL")
    sql = [t - e for t, e in zip(totals, encodes, strict=True)]
    print("1. history write cost per question (add_turn)")
    print(f"   {'':34}{'median':>12}{'p99':>12}{'max':>12}")
    rows = [
        ("whole write (WAL, synchronous=NORMAL)", totals),
        ("  of which encoding the value", encodes),
        ("  of which the SQLite transaction", sql),
    ]
    for label, xs in rows:
        med, p99 = ms(statistics.median(xs)), ms(percentile(xs, 99))
        print(f"   {label:34}{med:>12}{p99:>12}{ms(max(xs)):>12}")
    by_kind: dict[str, list[float]] = {}
    for n, t in enumerate(totals, 1):
        by_kind.setdefault(kind_of(n), []).append(t)
    for label, xs in sorted(by_kind.items()):
        med, p99 = ms(statistics.median(xs)), ms(percentile(xs, 99))
        print(f"   {'  ' + label + f' (x{len(xs)})':34}{med:>12}{p99:>12}{ms(max(xs)):>12}")
    med, p99 = ms(statistics.median(totals_full)), ms(percentile(totals_full, 99))
    print(
        f"   {'whole write (WAL, synchronous=FULL)':34}{med:>12}{p99:>12}{ms(max(totals_full)):>12}"
    )
    ratio = statistics.median(totals_full) / statistics.median(totals)
    print(f"   FULL / NORMAL (median): {ratio:.2f}x\n")

    key = "notebook:/bench/analysis.ipynb"
    print(f"2. restore time for a notebook with {args.turns} turns")
    t0 = time.perf_counter()
    store = ConversationStore(normal, key)
    t_open = time.perf_counter() - t0

    def timed(**kw: Any) -> tuple[float, list[TurnRecord]]:
        t = time.perf_counter()
        recs = store.turns(**kw)
        return time.perf_counter() - t, recs

    t_all, restored = timed()
    t_200, last = timed(limit=200)
    t_200_20, _ = timed(limit=200, values=20)
    t_light, light = timed(values=False)
    kept = sum(r.kept for r in restored)
    assert len(restored) == len(light) == args.turns and len(last) == min(200, args.turns)
    print(f"   open the store (quick_check)            {ms(t_open)}")
    print(f"   all {args.turns} turns, every value decoded     {ms(t_all)}   ({kept} kept)")
    print(f"   last 200 turns, every value decoded     {ms(t_200)}")
    print(f"   last 200 turns, values of the last 20   {ms(t_200_20)}")
    print(f"   all turns, no values                    {ms(t_light)}")
    print(f"   open + last 200 with 20 values          {ms(t_open + t_200_20)}")
    print(f"   ratio all values / no values            {t_all / t_light:8.1f}x")
    from dataask_jupyter.session import Session

    t0 = time.perf_counter()
    session = Session(store=ConversationStore(normal, key), sandbox="local", notify=lambda m: None)
    t_session = time.perf_counter() - t0
    restored_turns = len(session.history)
    session.close()
    print(
        f"   Session(store=...) as wired now         {ms(t_session)}   ({restored_turns} turns)\n"
    )

    tracemalloc.start()
    held = store.turns()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del held
    tracemalloc.start()
    held = store.turns(limit=200, values=20)
    current_20, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(held) == min(200, args.turns)
    size = sum(p.stat().st_size for p in normal.glob("conversations.sqlite3*"))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    mb = 2**20
    print(f"3. memory after {args.turns} turns")
    print(f"   all {args.turns} restored records with values  {current / mb:8.2f} MB")
    print(f"   (peak while decoding)                   {peak / mb:8.2f} MB")
    print(f"   last 200 records, 20 values             {current_20 / mb:8.2f} MB")
    print(f"   process max RSS                         {rss / mb:8.2f} MB")
    print(f"   database on disk                        {size / mb:8.2f} MB")
    store.close()
    if not args.dir:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
