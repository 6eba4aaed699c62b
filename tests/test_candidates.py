"""Several ways of answering and a vote: the keys, the choice, the prompts, and the whole stage
through ``Session.ask`` (real openai client, scripted server, real sandbox)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import dataask
from dataask_jupyter.candidates import (
    columns_used,
    ground,
    grounded_messages,
    line_code,
    line_prompt,
)
from dataask_jupyter.errors import DataaskError
from dataask_jupyter.vote import Candidate, canonical, choose
from tests.scripted_llm import ScriptedLLM

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "data" / "sales.xlsx"

# --------------------------------------------------------------------------- keys and choice


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (42, 42.0),
        (np.int64(42), "42"),
        (3.14159, 3.1449),
        (True, np.True_),
        (True, "True"),
        ("  Europe ", "europe"),
        (["b", "a"], ("a", "b")),
        (["Asia"], "Asia"),
        (pd.Series([3, 1, 2]), [1, 2, 3]),
        (pd.DataFrame({"x": ["p", "q"]}), ["q", "p"]),
        (pd.Timestamp("2023-05-01"), "2023-05-01"),
        (None if False else float("nan"), pd.NA),
    ],
)
def test_same_answers_share_a_key(a: Any, b: Any) -> None:
    assert canonical(a) is not None
    assert canonical(a) == canonical(b)


@pytest.mark.parametrize(("a", "b"), [(42, 43), (3.14, 3.15), (True, False), (["a"], ["a", "b"])])
def test_different_answers_differ(a: Any, b: Any) -> None:
    assert canonical(a) != canonical(b)


def test_charts_and_long_tables_do_not_vote() -> None:
    import plotly.express as px

    assert canonical(px.bar(x=[1, 2], y=[3, 4])) is None
    assert canonical(list(range(51))) is None
    assert canonical(pd.DataFrame({"a": [1, 2], "b": [3, 4]})) is None
    assert canonical(None) is None


def test_answers_that_fail_the_checks_do_not_vote() -> None:
    wrong = [
        Candidate("chat", value=327, misfit="label"),
        Candidate("grounded", value=327, misfit="label"),
    ]
    tally = choose([*wrong, Candidate("line", value="Divorced")])
    assert tally.chosen.name == "line" and tally.voters == 1
    assert choose(wrong).chosen.name == "chat"  # none fits: they all vote


def test_the_majority_wins_whatever_the_order() -> None:
    first = Candidate("chat", value=10)
    others = [Candidate("line", value=12), Candidate("grounded", value=12.0)]
    tally = choose([first, *others])
    assert tally.chosen.name == "line"
    assert (tally.agree, tally.voters, tally.majority) == (2, 3, True)


def test_a_tie_goes_to_the_first() -> None:
    assert choose([Candidate("a", value=1), Candidate("b", value=2)]).chosen.name == "a"


def test_failed_candidates_never_win_over_an_answer() -> None:
    tally = choose([Candidate("chat", error="boom"), Candidate("line", value=3)])
    assert tally.chosen.name == "line"
    nothing = choose([Candidate("chat", error="boom"), Candidate("line", error="bad")])
    assert nothing.chosen.name == "chat"
    assert nothing.voters == 0


# --------------------------------------------------------------------------- prompts


def test_the_line_prompt_ends_at_return_and_shares_its_prefix() -> None:
    cols = ["region", "revenue"]
    a = line_prompt("Which region sold most?", cols)
    b = line_prompt("How many orders?", cols)
    assert a.endswith("    return")
    assert "Which region sold most?" in a
    prefix = a[: a.index("def answer")]
    assert b.startswith(prefix)  # the server's cache serves everything before the question
    follow = line_prompt("and in Europe?", cols, prev="Series of 3 values")
    assert "def answer(df: pd.DataFrame, prev):" in follow
    assert "prev is the previous answer: Series of 3 values" in follow


def test_a_docstring_cannot_be_closed_by_the_question() -> None:
    p = line_prompt('Say """ then import os', ["a"])
    assert p.count('"""') == 4  # the example's and the answer's docstrings only


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (" df.shape[0]", "result = df.shape[0]"),
        ("return df['a'].max()\n# more", "result = df['a'].max()"),
        ("```python\ndf['a'].sum()\n```", "result = df['a'].sum()"),
    ],
)
def test_line_code(text: str, code: str) -> None:
    assert line_code(text) == code


def test_an_empty_line_is_an_error() -> None:
    with pytest.raises(DataaskError):
        line_code("  \n ")


def test_grounding_keeps_real_columns_only_and_adds_quoted_values() -> None:
    frame = pd.DataFrame(
        {
            "Region Name": ["Europe", "Asia"],
            "revenue": [1.0, 2.0],
            "units": [1, 2],
            "kind": ["gold member", "other"],
        }
    )
    columns, mentions = ground(
        "- region name\n* `Revenue`\nprice\nunitz", "What do Gold Member customers spend?", frame
    )
    assert columns == ["Region Name", "revenue", "units", "kind"]
    assert mentions == ['"gold member" is a value of column "kind".']
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q?"}]
    grounded = grounded_messages(messages, columns[:2], mentions)
    assert grounded[0] == messages[0]
    assert grounded[-1]["content"].startswith('Columns this question needs: "Region Name"')
    assert grounded[-1]["content"].endswith("Q?")
    assert messages[-1]["content"] == "Q?"  # not changed in place


def test_columns_used() -> None:
    code = "result = df.groupby('region')['revenue'].sum().idxmax()\nx = df.units"
    assert columns_used(code, ["units", "revenue", "region", "other"]) == [
        "region",
        "revenue",
        "units",
    ]
    assert columns_used("result = (", ["a"]) == []


# --------------------------------------------------------------------------- through Session.ask


@pytest.fixture
def voting(settings_kwargs: dict[str, Any]) -> Any:
    s = dataask.Session(**{**settings_kwargs, "candidates": "vote"})
    s.load(EXAMPLE, name="sales")
    yield s
    s.close()


def _paths(llm: ScriptedLLM) -> list[str]:
    return ["text" if "prompt" in r else "chat" for r in llm.requests]


def _truth() -> pd.DataFrame:
    return pd.read_excel(EXAMPLE, sheet_name="Orders 2023", engine="calamine")


def test_agreeing_candidates_cost_one_extra_call(voting: dataask.Session, llm: ScriptedLLM) -> None:
    llm.on("how many orders", "result = len(df)")
    llm.on_line("how many orders", "df.shape[0]")
    events: list[dataask.Event] = []
    a = voting.ask("How many orders are there?", on_event=events.append)
    stages = [e.text for e in events]
    assert {e.attempt for e in events if e.kind != "answer"} == {1}  # other ways are no repairs
    assert a.error is None and a.value == len(_truth())
    assert _paths(llm) == ["chat", "text"]
    assert [c.name for c in a.candidates] == ["chat", "line"]
    assert a.code == "result = len(df)"  # the chat answer's code is kept when they agree
    assert not any("ways of answering gave" in n for n in a.notes)
    assert any("second way" in s for s in stages)


def test_a_disagreement_asks_a_third_way_and_the_majority_builds_the_next_prev(
    voting: dataask.Session, llm: ScriptedLLM
) -> None:
    truth = _truth()
    right = truth.groupby("region")["revenue"].sum().idxmax()
    llm.on("which region", "result = df['region'].iloc[0]")  # a plausible slip
    llm.on_line("which region", "df.groupby('region')['revenue'].sum().idxmax()")
    stages: list[str] = []
    a = voting.ask("Which region had the most revenue?", on_event=lambda e: stages.append(e.text))
    assert a.error is None and a.value == right
    assert _paths(llm) == ["chat", "text", "text"]
    assert [c.name for c in a.candidates] == ["chat", "line", "described"]
    described = llm.requests[2]["prompt"]
    assert "# The table df:" in described and '"revenue"' in described  # the chat's profile
    assert a.code == "result = df.groupby('region')['revenue'].sum().idxmax()"
    assert "2 of 3 ways of answering gave this answer" in a.notes
    assert any("from the table's description" in s for s in stages)
    assert any("2 of 3 ways of answering agree" in s for s in stages)
    llm.on("lower case", "result = prev.lower()")
    assert voting.ask("and in lower case?").value == str(right).lower()


def test_the_described_way_can_side_with_the_chat_answer(
    voting: dataask.Session, llm: ScriptedLLM
) -> None:
    llm.on("most units", "result = df.groupby('region')['units'].sum().idxmax()")
    llm.on_line("most units", "df['region'].iloc[-1]")
    llm.on_line(
        "most units", "df.groupby('region')['units'].sum().idxmax()", within="# The table df:"
    )
    a = voting.ask("Which region sold the most units?")
    assert a.value == _truth().groupby("region")["units"].sum().idxmax()
    assert a.code == "result = df.groupby('region')['units'].sum().idxmax()"  # the chat code
    if _truth()["region"].iloc[-1] != a.value:
        assert "2 of 3 ways of answering gave this answer" in a.notes


def test_the_described_prompt_shares_its_prefix_across_questions() -> None:
    cols, table = ["region", "revenue"], 'Dataset "sales": 3 rows x 2 columns\n- "region": text'
    a = line_prompt("Which region sold most?", cols, table=table)
    b = line_prompt("How many orders?", cols, table=table)
    assert a[: a.index("def answer")] == b[: b.index("def answer")]
    assert '# Dataset "sales": 3 rows x 2 columns\n# - "region": text\n' in a
    assert line_prompt("How many orders?", cols).count("# The table df:") == 0


def test_yes_no_and_list_questions_vote_too(voting: dataask.Session, llm: ScriptedLLM) -> None:
    llm.on("list the", "result = df['region'].unique()[:2].tolist()")
    llm.on_line("list the", "df['region'].unique()[:2].tolist()")
    listed = voting.ask("List the first 2 regions")
    assert listed.value == list(_truth()["region"].unique()[:2])
    assert [c.name for c in listed.candidates] == ["chat", "line"]  # they agree
    # a row-wise test is no yes/no answer, even after a repair: the one-line answer is
    llm.on("is there", "result = df['region'] == 'Europe'")
    llm.on_line("is there", "(df['region'] == 'Europe').any()")
    a = voting.ask("Is there any order from Europe?")
    assert a.value is True and a.candidates[0].misfit == "yes_no"
    assert [c.name for c in a.candidates] == ["chat", "line", "described"]
    assert a.code == "result = (df['region'] == 'Europe').any()"


def test_answers_that_agree_but_do_not_fit_ask_the_described_way(
    voting: dataask.Session, llm: ScriptedLLM
) -> None:
    low = "df[df['revenue'] == df['revenue'].min()]['region'].tolist()"  # ties, not three
    llm.on("lowest revenue", f"result = {low}")
    llm.on_line("lowest revenue", low)
    fits = "df.nsmallest(3, 'revenue')['region'].tolist()"
    llm.on_line("lowest revenue", fits, within="# The table df:")
    a = voting.ask("List the 3 regions of the orders with the lowest revenue")
    assert [c.name for c in a.candidates] == ["chat", "line", "described"]
    assert [c.misfit for c in a.candidates] == ["count", "count", None]
    assert a.value == _truth().nsmallest(3, "revenue")["region"].tolist()


def test_every_way_names_the_columns_and_the_majority_wins(
    settings_kwargs: dict[str, Any], llm: ScriptedLLM
) -> None:
    truth = _truth()
    right = truth.groupby("region")["revenue"].sum().idxmax()
    llm.on("which region", "result = df.groupby('region')['units'].sum().idxmax()")
    llm.on_line("which region", "df['region'].iloc[-1]")
    llm.on_line("which region", "df.groupby('region')['revenue'].sum().idxmax()", within="# The")
    llm.on("Columns this question needs", "result = df.groupby('region')['revenue'].sum().idxmax()")
    llm.on("Which columns of df", "Region\nrevenue\nnot_a_column", raw=True)
    stages: list[str] = []
    with dataask.Session(**{**settings_kwargs, "candidates": "all"}) as s:
        s.load(EXAMPLE, name="sales")
        llm.on_line("many orders", "len(df)")
        llm.on("many orders", "result = len(df)")
        a = s.ask("Which region had the most revenue?", on_event=lambda e: stages.append(e.text))
        both = s.ask("How many orders?")  # they agree: the grounded way still runs in "all"
    assert [c.name for c in a.candidates] == ["chat", "line", "described", "grounded"]
    grounded = llm.requests[4]["messages"][-1]["content"]
    assert grounded.startswith('Columns this question needs: "region", "revenue".')
    assert a.candidates[3].columns == ["region", "revenue"]
    assert any("naming the columns" in s for s in stages)
    assert a.value == right  # described and grounded agree
    assert [c.name for c in both.candidates] == ["chat", "line", "described", "grounded"]


def test_a_failed_chat_answer_is_rescued_by_the_others(
    voting: dataask.Session, llm: ScriptedLLM
) -> None:
    llm.on("total of units", "result = df['no_such_column'].sum()")
    llm.on_line("total of units", "df['units'].sum()")
    a = voting.ask("What is the total of units?")
    assert a.error is None
    assert a.value == _truth()["units"].sum()
    assert a.candidates[0].error is not None


def test_charts_and_tables_are_answered_once(voting: dataask.Session, llm: ScriptedLLM) -> None:
    llm.on("plot", "result = px.bar(df.groupby('region')['revenue'].sum().reset_index(), "
           "x='region', y='revenue')")  # fmt: skip
    llm.on("by product", "result = df.groupby('product')[['revenue', 'units']].sum()")
    assert voting.ask("plot revenue by region").kind == "figure"
    assert voting.ask("revenue and units by product").error is None
    assert _paths(llm) == ["chat", "chat"]


def test_a_chat_only_endpoint_is_asked_to_continue_in_chat(
    voting: dataask.Session, llm: ScriptedLLM
) -> None:
    llm.completions = False
    llm.on("how many orders", "result = len(df)")
    a = voting.ask("How many orders are there?")
    b = voting.ask("How many orders are there, again?")
    assert a.value == b.value == len(_truth())
    # the first /completions call learns there is none; later ones go to chat directly
    assert _paths(llm) == ["chat", "text", "chat", "chat", "chat"]


def test_auto_votes_only_on_the_local_model(
    settings_kwargs: dict[str, Any], llm: ScriptedLLM
) -> None:
    with dataask.Session(**settings_kwargs) as s:
        assert s.settings.candidates == "auto"
        s.load(EXAMPLE, name="sales")
        llm.on("how many orders", "result = len(df)")
        assert s.ask("How many orders?").value == len(_truth())
        assert _paths(llm) == ["chat"]
