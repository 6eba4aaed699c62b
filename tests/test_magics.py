"""The magics in a real IPython shell: %load_ext dataask, %ask load, %%ask, and friends.

In a real kernel (run_cell through jupyter_client, live progress, the stop button):
tests/test_kernel_magics.py.
"""

from __future__ import annotations

import _thread
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from dataask_jupyter.progress import code_so_far
from tests.scripted_llm import PREV_MARK, ScriptedLLM

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "examples" / "data"


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


# --- questions are never mistaken for commands ---------------------------------------------------
def asked(llm: ScriptedLLM) -> list[str]:
    """The last user message of every request the LLM got (the question and its hint)."""
    return [
        PREV_MARK.sub("", str([m for m in r["messages"] if m.get("role") == "user"][-1]["content"]))
        for r in llm.requests
    ]


QUESTIONS_THAT_START_LIKE_COMMANDS = [
    "reset the index of df and count rows",
    "help me find outliers in units",
    "code abc",
    "history of units by month",
    "use the median of units",
    "export the chart as png",
    "load the top rows and count them",
    "datasets with more than 3 rows",
    "sandbox values above 10",
    "forget the outliers and count rows",
    "upload count",
]


def test_a_subcommand_word_followed_by_a_question_is_a_question(
    ip: InteractiveShell, llm: ScriptedLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("config", "Ask.result_checks = False")
    ip.run_line_magic("ask", f"load {DATA / 'sales.xlsx'} --name sales")
    llm.on(".", "result = int(df.units.sum())")
    total = int(pd.read_excel(DATA / "sales.xlsx", engine="calamine").units.sum())
    for number, line in enumerate(QUESTIONS_THAT_START_LIKE_COMMANDS, 1):
        ip.run_line_magic("ask", f"-o n {line}")
        assert asked(llm)[-1].startswith(line)
        assert ip.user_ns.pop("n") == total
        ip.run_line_magic("ask", "history")
        assert f"[{number}] (sales) {line}" in capsys.readouterr().out  # nothing was reset


def test_subcommands_parse_their_own_arguments(
    ip: InteractiveShell, llm: ScriptedLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(
        UsageError, match=r"%ask load: .* required: path\nusage: %ask load \[--name NAME\]"
    ):
        ip.run_line_magic("ask", "load")
    with pytest.raises(UsageError, match="unrecognized arguments: --shet"):
        ip.run_line_magic("ask", f"load {DATA / 'sales.xlsx'} --shet Products")
    with pytest.raises(UsageError, match="invalid int value: 'x'"):
        ip.run_line_magic("ask", "code --turn x")
    ip.run_line_magic("ask", f"load {DATA / 'customers.csv'}")
    ip.run_line_magic("ask", f"load {DATA / 'sales.xlsx'} -n sales")
    ip.run_line_magic("ask", "use customers")
    assert "Active dataset: customers: 8 rows" in capsys.readouterr().out
    llm.on("how many", "result = len(df)")
    ip.run_line_magic("ask", "how many rows?")
    capsys.readouterr()
    ip.run_line_magic("ask", "code 1")
    assert capsys.readouterr().out.strip() == "result = len(df)"
    with pytest.raises(UsageError, match="no turn 7"):
        ip.run_line_magic("ask", "code 7")
    ip.run_line_magic("ask", "help")
    help_text = capsys.readouterr().out
    for word in ("load", "upload", "export", "prompt", "forget", "sandbox", "is a question"):
        assert word in help_text
    assert not any("how many" not in q for q in asked(llm))  # no command reached the LLM


def test_cell_bodies_are_always_questions(ip: InteractiveShell, llm: ScriptedLLM) -> None:
    ip.run_line_magic("ask", f"load {DATA / 'customers.csv'}")
    llm.on("reset", "result = len(df)")
    ip.run_cell_magic("ask", "-o n", "reset")
    assert ip.user_ns["n"] == 8
    assert asked(llm)[-1].startswith("reset")


def test_one_line_question_ending_with_question_mark(
    ip: InteractiveShell, llm: ScriptedLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("ask", f"load {DATA / 'customers.csv'}")
    llm.on("how many customers", "result = len(df)")
    result = ip.run_cell("%ask -o n how many customers in total?")
    assert result.success, result.error_in_exec
    assert ip.user_ns["n"] == 8
    assert asked(llm)[-1].startswith("how many customers in total?")
    assert "not found" not in capsys.readouterr().out
    # only `%ask ` lines change: help on the magic, other help requests and %%ask bodies do not
    assert "pinfo" in ip.transform_cell("%ask?")
    assert "pinfo" in ip.transform_cell("len?")
    assert "run_line_magic('ask', 'x?')" in ip.transform_cell("for i in [1]:\n    %ask x?\n")
    body = ip.transform_cell("%%ask -o m\n%ask is this kept?\n")
    assert "%ask is this kept?" in body
    ip.run_line_magic("unload_ext", "dataask")
    assert "pinfo" in ip.transform_cell("%ask how many in total?")
    ip.run_line_magic("load_ext", "dataask")


def test_load_options_reach_the_reader(
    ip: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    book = tmp_path / "report.xlsx"
    rows = [["Sales report 2024", None, None], [None, None, None], ["region", "units", "price"]]
    rows += [["north", 3, 1.5], ["south", 4, 2.5], ["east", 5, 3.5], [None, None, None]]
    rows += [["notes", None, None]]
    pd.DataFrame(rows).to_excel(book, header=False, index=False)
    ip.run_line_magic("ask", f"load {book} --header-row 3 --name r")
    assert "Loaded r: " in capsys.readouterr().out
    session = ip.magics_manager.registry["AskMagics"].session
    assert session.datasets["r"].columns[:3] == ["region", "units", "price"]
    ip.run_line_magic("ask", f"load {book} --range A3:B5 --name part")
    assert "Loaded part: 2 rows x 2 columns" in capsys.readouterr().out
    assert session.datasets["part"].columns == ["region", "units"]


def test_prompt_shows_what_the_next_question_sends(
    ip: InteractiveShell, llm: ScriptedLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("ask", f"load {DATA / 'customers.csv'}")
    capsys.readouterr()
    ip.run_line_magic("ask", "prompt which city has the most customers?")
    out = capsys.readouterr().out
    assert "--- system ---" in out and "--- user ---" in out
    assert "which city has the most customers?" in out
    assert "customers" in out
    assert not llm.requests  # nothing was sent


def test_sandbox_lists_the_isolation_layers(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("ask", "sandbox")
    assert "not running yet" in capsys.readouterr().out
    ip.run_line_magic("ask", f"load {DATA / 'customers.csv'}")
    capsys.readouterr()
    ip.run_line_magic("ask", "sandbox")
    out = capsys.readouterr().out
    info = ip.magics_manager.registry["AskMagics"].session.sandbox_info()
    assert f"backend: {info['backend']}" in out and "isolation:" in out
    for layer in info.get("layers", []):
        assert f"- {layer if isinstance(layer, str) else json.dumps(layer)}" in out


def test_forget_and_conversation_export(
    ip: InteractiveShell, llm: ScriptedLLM, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("ask", f"load {DATA / 'customers.csv'}")
    llm.on("how many", "result = len(df)")
    ip.run_line_magic("ask", "how many rows?")
    for suffix in (".ipynb", ".py"):
        ip.run_line_magic("ask", f"export {tmp_path / ('analysis' + suffix)}")
        assert (tmp_path / f"analysis{suffix}").stat().st_size > 0
    assert "len(df)" in (tmp_path / "analysis.py").read_text()
    capsys.readouterr()
    ip.run_line_magic("ask", "forget")
    assert "Deleted" in capsys.readouterr().out
    ip.run_line_magic("ask", "history")
    assert "No questions asked yet." in capsys.readouterr().out


# --- progress and cancel -------------------------------------------------------------------------
def test_headless_progress_prints_one_line_per_stage(
    ip: InteractiveShell, llm: ScriptedLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("ask", f"load {DATA / 'customers.csv'}")
    llm.on("how many", "result = len(df)")
    capsys.readouterr()
    ip.run_line_magic("ask", "how many rows?")
    out = capsys.readouterr().out
    stages = [line for line in out.splitlines() if line.startswith("dataask: ")]
    assert "dataask: writing code" in stages and "dataask: running in the sandbox" in stages
    assert "result = len(df)" not in stages  # the code is not streamed as lines


def test_interrupt_cancels_the_question(
    ip: InteractiveShell, llm: ScriptedLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("ask", f"load {DATA / 'customers.csv'}")
    llm.on("slow", "result = 1", delay=5)  # only this question waits (no shared fault queue)

    def asked() -> bool:
        return any("a slow question" in json.dumps(r) for r in list(llm.requests))

    def interrupt_once_asked() -> None:  # Ctrl-C while the LLM is answering, however slow
        deadline = time.monotonic() + 30
        while not asked() and time.monotonic() < deadline:
            time.sleep(0.02)
        _thread.interrupt_main()

    # Ctrl-C as a terminal sends it, whatever handler an earlier test left behind
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Thread(target=interrupt_once_asked)
    try:
        timer.start()
        capsys.readouterr()
        ip.run_line_magic("ask", "-o v a slow question")
        timer.join()
    finally:
        signal.signal(signal.SIGINT, handler)
    out = capsys.readouterr()
    assert out.out.strip().splitlines()[-1] == "cancelled"
    assert "Traceback" not in out.out + out.err
    assert ip.user_ns["v"] is None
    llm.on("how many", "result = len(df)")
    ip.run_line_magic("ask", "-o n how many rows?")
    assert ip.user_ns["n"] == 8
    session = ip.magics_manager.registry["AskMagics"].session
    assert [a.cancelled for a in session.history] == [True, False]


def test_code_so_far_follows_the_fence() -> None:
    assert code_so_far("Here:\n```python\nresult = df.hea") == "result = df.hea"
    assert code_so_far("```python\nresult = 1\n```\nThat counts.") == "result = 1\n"
    assert code_so_far("Let me think") == "Let me think"
    assert code_so_far("```pyth") == ""


def test_load_ext_imports_neither_pandas_openai_nor_the_session() -> None:
    probe = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "sh = InteractiveShell.instance()\n"
        "sh.run_line_magic('load_ext', 'dataask')\n"
        "sh.run_line_magic('ask', 'help')\n"
        "import dataask\n"
        "heavy = ('pandas', 'openai', 'dataask_jupyter.session', 'dataask_jupyter.render')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "print(dataask.Session.__module__, dataask.DataaskError.__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.splitlines()
    assert out[-2] == "[]"
    assert out[-1] == "dataask_jupyter.session DataaskError"
