"""Regenerate the example notebooks (run: python examples/make_notebooks.py)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent


def quickstart() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell(
            "# dataask quickstart\n\n"
            "Ask questions about a spreadsheet in plain language. An LLM writes pandas code; the "
            "code runs in a sandbox **outside** this kernel, and the answer comes back here.\n\n"
            "With no API key set, dataask uses its embedded local model (CPU, offline). To use a "
            "hosted model set `DATAASK_LLM_API_KEY` (and `DATAASK_LLM_BASE_URL`, "
            "`DATAASK_LLM_MODEL`) before starting Jupyter."
        ),
        new_code_cell("%load_ext dataask"),
        new_markdown_cell(
            "Load a workbook. All sheets are listed; `--sheet` picks one (default: the first)."
        ),
        new_code_cell("%ask load data/sales.xlsx --name sales"),
        new_markdown_cell("Ask a question: the cell body is the question."),
        new_code_cell("%%ask\nWhich 3 products had the highest total revenue?"),
        new_markdown_cell(
            "Follow-up questions build on the previous answer (`prev` in the sandbox)."
        ),
        new_code_cell("%%ask\nHow much revenue did each region bring in?"),
        new_code_cell("%%ask\nand only for Europe"),
        new_code_cell("%%ask -o monthly\nWhat was the total revenue per month?"),
        new_code_cell("%%ask\nplot that as a line chart"),
        new_markdown_cell("`-o monthly` stored that answer in a variable of this notebook:"),
        new_code_cell("monthly.head(3)"),
        new_markdown_cell("The conversation so far, and where the code ran:"),
        new_code_cell("%ask history"),
        new_code_cell("%ask sandbox"),
    ]
    return new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )


def main() -> None:
    nbformat.write(quickstart(), HERE / "quickstart.ipynb")


if __name__ == "__main__":
    main()
