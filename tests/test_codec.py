"""The result codec shared by the sandbox (encode) and the kernel (decode), and the Period charts
it used to break: ``dt.to_period("M")`` gave tables the kernel refused and figures plotly could
not serialise."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import pytest

import dataask
from dataask_jupyter import results
from dataask_jupyter.errors import SandboxError
from dataask_sandbox import codec
from tests.scripted_llm import ScriptedLLM

MB = 1_000_000


def roundtrip(value: Any) -> Any:
    header, payload = codec.encode_result(value, max_bytes=10 * MB)
    return results.decode(header, payload)


def visits() -> pd.DataFrame:
    days = pd.date_range("2024-01-01", "2024-06-30", freq="D")
    return pd.DataFrame({"date": days, "visits": np.arange(len(days)) % 7 + 1})


def test_unique_names_numbers_repeats_and_avoids_taken_names() -> None:
    assert codec.unique_names(["a", "a", "b", "a"]) == ["a", "a_2", "b", "a_3"]
    assert codec.unique_names(["a", "a_2", "a"]) == ["a", "a_2", "a_3"]
    assert codec.flat_name(("revenue", "sum")) == "revenue / sum"
    assert codec.flat_name(("x", "")) == "x"


def test_period_table_and_series_decode_as_text() -> None:
    df = visits()
    df["m"] = df["date"].dt.to_period("M")
    monthly = df.groupby("m")["visits"].sum()
    s = roundtrip(monthly)
    assert list(s.index) == ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"]
    assert s.index.name == "m" and s.name == "visits"
    assert s.tolist() == monthly.tolist()
    t = roundtrip(df.head(3))
    assert t["m"].tolist() == ["2024-01"] * 3
    assert str(t["date"].dtype).startswith("datetime64")
    q = roundtrip(pd.Series(pd.period_range("2020Q1", periods=2, freq="Q").insert(1, pd.NaT)))
    assert q.tolist()[0] == "2020Q1" and pd.isna(q.tolist()[1])


def test_interval_and_categorical_period_columns() -> None:
    df = visits()
    df["band"] = pd.cut(df["visits"], [0, 3, 7])
    by_band = roundtrip(df.groupby("band", observed=True)["visits"].count())
    assert list(by_band.index) == ["(0, 3]", "(3, 7]"]
    cats = pd.Series(pd.Categorical(df["date"].dt.to_period("M")))
    assert roundtrip(cats).astype(str).tolist()[:1] == ["2024-01"]


def test_period_values_in_json_results() -> None:
    assert roundtrip([pd.Period("2024-01", "M"), pd.Interval(0, 1)]) == ["2024-01", "(0, 1]"]


@pytest.mark.parametrize(
    "make",
    [
        lambda s: px.line(s),
        lambda s: px.line(s.reset_index(), x="m", y="visits"),
        lambda s: px.bar(x=s.index, y=s.values),
    ],
    ids=["series", "frame", "arrays"],
)
def test_period_axis_figure_encodes(make: Any) -> None:
    df = visits()
    df["m"] = df["date"].dt.to_period("M")
    fig = make(df.groupby("m")["visits"].sum())
    with pytest.raises(TypeError):
        fig.to_json()  # what plotly does on its own
    out = roundtrip(fig)
    assert list(out.data[0].x) == ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"]


def test_decoder_refuses_extension_types_and_bad_images() -> None:
    import pyarrow as pa

    # a sandbox that skips the codec and sends pandas' own Arrow period type
    raw = pa.Table.from_pandas(pd.DataFrame({"p": pd.period_range("2024-01", periods=2)}))
    with pytest.raises(SandboxError, match="extension type"):
        results.decode({"kind": "table"}, codec.table_bytes(raw))
    with pytest.raises(SandboxError, match="not a PNG"):
        results.decode({"kind": "image"}, b"GIF89a")
    with pytest.raises(SandboxError, match="unknown kind"):
        results.decode({"kind": "pickle"}, b"")


# --- through Session.ask: the month chart follow-up ---------------------------------------------
@pytest.fixture
def session(settings_kwargs: dict[str, Any]) -> Iterator[dataask.Session]:
    s = dataask.Session(notify=lambda m: None, **settings_kwargs)
    s.load(visits(), name="visits")
    yield s
    s.close()


MONTHLY = "df['month'] = df['date'].dt.to_period('M')\nresult = df.groupby('month')['visits'].sum()"


def test_month_table_then_line_chart_follow_up(session: dataask.Session, llm: ScriptedLLM) -> None:
    llm.on("visits per month", MONTHLY)
    llm.on("plot that as a line chart", "fig = px.line(prev, title='Visits')\nresult = fig")
    a = session.ask("visits per month")
    assert a.ok, a.error
    assert list(a.value.index[:2]) == ["2024-01", "2024-02"] and len(a.value) == 6
    b = session.ask("plot that as a line chart")
    assert b.ok, b.error
    assert b.value.data[0].type == "scatter" and b.value.data[0].mode == "lines"
    assert list(b.value.data[0].x) == list(a.value.index)
    assert len(b.attempts) == 1


def test_chart_straight_from_a_period_groupby(session: dataask.Session, llm: ScriptedLLM) -> None:
    llm.on(
        "chart visits by month",
        MONTHLY.replace("result = ", "monthly = ")
        + "\nresult = px.line(monthly.reset_index(), x='month', y='visits')",
    )
    a = session.ask("chart visits by month")
    assert a.ok, a.error
    assert len(a.attempts) == 1
    assert list(a.value.data[0].x)[:2] == ["2024-01", "2024-02"]
    assert a.export(session_tmp(a)).stat().st_size > 0


def session_tmp(a: dataask.Answer) -> Any:
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="dataask-codec-")) / "chart.json"


def test_a_date_answer_is_a_date_again_as_prev(llm: Any, settings_kwargs: dict[str, Any]) -> None:
    """``prev`` reaches the next run decoded by the shared codec (tagged dates restored)."""
    import dataask

    llm.on("latest day", "result = df['day'].max()")
    llm.on("what type", "result = type(prev).__name__")
    with dataask.Session(**settings_kwargs) as s:
        s.load(pd.DataFrame({"day": pd.to_datetime(["2024-01-02", "2024-03-04"])}), name="d")
        assert s.ask("What is the latest day?").ok
        kind = s.ask("And what type is that value?")
        assert kind.value == "Timestamp", kind
