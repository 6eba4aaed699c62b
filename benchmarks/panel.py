"""The side panel's latency and traffic, with the scripted LLM (no model time in the figures).

    python benchmarks/panel.py [--rows 1000000] [--no-browser] [--repeat 3]

Two views of the same path, side by side in one run:

- **comm**: a client speaking the panel's protocol to a real kernel over ZMQ (what the panel's
  comm carries): request "ask" -> first progress event -> the answer's turn pushed; the bytes of
  that turn for a small answer and for a ``--rows`` x 4 table (only the first page crosses), set
  against the whole table as CSV; and paging that table (a far page, a first sort, a cached sort).
- **browser**: JupyterLab in headless Chromium with the built extension: pressing Ask (the click)
  -> the first progress stage shown in the panel -> the answer rendered (its table's first page
  in the DOM), for the same two answers.

Figures are medians over ``--repeat`` questions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.panel_kernel import PanelClient, kernel, run  # noqa: E402
from tests.scripted_llm import ScriptedLLM  # noqa: E402

RULES = [
    {"pattern": "how many rows", "replies": ["result = len(df)"]},
    {"pattern": "show every row", "replies": ["result = df"]},
]
MAKE_BIG = """\
import numpy as np, pandas as pd
_rng = np.random.default_rng(0)
big = pd.DataFrame({{
    "id": np.arange({rows}),
    "city": _rng.choice(["Berlin", "Paris", "Rome", "Oslo"], {rows}),
    "amount": _rng.normal(100, 30, {rows}).round(2),
    "day": pd.Timestamp("2024-01-01") + pd.to_timedelta(_rng.integers(0, 365, {rows}), "D"),
}})
"""


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def comm_figures(rows: int, repeat: int) -> dict[str, Any]:
    llm = ScriptedLLM()
    for rule in RULES:
        llm.on(rule["pattern"], *rule["replies"])
    llm.start()
    env = {
        "DATAASK_LLM_BASE_URL": llm.url,
        "DATAASK_LLM_API_KEY": "scripted-not-secret",
        "DATAASK_LLM_MODEL": "scripted",
        "DATAASK_SANDBOX": os.environ.get("DATAASK_TEST_SANDBOX", "local"),
    }
    out: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as cwd, kernel(env, cwd) as kc:
            run(kc, "%load_ext dataask")
            run(kc, MAKE_BIG.format(rows=rows))
            run(kc, "%ask load big", timeout=300)
            panel = PanelClient(kc)
            assert panel.open() is not None
            for label, question in (("small", "How many rows?"), ("table", "Show every row")):
                first, done, sizes = [], [], []
                for _ in range(repeat):
                    start = len(panel.pushes)
                    t0 = time.perf_counter()
                    ask = panel.request("ask", question=question)["ask"]
                    panel.wait_push(
                        lambda m, a=ask: m["type"] == "event" and m["ask"] == a, 120, start
                    )
                    first.append(time.perf_counter() - t0)
                    turn = panel.wait_push(lambda m: m["type"] == "turn", 300, start)
                    done.append(time.perf_counter() - t0)
                    sizes.append(len(json.dumps(turn)))
                out[label] = {
                    "first_event": statistics.median(first),
                    "turn": statistics.median(done),
                    "turn_bytes": int(statistics.median(sizes)),
                }
            number = turn["turn"]["number"]
            t0 = time.perf_counter()
            csv = panel.request("export", turn=number, format="csv", timeout=300)
            out["table"]["export_csv_bytes"] = len(csv["buffers"][0])
            out["table"]["export_csv_s"] = time.perf_counter() - t0
            timings = {}
            for name, args in (
                ("far page", {"page": rows // 20 - 1, "page_size": 10}),
                ("sort (first)", {"page": 0, "page_size": 10, "sort_by": "amount"}),
                ("sort (cached), page 2", {"page": 1, "page_size": 10, "sort_by": "amount"}),
                (
                    "sort by text",
                    {"page": 0, "page_size": 10, "sort_by": "city", "ascending": False},
                ),
            ):
                t0 = time.perf_counter()
                page = panel.request("page", turn=number, **args)
                timings[name] = (time.perf_counter() - t0, len(json.dumps(page)))
            out["pages"] = timings
    finally:
        llm.stop()
    return out


def browser_figures(rows: int, repeat: int) -> dict[str, Any]:
    import nbformat
    from playwright.sync_api import sync_playwright

    from tests.ui.panel_lab import launch, open_notebook, open_panel, running_lab

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "root").mkdir()
        nb = nbformat.v4.new_notebook(
            cells=[
                nbformat.v4.new_code_cell(
                    MAKE_BIG.format(rows=rows) + "%load_ext dataask\n%ask load big"
                )
            ],
            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        )
        nbformat.write(nb, folder / "root" / "bench.ipynb")
        with running_lab(folder, RULES) as lab, sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            open_notebook(page, lab, "bench.ipynb")
            page.locator(".jp-Notebook .jp-Cell").first.click()
            page.keyboard.press("Shift+Enter")
            panel = open_panel(page)
            panel.get_by_text(f"{rows:,} rows").wait_for(timeout=300_000)
            page.evaluate(
                """() => {
                  const panel = document.getElementById('dataask-panel');
                  window.__dataask = {t0: 0, first: 0, done: 0, answers: 0};
                  const b = panel.querySelector('button.dataask-primary');
                  panel.addEventListener('click', ev => {
                    if (ev.target.textContent === 'Ask') {
                      const w = window.__dataask;
                      w.t0 = performance.now(); w.first = 0; w.done = 0;
                      w.answers = panel.querySelectorAll('.dataask-answer').length;
                    }
                  }, true);
                  new MutationObserver(() => {
                    const w = window.__dataask;
                    if (!w.t0) return;
                    const stage = panel.querySelector(
                      '.dataask-progress:not([hidden]) .dataask-stage');
                    if (!w.first && stage && !stage.textContent.startsWith('sending')) {
                      w.first = performance.now() - w.t0;
                    }
                    const list = panel.querySelectorAll('.dataask-answer');
                    if (!w.done && list.length > w.answers) {
                      const last = list[list.length - 1];
                      if (last.querySelector('.dataask-headline, tbody tr')) {
                        w.done = performance.now() - w.t0;
                      }
                    }
                  }).observe(panel, {subtree: true, childList: true, characterData: true});
                }"""
            )
            box = panel.get_by_label("Ask a question about your data")
            for label, question in (("small", "How many rows?"), ("table", "Show every row")):
                first, done = [], []
                for _ in range(repeat):
                    box.fill(question)
                    panel.get_by_role("button", name="Ask").click()
                    page.wait_for_function("() => window.__dataask.done > 0", timeout=300_000)
                    w = page.evaluate("() => window.__dataask")
                    first.append(w["first"] / 1000)
                    done.append(w["done"] / 1000)
                out[label] = {
                    "first_event": statistics.median(first),
                    "rendered": statistics.median(done),
                }
            browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()

    print(f"panel benchmark: scripted LLM, a {args.rows:,} x 4 table, median of {args.repeat}")
    c = comm_figures(args.rows, args.repeat)
    print("\ncomm (kernel over ZMQ, the panel's protocol)")
    for label in ("small", "table"):
        f = c[label]
        print(
            f"  {label:>6}: ask -> first event {_ms(f['first_event'])}, -> turn pushed "
            f"{_ms(f['turn'])}; turn message {f['turn_bytes']:,} bytes"
        )
    t = c["table"]
    print(
        f"  the {args.rows:,}-row answer's turn (first page of 10 rows) is "
        f"{t['turn_bytes']:,} bytes; "
        f"the whole table as CSV is {t['export_csv_bytes']:,} bytes "
        f"(ratio 1 : {t['export_csv_bytes'] / t['turn_bytes']:,.0f}; CSV export took "
        f"{t['export_csv_s']:.1f} s)"
    )
    for name, (secs, size) in c["pages"].items():
        print(f"  page request, {name:>22}: {_ms(secs)}, {size:,} bytes")
    if args.no_browser:
        return
    b = browser_figures(args.rows, args.repeat)
    print("\nbrowser (JupyterLab + Chromium, from the click on Ask)")
    for label in ("small", "table"):
        f = b[label]
        print(
            f"  {label:>6}: first progress shown {_ms(f['first_event'])}, answer rendered "
            f"{_ms(f['rendered'])} (comm alone: {_ms(c[label]['turn'])}, "
            f"browser overhead {_ms(f['rendered'] - c[label]['turn'])})"
        )


if __name__ == "__main__":
    main()
