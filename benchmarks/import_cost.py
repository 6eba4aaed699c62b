"""What ``import dataask`` and ``%load_ext dataask`` cost, lazy (now) against eager (before).

Each figure is the median of ``--runs`` fresh interpreters (the cases interleaved, so they share
the machine's load); only the import or ``%load_ext`` itself is timed, not the interpreter start
or the creation of the IPython shell. The eager cases do what the code did before imports were
lazy: ``import dataask`` star-imported every public name (the session, pandas, openai), and the
magics module imported the session and the renderer. Also prints which heavy modules each case
imported and the largest imports of ``import dataask`` by ``python -X importtime``.

    python benchmarks/import_cost.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = (
    "pandas",
    "numpy",
    "pyarrow",
    "openai",
    "httpx",
    "plotly",
    "ipywidgets",
    "dataask_jupyter.session",
    "dataask_jupyter.render",
)
SHELL = (
    "from IPython.core.interactiveshell import InteractiveShell\nsh = InteractiveShell.instance()"
)
LOAD_EXT = "sh.run_line_magic('load_ext', 'dataask')"

#: name -> (set-up, timed code)
CASES: dict[str, tuple[str, str]] = {
    "import dataask": ("", "import dataask"),
    "import dataask, eager (before)": (
        "",
        "import dataask\nfor n in dataask.__all__: getattr(dataask, n)",
    ),
    "%load_ext dataask": (SHELL, LOAD_EXT),
    "%load_ext dataask, eager (before)": (
        SHELL,
        "import dataask\nfor n in dataask.__all__: getattr(dataask, n)\n"
        f"import dataask_jupyter.render\n{LOAD_EXT}",
    ),
}
PAIRS = (
    ("import dataask", "import dataask, eager (before)"),
    ("%load_ext dataask", "%load_ext dataask, eager (before)"),
)

PROBE = """
import json, sys, time
{setup}
t0 = time.perf_counter()
{timed}
seconds = time.perf_counter() - t0
heavy = [m for m in {heavy!r} if m in sys.modules]
print(json.dumps({{"seconds": seconds, "heavy": heavy}}))
"""


def run_case(setup: str, timed: str) -> dict[str, object]:
    code = PROBE.format(setup=setup, timed=timed, heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def importtime_top(statement: str, top: int) -> list[tuple[float, str]]:
    """The ``top`` largest cumulative imports of ``statement`` (seconds, module)."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    rows = []
    for line in err.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            if len(name) - len(name.lstrip()) <= 3:  # the statement and its direct imports
                rows.append((int(parts[1]) / 1e6, name.strip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=7, help="fresh interpreters per case")
    p.add_argument("--top", type=int, default=6, help="largest imports to list")
    a = p.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    heavy: dict[str, list[str]] = {}
    for _ in range(a.runs):
        for name, (setup, timed) in CASES.items():
            r = run_case(setup, timed)
            times[name].append(float(r["seconds"]))  # type: ignore[arg-type]
            heavy[name] = list(r["heavy"])  # type: ignore[call-overload]
    print(f"median of {a.runs} fresh interpreters each\n")
    print(f"{'case':<36}{'median s':>10}{'min s':>9}  heavy modules imported")
    for name, values in times.items():
        print(
            f"{name:<36}{statistics.median(values):>10.3f}{min(values):>9.3f}  "
            + (", ".join(heavy[name]) or "none")
        )
    print()
    for lazy, eager in PAIRS:
        ratio = statistics.median(times[eager]) / max(statistics.median(times[lazy]), 1e-9)
        print(f"{lazy}: {ratio:.0f}x faster than eager")
    print("\nlargest imports of `import dataask` (-X importtime, cumulative):")
    for seconds, module in importtime_top("import dataask", a.top):
        print(f"  {seconds:7.3f} s  {module}")


if __name__ == "__main__":
    main()
