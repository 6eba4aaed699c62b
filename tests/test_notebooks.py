"""The example notebooks, executed in a real kernel against the scripted LLM server."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from tests.scripted_llm import ScriptedLLM

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

QUICKSTART_RULES = {
    r"highest total revenue": "result = df.groupby('product')['revenue'].sum().nlargest(3)",
    r"each region": "result = df.groupby('region')['revenue'].sum().sort_values(ascending=False)",
    r"only for europe": "result = round(float(prev.loc['Europe']), 2)",
    r"revenue per month": "result = df.set_index('order_date')['revenue'].resample('MS').sum()",
    r"plot that": "result = px.line(prev, title='Revenue per month')",
}


def run(
    nb_path: Path, llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch, sandbox: str = "local"
) -> nbformat.NotebookNode:
    monkeypatch.setenv("DATAASK_LLM_BASE_URL", llm.url)
    monkeypatch.setenv("DATAASK_LLM_API_KEY", "test-key-not-secret")
    monkeypatch.setenv("DATAASK_LLM_MODEL", "scripted")
    monkeypatch.setenv("DATAASK_SANDBOX", sandbox)
    nb = nbformat.read(nb_path, as_version=4)
    NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(nb_path.parent)}},
    ).execute()
    return nb


def outputs(cell: nbformat.NotebookNode) -> str:
    parts = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            parts.append(o["text"])
        else:
            parts.append(o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_quickstart(llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    for pattern, code in QUICKSTART_RULES.items():
        llm.on(pattern, code)
    nb = run(EXAMPLES / "quickstart.ipynb", llm, monkeypatch)
    cells = {
        c.source.splitlines()[-1] if c.source else "": c for c in nb.cells if c.cell_type == "code"
    }
    data = pd.read_excel(EXAMPLES / "data" / "sales.xlsx", engine="calamine")
    top3 = data.groupby("product")["revenue"].sum().nlargest(3)
    text = outputs(cells["Which 3 products had the highest total revenue?"])
    for product in top3.index:
        assert product in text
    europe = round(float(data.groupby("region")["revenue"].sum().loc["Europe"]), 2)
    assert str(europe) in outputs(cells["and only for Europe"])
    chart = cells["plot that as a line chart"]
    assert any("application/vnd.plotly.v1+json" in o.get("data", {}) for o in chart.outputs)
    assert "Series 'revenue'" not in outputs(cells["monthly.head(3)"])  # a real Series came back
    assert "2023-01-01" in outputs(cells["monthly.head(3)"])
    history = outputs(cells["%ask history"])
    assert "[5] (sales) plot that as a line chart" in history
    sandbox = outputs(cells["%ask sandbox"])
    assert "backend" in sandbox and "local" in sandbox
    # the notebook itself ran no generated code: the kernel only displayed results
    assert all(o.get("output_type") != "error" for c in nb.cells for o in c.get("outputs", []))
    assert json.dumps(nb).count("Traceback") == 0
