"""Reader speed, measured side by side in one run.

    python benchmarks/readers.py [--rows 100000] [--repeat 3] [--corpus DIR]

(``--corpus`` defaults to ``../shared/corpus/spreadsheets`` beside the repository.)

1. A messy workbook (title rows, blank leading column, two-row merged header, "TBD" cells, totals
   row, a note and a second table) against the clean workbook of the same data (header in row 1):
   the cost of layout detection, as a ratio (target: at most 1.10), and pandas' ``read_excel``
   (calamine) on the clean file for reference.
2. Loading every file of the shared spreadsheet corpus: total time, how many load and how many
   are refused (each refusal is a one-sentence ``DataaskError``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dataask_jupyter.errors import DataaskError  # noqa: E402
from dataask_jupyter.readers import read_table  # noqa: E402
from tests.messy_workbooks import clean_workbook, messy_workbook  # noqa: E402


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """The median wall time of ``repeat`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def layout_cost(rows: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # the second table sits under the first so that both sheets are equally wide: the
        # ratio is then the cost of detection, not of reading more cells
        messy = messy_workbook(Path(tmp) / "messy.xlsx", rows, tbd_every=1000, second_table="below")
        clean = clean_workbook(Path(tmp) / "clean.xlsx", rows)
        got = read_table(messy.path).frame
        pd.testing.assert_frame_equal(got, messy.frame, check_dtype=False, check_column_type=False)
        t_clean = timed(lambda: read_table(clean.path), repeat)
        t_messy = timed(lambda: read_table(messy.path), repeat)
        t_pandas = timed(lambda: pd.read_excel(clean.path, engine="calamine"), repeat)
    print(f"{rows:,}-row workbook, median of {repeat}:")
    print(f"  clean  read_table          {t_clean:8.3f} s")
    print(f"  messy  read_table          {t_messy:8.3f} s")
    print(f"  clean  pandas read_excel   {t_pandas:8.3f} s")
    ratio = t_messy / t_clean
    verdict = "within" if ratio <= 1.10 else "OVER"
    print(f"  messy / clean = {ratio:.3f} ({verdict} the 1.10 target)")
    print(f"  read_table / read_excel on the clean file = {t_clean / t_pandas:.3f}")


def corpus(folder: Path) -> None:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix != ".md")
    loaded = refused = 0
    started = time.perf_counter()
    slowest: tuple[float, str] = (0.0, "")
    for p in files:
        t = time.perf_counter()
        try:
            read_table(p)
            loaded += 1
        except DataaskError:
            refused += 1
        slowest = max(slowest, (time.perf_counter() - t, p.name))
    total = time.perf_counter() - started
    print(f"corpus {folder}: {len(files)} files in {total:.2f} s")
    print(f"  loaded {loaded}, refused with a sentence {refused}")
    print(f"  slowest: {slowest[1]} {slowest[0]:.3f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "spreadsheets"
    )
    args = ap.parse_args()
    layout_cost(args.rows, args.repeat)
    if args.corpus.is_dir():
        corpus(args.corpus)
    else:
        print(f"corpus folder {args.corpus} not found; skipped")


if __name__ == "__main__":
    main()
