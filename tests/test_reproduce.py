"""The exported conversation reruns as plain pandas code and gives the same answers.

A real ``Session`` (real openai client against the scripted server, local sandbox) answers a
conversation; the export runs in a fresh kernel through nbclient, and as a script.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

import dataask
from dataask_jupyter.errors import ExportError
from dataask_jupyter.reproduce import to_notebook, to_script, write_conversation
from dataask_jupyter.store import DatasetRecord, TurnRecord
from tests.scripted_llm import ScriptedLLM

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"

CONVERSATION = [  # (pattern, code, question, dataset)
    ("revenue by region", "result = df.groupby('region')['revenue'].sum()", None),
    ("only for europe", "result = prev.loc['Europe']", None),
    (
        "top 3 countries",
        "result = df.groupby('country', as_index=False)['revenue'].sum().nlargest(3, 'revenue')",
        None,
    ),
    ("plot that", "result = px.bar(prev, x='country', y='revenue')", None),
    (
        "add a margin",
        "df['margin'] = df['revenue'] * 0.2\nresult = df[['order_id', 'margin']].head()",
        None,
    ),
    ("how many columns", "result = df.shape[1]", None),
    ("missing column", "result = df['no_such_column'].sum()", None),
    ("credit limits", "result = df['credit_limit'].sum()", "customers"),
    (
        "customers since",
        "result = df.loc[df['since'] < '2018-01-01', 'customer'].tolist()",
        "customers",
    ),
    ("filter to wholesale", "df = df[df['segment'] == 'Wholesale']\nresult = len(df)", "customers"),
    ("back to sales", "result = len(df)", None),
]
QUESTIONS = {
    "revenue by region": "Total revenue by region?",
    "only for europe": "Only for Europe?",
    "top 3 countries": "Top 3 countries by revenue?",
    "plot that": "Plot that as a bar chart",
    "add a margin": "Add a margin column (20% of revenue) and show the first rows",
    "how many columns": "How many columns are there?",
    "missing column": "Sum of the missing column",
    "credit limits": "Sum of credit limits?",
    "customers since": "List the customers who joined before 2018",
    "filter to wholesale": "Filter to wholesale customers: how many are there?",
    "back to sales": "How many orders are there?",
}


@pytest.fixture(scope="module")
def conversation(
    llm_server: ScriptedLLM,
) -> Iterator[tuple[dataask.Session, list[TurnRecord], list[DatasetRecord]]]:
    llm = llm_server
    llm.clear()
    s = dataask.Session(
        llm_base_url=llm.url,
        llm_api_key="test-key-not-secret",
        llm_model="scripted",
        sandbox=os.environ.get("DATAASK_TEST_SANDBOX", "local"),
    )
    s.load(DATA / "customers.csv", name="customers")  # cp1252, ";" and decimal commas
    s.load(DATA / "sales.xlsx", name="sales", sheet="Orders 2024")
    for pattern, code, _ in CONVERSATION:
        llm.on(pattern, code)
    for pattern, _, dataset in CONVERSATION:
        s.ask(QUESTIONS[pattern], dataset=dataset or "sales")
    turns = [TurnRecord.from_answer(a) for a in s.history]
    datasets = [
        DatasetRecord.from_dataset(d, active=(n == s.active)) for n, d in s.datasets.items()
    ]
    yield s, turns, datasets
    s.close()
    llm.clear()


def _run(nb: nbformat.NotebookNode, tmp_path: Path, numbers: list[int]) -> dict[int, Any]:
    """Run ``nb`` in a fresh kernel; the ``result`` of each answer cell, by turn number."""
    nb = nbformat.from_dict(nb)
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    answers = code_cells[1:]  # the first code cell loads the data
    assert len(answers) == len(numbers)
    out = tmp_path / "results.pkl"
    for k, i in reversed(list(enumerate(answers))):
        nb.cells.insert(i + 1, nbformat.v4.new_code_cell(f"_results[{numbers[k]}] = result"))
    nb.cells.insert(code_cells[0] + 1, nbformat.v4.new_code_cell("_results = {}"))
    nb.cells.append(
        nbformat.v4.new_code_cell(
            f"import pickle\nwith open({str(out)!r}, 'wb') as f:\n    pickle.dump(_results, f)"
        )
    )
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    with open(out, "rb") as f:  # written by the test's own kernel just above
        return dict(pickle.load(f))


def _same(got: Any, want: Any) -> None:
    if isinstance(want, pd.DataFrame):
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
    elif isinstance(want, pd.Series):
        pd.testing.assert_series_equal(got, want, check_dtype=False)
    elif type(want).__module__.startswith("plotly"):
        assert [t.type for t in got.data] == [t.type for t in want.data]
        assert list(got.data[0].x) == list(want.data[0].x)
        assert list(got.data[0].y) == pytest.approx(list(want.data[0].y))
    elif isinstance(want, float):
        assert got == pytest.approx(want)
    else:
        assert got == want


def test_exported_notebook_reproduces_the_answers(
    conversation: tuple[dataask.Session, list[TurnRecord], list[DatasetRecord]],
    tmp_path: Path,
) -> None:
    s, turns, datasets = conversation
    failed = [t for t in turns if t.error]
    assert [t.question for t in failed] == ["Sum of the missing column"]
    assert s.turn(6).value == 11  # the margin column stayed in its own answer
    frames = {n: d.frame for n, d in s.datasets.items()}
    nb = to_notebook(turns, datasets, frames=frames)
    sources = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "import dataask" not in sources and "from dataask" not in sources  # paths may say it
    assert "decimal=','" in sources and "sep=';'" in sources and "encoding='cp1252'" in sources
    assert "sheet_name='Orders 2024'" in sources
    assert "Not reproduced exactly" not in "\n".join(c.source for c in nb.cells)
    md = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert any("Sum of the missing column" in m and "No answer" in m for m in md)
    ok = [t for t in turns if t.error is None]
    results = _run(nb, tmp_path, [t.number for t in ok])
    assert sorted(results) == [t.number for t in ok]
    for t in ok:
        _same(results[t.number], s.turn(t.number).value)


def test_exported_script_runs_without_dataask(
    conversation: tuple[dataask.Session, list[TurnRecord], list[DatasetRecord]],
    tmp_path: Path,
) -> None:
    s, turns, datasets = conversation
    path = write_conversation(tmp_path / "analysis.py", turns, datasets)
    code = path.read_text()
    assert code.startswith("# %% [markdown]") and "print(result)" in code
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "dataask.py").write_text("raise ImportError('dataask must not be needed')\n")
    (blocker / "dataask_jupyter.py").write_text("raise ImportError('not needed')\n")
    done = subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(blocker), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert str(s.turn(6).value) in done.stdout.split()
    nb_path = write_conversation(tmp_path / "analysis.ipynb", turns, datasets)
    nbformat.validate(nbformat.read(nb_path, as_version=4))


def test_what_cannot_be_reproduced_is_said(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    reader_frame = pd.DataFrame({"a": [1, 3], "b": [2, 5]})  # not what pandas reads from t.csv
    datasets = [
        DatasetRecord(name="mem", source="", format="dataframe"),
        DatasetRecord(name="gone", source=str(tmp_path / "gone.csv"), format="csv"),
        DatasetRecord(name="t", source=str(csv), format="csv", columns=["a", "b"], active=True),
    ]
    turns = [TurnRecord(number=1, question="q?", dataset="t", code="result = df['a'].sum()")]
    nb = to_notebook(turns, datasets, frames={"t": reader_frame})
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "`mem` was not read from a file" in text
    assert "`gone`" in text and "no longer exists" in text
    assert "`t`: this plain pandas load gives a different table" in text
    assert "other values in column 'b'" in text
    with pytest.raises(ExportError, match="nothing to export"):
        write_conversation(tmp_path / "x.ipynb", [], datasets)
    with pytest.raises(ExportError, match=r"\.txt"):
        write_conversation(tmp_path / "x.txt", turns, datasets)
    assert "print(result)" in to_script(turns, datasets)


@pytest.mark.parametrize(
    "options", [{"header_row": 3}, {"range": "B3:D8"}, {"range": "Report!$B$3:$D$8"}, {}]
)
def test_reader_layout_is_reproduced(
    settings_kwargs: dict[str, Any], tmp_path: Path, options: dict[str, Any]
) -> None:
    """A title block, a blank first column and a totals row: the load cell reads the same table
    as the reader, from the options given or from where the reader found the table."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Report"
    ws.append(["Quarterly sales report"])
    ws.append([])
    ws.append([None, "region", "units", "revenue"])
    for i, region in enumerate(["North", "South", "East", "West", "Centre"]):
        ws.append([None, region, 10 + i, 100.5 * (i + 1)])
    ws.append([None, "Total", 60, 1507.5])
    path = tmp_path / "report.xlsx"
    wb.save(path)
    with dataask.Session(**settings_kwargs) as s:
        ds = s.load(path, name="report", **options)
        assert ds.shape == (5, 3), ds.notes
        rec = DatasetRecord.from_dataset(ds, active=True)
        assert (rec.header_row, rec.range) == (options.get("header_row"), options.get("range"))
        turns = [TurnRecord(number=1, question="q", dataset="report", code="result = len(df)")]
        nb = to_notebook(turns, [rec], frames={"report": ds.frame})
        text = "\n".join(c.source for c in nb.cells)
        assert "Not reproduced exactly" not in text, nb.cells[1].source
        ns: dict[str, Any] = {}
        exec(nb.cells[1].source, ns)  # the load cell
        pd.testing.assert_frame_equal(
            ns["df"], ds.frame, check_dtype=False, check_column_type=False
        )
