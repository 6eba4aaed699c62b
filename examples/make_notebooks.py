"""Regenerate the example notebooks.

    python examples/make_notebooks.py            # write the notebooks (no outputs)
    python examples/make_notebooks.py --execute  # ... and run them against the scripted LLM
                                                 # server (scripted_rules.json), keeping outputs

Executed notebooks keep text/plain, HTML and chart outputs (what nbval compares and what GitHub
shows); live widget views and widget state are dropped (they only mean something with a kernel).
Cells whose output depends on the machine (where the sandbox runs) are tagged
``nbval-ignore-output``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text)


def code(text: str, *, machine_dependent: bool = False) -> nbformat.NotebookNode:
    cell = new_code_cell(text)
    if machine_dependent:
        cell.metadata["tags"] = ["nbval-ignore-output"]
    return cell


def notebook(cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i}"  # stable ids: regenerating gives no diff
    return new_notebook(cells=cells, metadata={"kernelspec": KERNELSPEC})


def quickstart() -> nbformat.NotebookNode:
    return notebook(
        [
            md(
                "# dataask quickstart\n\n"
                "Ask questions about a spreadsheet in plain language. An LLM writes pandas code; "
                "the code runs in a sandbox **outside** this kernel, and the answer comes back "
                "here.\n\n"
                "With no API key set, dataask uses its embedded local model (CPU, offline). To "
                "use a hosted model set `DATAASK_LLM_API_KEY` (and `DATAASK_LLM_BASE_URL`, "
                "`DATAASK_LLM_MODEL`) before starting Jupyter."
            ),
            code("%load_ext dataask"),
            md("Load a workbook. All sheets are listed; `--sheet` picks one (default: the first)."),
            code("%ask load data/sales.xlsx --name sales", machine_dependent=True),
            md("Ask a question: the cell body is the question."),
            code("%%ask\nWhich 3 products had the highest total revenue?"),
            md("Follow-up questions build on the previous answer (`prev` in the sandbox)."),
            code("%%ask\nHow much revenue did each region bring in?"),
            code("%%ask\nand only for Europe"),
            code("%%ask -o monthly\nWhat was the total revenue per month?"),
            code("%%ask\nplot that as a line chart"),
            md("`-o monthly` stored that answer in a variable of this notebook:"),
            code("monthly.head(3)"),
            md("The conversation so far, and where the code ran:"),
            code("%ask history"),
            code("%ask sandbox", machine_dependent=True),
        ]
    )


def excel_sheets() -> nbformat.NotebookNode:
    return notebook(
        [
            md(
                "# A workbook with several sheets\n\n"
                "`data/budget.xlsx` is a small finance workbook: the **Budget 2024** sheet plans "
                "spend per department and month, **Actuals 2024** holds what was spent, and "
                "**Departments** lists who runs what. Each sheet becomes its own dataset; a "
                "question can use all of them."
            ),
            code("%load_ext dataask"),
            md(
                "`%ask load` lists the sheets of a workbook; `--sheet` picks one, by name or by "
                "0-based position, and `--name` names the dataset."
            ),
            code(
                "%ask load data/budget.xlsx --sheet 0 --name budget",
                machine_dependent=True,
            ),
            code("%ask load data/budget.xlsx --sheet 1 --name actuals"),
            code("%ask load data/budget.xlsx --sheet Departments --name departments"),
            md(
                "The last one loaded is the *active* dataset (`df` in the generated code); every "
                "dataset is also there as `dfs[name]`."
            ),
            code("%ask datasets"),
            md("A question across two sheets: the code joins them by department."),
            code(
                "%%ask --dataset actuals\n"
                "Which departments spent more than planned over the year, and by how much?"
            ),
            md("A follow-up uses the previous answer (`prev`) and a third sheet."),
            code("%%ask\nWho heads the department that overspent most?"),
            md("A month-by-month view. Series answers offer a **Chart** tab next to the table."),
            code(
                "%%ask\n"
                "Show the monthly gap between actual and planned spend for Marketing, in euros"
            ),
            md("`%ask use` switches the active dataset."),
            code("%ask use departments"),
            code("%%ask\nWhich cost center has the largest monthly budget?"),
            md(
                "## Your own files\n\n"
                "`%ask upload` opens an upload box: pick or drop several `.csv`, `.xls` or `.xlsx` "
                "files; each becomes a dataset, with a card showing its columns (type, nulls, "
                "distinct values, samples), a preview, and a sheet picker for workbooks. A file "
                "that cannot be read shows its error in the box and leaves the other datasets "
                "alone."
            ),
            code("%ask upload"),
        ]
    )


def followups_and_charts() -> nbformat.NotebookNode:
    return notebook(
        [
            md(
                "# Follow-up questions and charts\n\n"
                "`data/web_traffic.csv` has a row per day, marketing channel and device for "
                "2024: sessions, sign-ups and revenue. Follow-up questions refer to the answer "
                'before ("that", "and only ..."), and charts are one question away.'
            ),
            code("%load_ext dataask"),
            code("%ask load data/web_traffic.csv --name traffic", machine_dependent=True),
            code("%%ask\nHow many sessions did each channel bring in 2024?"),
            md("Narrow it down; the conversation carries the context."),
            code("%%ask\nand only on mobile?"),
            md(
                "Ask for a chart: the sandbox builds a plotly figure and sends its JSON spec; "
                "it is shown as an interactive plotly widget."
            ),
            code("%%ask\nplot that as a bar chart"),
            md(
                "A table over time. Tables are paged and sortable (click a column header); "
                "the **Chart** tab draws a grouped result without another question."
            ),
            code("%%ask\nWhat share of sessions turned into sign-ups each week, by device?"),
            code("%%ask\ndraw that as a line chart"),
            md("Single values and short lists come back as a headline."),
            code("%%ask\nWhich day had the most sign-ups, and how many?"),
            code("%%ask\nWhat was the revenue on that day, per channel?"),
            md(
                "Every answer shows its code (folded). **Insert as new cell** puts it below, so "
                "you can keep working with plain pandas; `%ask code K` prints the code of turn K."
            ),
            code("%ask code 4"),
            code("%ask history"),
        ]
    )


def exports() -> nbformat.NotebookNode:
    return notebook(
        [
            md(
                "# Exporting answers\n\n"
                "Every answer has **CSV / JSON / XLSX / PNG** buttons (files go next to the "
                "notebook). The same from code: `%ask export PATH [--turn K]` in a notebook, "
                "`Answer.export(PATH)` in Python. The format comes from the file suffix."
            ),
            code("%load_ext dataask"),
            code("%ask load data/sales.xlsx --name sales", machine_dependent=True),
            code("%%ask\nRevenue and units by region and category"),
            code(
                "%ask export out/by_region.csv\n"
                "%ask export out/by_region.json\n"
                "%ask export out/by_region.xlsx\n"
                "%ask export out/by_region.png"
            ),
            md(
                "The files read back as they were: JSON holds records with ISO 8601 dates, XLSX "
                "has a frozen header row, the PNG is the table drawn as an image."
            ),
            code(
                "import json\n\nimport pandas as pd\n\n"
                'pd.read_excel("out/by_region.xlsx", engine="openpyxl").head(3)'
            ),
            code('json.load(open("out/by_region.json"))[:2]'),
            code('from IPython.display import Image\n\nImage("out/by_region.png", width=420)'),
            md(
                "Charts export as PNG through plotly's kaleido, which drives a Chrome or "
                "Chromium installed on the machine."
            ),
            code("%%ask\nPlot revenue per month by region"),
            code(
                "%ask export out/revenue_per_month.png\n%ask export out/first_answer.xlsx --turn 1"
            ),
            code('Image("out/revenue_per_month.png", width=600)'),
            md(
                "## Formula injection\n\n"
                "A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is run as a "
                "formula by spreadsheet programs. Support tickets are typical: people type "
                "`=SUM(...)` or `-- urgent --` into subjects. By default exports neutralise "
                "such cells: CSV gets a leading apostrophe, XLSX stores them as text with "
                "Excel's quote prefix (the value itself is unchanged)."
            ),
            code("%ask load data/support_tickets.csv --name tickets"),
            code("%%ask\nWhich open tickets waited longest for a first reply?"),
            code(
                "%ask export out/open_tickets.csv\n"
                'print(open("out/open_tickets.csv", encoding="utf-8").read())'
            ),
            md(
                "`--no-formula-guard` (or `formula_guard=False` in Python) writes cells as they are."
            ),
            code(
                "%ask export out/open_tickets_raw.csv --no-formula-guard\n"
                'print(open("out/open_tickets_raw.csv", encoding="utf-8").read())'
            ),
            md(
                "## From Python\n\n"
                "The magics use a `dataask.Session`; scripts can use one directly. "
                "`Answer.export` takes the same formats and options."
            ),
            code(
                "import dataask\n\n"
                "session = dataask.Session()\n"
                'session.load("data/sales.xlsx", name="sales")\n'
                'answer = session.ask("Top 5 countries by revenue")\n'
                'answer.export("out/top_countries.xlsx")\n'
                'answer.export("out/top_countries.json")\n'
                "answer",
                machine_dependent=True,
            ),
            code('pd.read_json("out/top_countries.json")'),
            code("session.close()"),
        ]
    )


NOTEBOOKS = {
    "quickstart.ipynb": quickstart,
    "excel_sheets.ipynb": excel_sheets,
    "followups_and_charts.ipynb": followups_and_charts,
    "exports.ipynb": exports,
}


def strip_live_widgets(nb: nbformat.NotebookNode) -> None:
    """Drop widget views and widget state (without a kernel they cannot render anyway; the
    text/plain, HTML and chart outputs beside them stay) and per-run timing metadata."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for out in cell.get("outputs", []):
            out.get("data", {}).pop(WIDGET_VIEW, None)


def execute(nb: nbformat.NotebookNode, llm_url: str) -> None:
    from nbclient import NotebookClient

    env = {
        "DATAASK_LLM_BASE_URL": llm_url,
        "DATAASK_LLM_API_KEY": "scripted-not-secret",
        "DATAASK_LLM_MODEL": "scripted",
        "DATAASK_SANDBOX": os.environ.get("DATAASK_SANDBOX", "local"),
        # each notebook starts from a clean slate, not from a stored earlier run
        "DATAASK_STATE_DIR": tempfile.mkdtemp(prefix="dataask-state-"),
    }
    os.environ.update(env)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
    )
    client.execute()
    strip_live_widgets(nb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--execute", action="store_true", help="run them and keep the outputs")
    parser.add_argument("names", nargs="*", help="only these notebooks")
    args = parser.parse_args()
    llm = None
    if args.execute:
        sys.path.insert(0, str(HERE.parent))
        from tests.scripted_llm import load_rules

        llm = load_rules(HERE / "scripted_rules.json").start()
    for name, build in NOTEBOOKS.items():
        if args.names and name not in args.names:
            continue
        nb = build()
        if llm is not None:
            execute(nb, llm.url)
        nbformat.write(nb, HERE / name)
        print(f"wrote {name}")
    if llm is not None:
        llm.stop()


if __name__ == "__main__":
    main()
