"""The core loop via the public API: real openai client, scripted server, real sandbox."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import dataask
from dataask_jupyter.errors import DataaskError, DatasetNotFoundError
from tests.sandbox_freeze import freeze
from tests.scripted_llm import ScriptedLLM

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "data" / "sales.xlsx"


BACKENDS = ["local"] + (["docker"] if os.environ.get("DATAASK_TEST_DOCKER") == "1" else [])


@pytest.fixture(params=BACKENDS)
def session(request: pytest.FixtureRequest, settings_kwargs: dict[str, Any]) -> Any:
    s = dataask.Session(**{**settings_kwargs, "sandbox": request.param})
    yield s
    s.close()


@pytest.fixture
def sales(session: dataask.Session) -> dataask.Dataset:
    return session.load(EXAMPLE, name="sales")


def truth() -> pd.DataFrame:
    return pd.read_excel(EXAMPLE, sheet_name="Orders 2023", engine="calamine")


def test_load_and_answer(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    assert sales.name == "sales" and sales.shape == (4000, 11)
    assert sales.sheets == ["Orders 2023", "Orders 2024", "Products"]
    llm.on("top 3 products", "result = df.groupby('product')['revenue'].sum().nlargest(3)")
    a = session.ask("top 3 products by revenue in 2023")
    assert a.error is None, a.error
    expected = truth().groupby("product")["revenue"].sum().nlargest(3)
    pd.testing.assert_series_equal(a.value, expected, check_names=False)
    assert a.code == "result = df.groupby('product')['revenue'].sum().nlargest(3)"
    assert len(a.attempts) == 1 and a.attempts[0].error is None
    assert session.history == [a]


def test_code_runs_outside_the_kernel(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    session.settings.static_checks = False
    llm.on("where", "import os, sys\nresult = [os.getpid(), 'dataask_jupyter' in sys.modules]")
    a = session.ask("where do you run?")
    assert a.error is None
    pid, kernel_modules = a.value
    assert pid != os.getpid()
    assert kernel_modules is False


def test_dataset_sent_once(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    llm.on("count", "result = len(df)")
    first = session.sandbox.server_info["pid"]
    for _ in range(3):
        assert session.ask("count rows").value == 4000
    assert session.sandbox.server_info["pid"] == first
    assert session.sandbox.restarts == 0


def test_follow_up_uses_prev_and_history(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    llm.on("revenue by region", "result = df.groupby('region')['revenue'].sum()")
    llm.on("only for europe", "result = prev.loc['Europe']")
    llm.on("plot that", "result = px.bar(prev)")
    by_region = session.ask("revenue by region")
    europe = session.ask("and only for Europe")
    assert europe.value == pytest.approx(by_region.value.loc["Europe"])
    last_prompt = llm.requests[-1]["messages"]
    contents = "\n".join(m["content"] for m in last_prompt)
    assert "revenue by region" in contents and "and only for Europe" in contents
    assert "previous code gave" in last_prompt[-1]["content"]
    session.ask("revenue by region")
    chart = session.ask("plot that")
    assert chart.error is None and type(chart.value).__name__ == "Figure"
    assert chart.kind == "figure"


def test_repair_after_execution_error(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    llm.on("average units", "result = df['Units'].mean()", "result = df['units'].mean()")
    a = session.ask("average units per order")
    assert a.error is None
    assert a.value == pytest.approx(truth()["units"].mean())
    assert len(a.attempts) == 2 and "KeyError" in (a.attempts[0].error or "")
    repair = llm.requests[-1]["messages"][-1]["content"]
    assert repair.startswith("That code failed") and "Units" in repair


def test_repairs_exhausted_then_session_goes_on(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    llm.on("broken", "result = df['nope'].sum()")
    llm.on("count", "result = len(df)")
    a = session.ask("broken question")
    assert a.error is not None and "KeyError" in a.error and "Traceback" not in a.error
    assert len(a.attempts) == 1 + session.settings.max_repairs
    assert a.code == "result = df['nope'].sum()"
    b = session.ask("count rows")
    assert b.value == 4000 and len(session.history) == 2


def test_reply_without_code_is_repaired(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    llm.on(
        "regions",
        "I think there are some regions.",
        "```python\nresult = df.region.nunique()\n```",
        raw=True,
    )
    a = session.ask("how many regions?")
    assert a.value == 4 and len(a.attempts) == 2


def test_static_check_refusal_is_repaired(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    llm.on("rows", "df = pd.read_excel('sales.xlsx')\nresult = len(df)", "result = len(df)")
    a = session.ask("rows?")
    assert a.value == 4000
    assert "read_excel" in (a.attempts[0].error or "")


def test_execution_timeout_restarts_and_keeps_history(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    session.settings.exec_timeout = 1.0
    session.settings.max_repairs = 0
    llm.on("forever", "while True:\n    pass\nresult = 1")
    llm.on("count", "result = len(df)")
    a = session.ask("loop forever")
    assert a.error is not None and "longer than 1 s" in a.error
    assert session.ask("count").value == 4000
    assert len(session.history) == 2


def test_run_that_ignores_its_alarm_is_killed(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    # Code that disables the alarm in its own process: the server kills that run's process.
    session.settings.exec_timeout = 1.0
    session.settings.max_repairs = 0
    session.settings.static_checks = False
    llm.on(
        "spin",
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "while True:\n    pass\nresult = 1",
    )
    llm.on("count", "result = len(df)")
    a = session.ask("spin")
    assert a.error is not None and "Ask.exec_timeout" in a.error
    assert session.ask("count").value == 4000
    assert session.sandbox.restarts == 0  # only the run died; the sandbox and its data stay


def test_server_that_hangs_is_replaced(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    # The last line of defence: a sandbox that stops answering is killed by the kernel and
    # replaced, with the datasets re-sent.
    session.settings.exec_timeout = 1.0
    llm.on("count", "result = len(df)")
    assert session.ask("count").value == 4000
    backend = session.sandbox.backend
    assert backend is not None
    freeze(backend)
    a = session.ask("count again")
    if a.error is not None:  # noticed mid-question: killed after exec_timeout + grace
        assert "Ask.exec_timeout" in a.error and "restarted" in a.error
    else:  # noticed before the question (Docker reports the container paused): replaced first
        assert a.value == 4000
    assert session.ask("count").value == 4000
    assert session.sandbox.restarts == 1


def test_sandbox_killed_from_outside(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    llm.on("revenue by region", "result = df.groupby('region')['revenue'].sum()")
    llm.on("europe", "result = prev.loc['Europe']")
    first = session.ask("revenue by region")
    backend = session.sandbox.backend
    assert backend is not None
    backend.stop()
    a = session.ask("and Europe?")
    assert a.error is None, a.error
    assert a.value == pytest.approx(first.value.loc["Europe"])  # prev restored after restart


def test_result_over_cap_is_refused(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    session.settings.max_result_bytes = 10_000
    session.settings.max_repairs = 0
    llm.on("everything", "result = df")
    a = session.ask("show everything")
    assert a.error is not None and "cap" in a.error and "Ask.max_result_bytes" in a.error


def test_no_dataset_and_unknown_dataset(session: dataask.Session, llm: ScriptedLLM) -> None:
    with pytest.raises(DatasetNotFoundError, match="no dataset loaded"):
        session.ask("anything")
    session.load(pd.DataFrame({"a": [1, 2]}), name="tiny")
    with pytest.raises(DatasetNotFoundError, match='no dataset named "x"; loaded: "tiny"'):
        session.ask("anything", dataset="x")
    with pytest.raises(DataaskError, match="empty"):
        session.ask("   ")


def test_several_datasets(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    session.load(EXAMPLE, name="products", sheet="Products")
    llm.on("join", "result = len(dfs['sales'].merge(dfs['products'], on='product_id'))")
    a = session.ask("join orders with products", dataset="sales")
    assert a.value == 4000
    system = llm.requests[-1]["messages"][0]["content"]
    assert '"products"' in system and '"sales"' in system


def test_history_is_bounded_and_reset(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    session.settings.max_history = 3
    llm.on("q", "result = 1")
    for i in range(5):
        session.ask(f"q{i}")
    assert [a.number for a in session.history] == [3, 4, 5]
    session.reset()
    assert session.history == []
    llm.on("prev", "result = prev")
    assert session.ask("what is prev").value is None


def test_llm_errors_are_clear_and_session_survives(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    llm.on("count", "result = len(df)")
    llm.fail(429, times=1)
    assert session.ask("count").value == 4000  # retried with backoff
    llm.fail(500, times=1 + session.settings.llm_max_retries)
    a = session.ask("count")
    assert a.error is not None and "HTTP 500" in a.error
    session.settings.llm_timeout = 0.5
    session.settings.llm_max_retries = 0
    llm.delay(2.0)
    b = session.ask("count")
    assert b.error is not None and "Ask.llm_timeout" in b.error
    session.settings.llm_timeout = 10
    assert session.ask("count").value == 4000
    assert len(session.history) == 4


def test_unreachable_endpoint(settings_kwargs: dict[str, Any]) -> None:
    kwargs = {**settings_kwargs, "llm_base_url": "http://127.0.0.1:9/v1", "llm_max_retries": 0}
    with dataask.Session(**kwargs) as s:
        s.load(pd.DataFrame({"a": [1]}), name="t")
        a = s.ask("anything")
    assert a.error is not None and "cannot reach the LLM endpoint" in a.error


def test_export_roundtrip(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM, tmp_path: Path
) -> None:
    llm.on("table", "result = df.groupby('region', as_index=False)['revenue'].sum()")
    a = session.ask("a table")
    a.export(tmp_path / "t.csv")
    a.export(tmp_path / "t.json")
    a.export(tmp_path / "t.xlsx")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), a.value)
    pd.testing.assert_frame_equal(pd.read_json(tmp_path / "t.json"), a.value)
    pd.testing.assert_frame_equal(pd.read_excel(tmp_path / "t.xlsx", engine="calamine"), a.value)


def test_unknown_setting() -> None:
    with pytest.raises(TypeError, match="unknown setting 'nope'"):
        dataask.Session(nope=1)


def test_none_result_gets_one_more_try(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    llm.on(
        "plot",
        "fig = px.bar(df.groupby('region')['revenue'].sum())\nresult = print(fig)",
        "result = px.bar(df.groupby('region')['revenue'].sum())",
    )
    a = session.ask("plot revenue by region")
    assert a.kind == "figure" and len(a.attempts) == 2
    assert "is None" in (a.attempts[0].error or "")
    llm.on("nothing", "result = None")
    b = session.ask("nothing at all")
    assert b.error is None and b.value is None and len(b.attempts) == 2


def test_extension_arrays_come_back_as_lists(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    llm.on("regions", "result = df['region'].astype('category').unique()")
    a = session.ask("which regions are there")
    assert sorted(a.value) == ["Asia Pacific", "Europe", "Latin America", "North America"]


def test_yes_no_question_gets_one_value(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    llm.on(
        "any order",
        "result = df['revenue'] > 1e9",
        "result = bool((df['revenue'] > 1e9).any())",
    )
    a = session.ask("Is there any order above a billion?")
    assert a.error is None and a.value is False and len(a.attempts) == 2
    assert "yes or no" in (a.attempts[0].error or "")
    sent = llm.requests[-1]["messages"]
    assert sent[1]["content"].endswith("\n`result` must be one True/False, computed from df.")
    assert sent[-1]["content"].startswith("That code ran, but its result does not fit")


def test_empty_result_feedback_names_real_values(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    llm.on(
        "europa",
        "result = df[df['region'] == 'Europa']['revenue'].mean()",
        "result = df[df['region'] == 'Europe']['revenue'].mean()",
    )
    a = session.ask("What is the average revenue in Europa?")
    assert a.error is None and a.value > 0 and len(a.attempts) == 2
    first = a.attempts[0].error or ""
    assert 'Column "region" has no value "Europa"' in first and '"Europe"' in first


def test_a_failed_recheck_keeps_the_first_result(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    llm.on(
        "which region",
        "result = df.groupby('region')['revenue'].sum().max()",
        "result = not_defined",
        "result = still_not_defined",
    )
    a = session.ask("Which region sold the most?")
    expected = truth().groupby("region")["revenue"].sum().max()
    assert a.error is None and a.value == pytest.approx(expected)
    assert a.code == "result = df.groupby('region')['revenue'].sum().max()"
    assert [at.error is not None for at in a.attempts] == [True, True, True]
    # an empty retry does not replace a real answer either
    llm.on("top 3 regions", "result = ['Europe']", "result = []")
    b = session.ask("List the top 3 regions by revenue")
    assert b.value == ["Europe"] and len(b.attempts) == 2
    # switched off: no hint, no second attempt
    session.settings.result_checks = False
    c = session.ask("Which region sold the most?")
    assert len(c.attempts) == 1 and "must be" not in llm.requests[-1]["messages"][-1]["content"]


def test_a_recheck_builds_on_the_same_prev(
    session: dataask.Session, sales: dataask.Dataset, llm: ScriptedLLM
) -> None:
    llm.on("revenue by region", "result = df.groupby('region', as_index=False)['revenue'].sum()")
    llm.on(
        "plot that",
        "fig = px.bar(prev, x='region', y='revenue')\nresult = print(fig)",
        "result = px.bar(prev, x='region', y='revenue')",
    )
    session.ask("revenue by region")
    a = session.ask("plot that")
    assert a.error is None and a.kind == "figure" and len(a.attempts) == 2
    # a kept first result becomes `prev` for the next question
    llm.on("top 2 regions", "result = ['Europe', 'Asia Pacific']", "result = []")
    llm.on("how many", "result = len(prev)")
    session.ask("List the top 2 regions by revenue")
    assert session.ask("how many are there").value == 2
