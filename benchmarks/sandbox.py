"""Sandbox costs, side by side in one run: cold start, warm overhead, heavy-query ratio, transfer.

    python benchmarks/sandbox.py [--sandbox docker|local] [--rows 1000000] [--repeat 7]

- cold start: from nothing to the first answer of a trivial question (start + send a small frame
  + run), the first question a user asks;
- warm overhead: round trip of ``result = 1`` on a running sandbox;
- heavy query: a groupby on 1,000,000 rows in the sandbox against in-process ``exec``;
- transfer: a 1,000,000 x 10 result frame from the sandbox to the kernel (Arrow IPC), against
  producing the same frame in-process;
- cancel: from setting the cancel event of a running run to ``CancelledError`` in the kernel,
  and the next trivial run after it (the sandbox stays).
Targets (issue 3): warm overhead < 30 ms, heavy ratio <= 1.2, cold start < 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dataask_jupyter.config import Ask
from dataask_jupyter.errors import CancelledError
from dataask_jupyter.sandbox import Sandbox

HEAVY = "result = df.groupby(['region', 'product'])[['revenue', 'units']].agg(['sum', 'mean'])"
WIDE = "result = pd.DataFrame({f'c{i}': np.arange(len(df), dtype='float64') for i in range(10)})"


def frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "region": rng.choice(["Europe", "Asia", "Americas", "Africa"], rows),
            "product": rng.choice([f"P{i}" for i in range(200)], rows),
            "units": rng.integers(1, 6, rows),
            "revenue": rng.random(rows) * 100,
        }
    )


def timed(fn: Any, repeat: int) -> tuple[float, float]:
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts), statistics.median(ts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sandbox", default="docker", choices=["docker", "local"])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--cold", type=int, default=3, help="cold starts to time")
    a = p.parse_args()
    settings = Ask(sandbox=a.sandbox, exec_timeout=300, transport_timeout=300)
    small = frame(1000)

    colds = []
    for _ in range(a.cold):
        sb = Sandbox(settings)
        t = time.perf_counter()
        sb.load("small", small)
        out = sb.run("result = len(df)", "small")
        colds.append(time.perf_counter() - t)
        assert out.ok, out.error
        sb.close()
    print(f"backend: {a.sandbox}")
    print(
        f"cold start to first answer: median {statistics.median(colds) * 1000:,.0f} ms "
        f"(min {min(colds) * 1000:,.0f}; target < 2,000)"
    )

    sb = Sandbox(settings)
    big = frame(a.rows)
    t = time.perf_counter()
    sb.load("big", big)
    print(f"send a {a.rows:,}-row frame once: {(time.perf_counter() - t) * 1000:,.0f} ms")
    sb.run("result = 1", "big")
    warm_min, warm_med = timed(lambda: sb.run("result = 1", "big"), a.repeat * 5)
    print(
        f"warm round trip, trivial query: median {warm_med * 1000:.2f} ms "
        f"(min {warm_min * 1000:.2f}; target < 30)"
    )

    ns: dict[str, Any] = {"df": big, "pd": pd, "np": np}
    local_min, local_med = timed(lambda: exec(HEAVY, dict(ns)), a.repeat)
    sb.run(HEAVY, "big")
    remote_min, remote_med = timed(lambda: sb.run(HEAVY, "big"), a.repeat)
    print(
        f"heavy groupby on {a.rows:,} rows: in-process {local_med * 1000:,.0f} ms, sandbox "
        f"{remote_med * 1000:,.0f} ms, ratio {remote_med / local_med:.2f} "
        f"(min/min {remote_min / local_min:.2f}; target <= 1.2)"
    )

    local_min, local_med = timed(lambda: exec(WIDE, dict(ns)), 3)
    remote_min, remote_med = timed(lambda: sb.run(WIDE, "big"), 3)
    print(
        f"{a.rows:,} x 10 result frame: in-process {local_med * 1000:,.0f} ms, through the "
        f"sandbox {remote_med * 1000:,.0f} ms (transfer + decode "
        f"{(remote_med - local_med) * 1000:,.0f} ms, {a.rows * 80 / 1e6:,.0f} MB of floats)"
    )
    cancels, afters = [], []
    for _ in range(3):
        cancel = threading.Event()
        set_at: list[float] = []
        threading.Timer(0.3, _cancel_now, (cancel, set_at)).start()
        try:
            sb.run("import time\ntime.sleep(60)\nresult = 1", "big", cancel=cancel)
        except CancelledError:
            cancels.append(time.perf_counter() - set_at[0])
        t = time.perf_counter()
        assert sb.run("result = 1", "big").ok
        afters.append(time.perf_counter() - t)
    print(
        f"cancel of a running run: median {statistics.median(cancels) * 1000:.1f} ms to "
        f"CancelledError; next trivial run {statistics.median(afters) * 1000:.1f} ms; "
        f"restarts {sb.restarts}"
    )
    sb.close()


def _cancel_now(cancel: threading.Event, set_at: list[float]) -> None:
    set_at.append(time.perf_counter())
    cancel.set()


if __name__ == "__main__":
    main()
