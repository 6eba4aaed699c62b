"""The magics in a real IPython shell: %load_ext dataask, %ask load, %%ask, and friends."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from tests.scripted_llm import ScriptedLLM

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"


def test_load_ask_followup_output(
    ip: InteractiveShell, llm: ScriptedLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("ask", f"load {DATA / 'sales.xlsx'} --name sales")
    out = capsys.readouterr().out
    assert "Loaded sales: 4,000 rows x 11 columns" in out
    assert '"Orders 2023", "Orders 2024", "Products"' in out
    llm.on("revenue by region", "result = df.groupby('region')['revenue'].sum()")
    llm.on("only for europe", "result = float(prev.loc['Europe'])")
    ip.run_cell_magic("ask", "-o by_region", "What is the revenue by region?")
    assert isinstance(ip.user_ns["by_region"], pd.Series)
    out = capsys.readouterr().out
    assert "Europe" in out and "code:" in out and "groupby('region')" in out
    ip.run_cell_magic("ask", "-o eu", "and only for Europe")
    assert ip.user_ns["eu"] == pytest.approx(ip.user_ns["by_region"].loc["Europe"])
    ip.run_line_magic("ask", "history")
    out = capsys.readouterr().out
    assert "[1] (sales) What is the revenue by region?" in out and "[2]" in out
    ip.run_line_magic("ask", "code")
    assert "prev.loc['Europe']" in capsys.readouterr().out


def test_one_line_question_and_dataset_option(
    ip: InteractiveShell, llm: ScriptedLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("ask", f"load {DATA / 'sales.xlsx'} --sheet Products --name products")
    ip.run_line_magic("ask", f"load {DATA / 'customers.csv'}")
    llm.on("how many products", "result = len(df)")
    capsys.readouterr()
    ip.run_line_magic("ask", "-d products -o n how many products are there")
    assert ip.user_ns["n"] == 10
    ip.run_line_magic("ask", "datasets")
    out = capsys.readouterr().out
    assert "* customers: 8 rows x 5 columns" in out and "  products: 10 rows" in out


def test_load_dataframe_from_namespace(ip: InteractiveShell, llm: ScriptedLLM) -> None:
    ip.user_ns["frame"] = pd.DataFrame({"x": [1, 2, 3]})
    ip.run_line_magic("ask", "load frame")
    llm.on("sum", "result = int(df.x.sum())")
    ip.run_line_magic("ask", "-o s sum of x")
    assert ip.user_ns["s"] == 6
    ip.user_ns["notaframe"] = 3
    with pytest.raises(UsageError, match="not a DataFrame"):
        ip.run_line_magic("ask", "load notaframe")


def test_errors_are_usage_errors(ip: InteractiveShell, llm: ScriptedLLM, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no dataset loaded"):
        ip.run_line_magic("ask", "what is up")
    with pytest.raises(UsageError, match=r'Sheet "Nope" not found.*"Orders 2023"'):
        ip.run_line_magic("ask", f"load {DATA / 'sales.xlsx'} --sheet Nope")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(UsageError, match="empty"):
        ip.run_line_magic("ask", f"load {empty}")
    with pytest.raises(UsageError, match="write a question"):
        ip.run_cell_magic("ask", "", "   ")
    with pytest.raises(UsageError, match="no questions asked"):
        ip.run_line_magic("ask", "export out.csv")


def test_export_sandbox_reset(
    ip: InteractiveShell, llm: ScriptedLLM, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("ask", f"load {DATA / 'sales.xlsx'}")
    llm.on("units by category", "result = df.groupby('category', as_index=False)['units'].sum()")
    ip.run_cell_magic("ask", "", "units by category")
    target = tmp_path / "units.xlsx"
    ip.run_line_magic("ask", f"export {target} --turn 1")
    assert pd.read_excel(target, engine="calamine").shape == (3, 2)
    capsys.readouterr()
    ip.run_line_magic("ask", "sandbox")
    out = capsys.readouterr().out
    assert "backend" in out and "isolation" in out and "uptime_s" in out
    ip.run_line_magic("ask", "reset")
    ip.run_line_magic("ask", "history")
    assert "No questions asked yet." in capsys.readouterr().out


def test_config_changes_apply_live(ip: InteractiveShell, llm: ScriptedLLM) -> None:
    ip.run_line_magic("ask", f"load {DATA / 'sales.xlsx'}")
    ip.run_line_magic("config", "Ask.max_repairs = 0")
    llm.on("bad", "result = df['missing']", "result = 1")
    ip.run_cell_magic("ask", "-o v", "bad question")
    assert ip.user_ns["v"] is None


def test_quoted_sheet_and_name(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_line_magic("ask", f'load {DATA / "sales.xlsx"} --sheet "Orders 2024" --name "o24"')
    assert "Loaded o24: 4,500 rows x 11 columns" in capsys.readouterr().out
