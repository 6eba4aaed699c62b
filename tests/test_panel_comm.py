"""The side panel's comm in a real kernel: hello, upload, ask with progress, pages, charts,
exports, questions from cells, cancel, and a kernel without dataask (the comm is refused).

The kernel is a real ipykernel over ZMQ; answers come from the scripted LLM on loopback.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dataask_jupyter.uploads import ACCEPT
from tests.panel_kernel import PanelClient, kernel, run
from tests.scripted_llm import ScriptedLLM

pytestmark = pytest.mark.timeout(300)

SALES = Path(__file__).resolve().parents[1] / "examples" / "data" / "sales.xlsx"


@pytest.fixture(scope="module")
def kc(llm_server: ScriptedLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pytest.importorskip("ipykernel")
    env = {
        "DATAASK_LLM_BASE_URL": llm_server.url,
        "DATAASK_LLM_API_KEY": "scripted-not-secret",
        "DATAASK_LLM_MODEL": "scripted",
        "DATAASK_SANDBOX": os.environ.get("DATAASK_TEST_SANDBOX", "local"),
        "DATAASK_STATE_DIR": str(tmp_path_factory.mktemp("state")),
    }
    with kernel(env, str(tmp_path_factory.mktemp("cwd"))) as client:
        yield client


def test_without_dataask_the_comm_is_refused(kc: Any) -> None:
    assert PanelClient(kc).open() is None


@pytest.fixture(scope="module")
def panel(kc: Any) -> PanelClient:
    run(kc, "%load_ext dataask")
    client = PanelClient(kc)
    hello = client.open()
    assert hello is not None and hello["ok"]
    assert hello["state"]["datasets"] == [] and hello["turns"] == []
    assert hello["state"]["upload"]["accept"] == list(ACCEPT)  # as %ask upload
    return client


def _upload(panel: PanelClient, name: str, data: bytes, chunk: int = 1 << 20) -> dict[str, Any]:
    begin = panel.request("upload-begin", name=name, size=len(data))
    if not begin["ok"]:
        return begin
    for offset in range(0, len(data), chunk):
        got = panel.request(
            "upload-chunk",
            buffers=[data[offset : offset + chunk]],
            upload=begin["upload"],
            offset=offset,
        )
        assert got["ok"], got
    return panel.request("upload-end", upload=begin["upload"])


def test_upload_loads_through_the_session_and_bad_files_leave_the_rest(panel: PanelClient) -> None:
    got = _upload(panel, "sales.xlsx", SALES.read_bytes(), chunk=50_000)  # several chunks
    assert got["ok"], got
    ds = got["dataset"]
    assert (ds["name"], ds["rows"], ds["columns"], ds["active"]) == ("sales", 4000, 11, True)
    assert "Products" in ds["sheets"]

    broken = _upload(panel, "broken.csv", b"%PDF-1.7 not a table at all")
    assert not broken["ok"] and "broken.csv looks like a PDF document" in broken["error"]
    assert "dataask-panel-" not in broken["error"]  # the user's file name, not our temp path
    refused = panel.request("upload-begin", name="notes.txt", size=10)
    assert (
        not refused["ok"]
        and "only .csv, .tsv, .xlsx, .xlsm, .xlsb, .xls, .ods, .parquet files" in refused["error"]
    )

    latest = [m for m in panel.pushes if m["type"] == "state"][-1]["state"]
    assert [d["name"] for d in latest["datasets"]] == ["sales"]

    # the sheet picker reloads the dataset from another sheet, then back
    other = panel.request("sheet", name="sales", sheet="Products")
    assert other["ok"] and other["dataset"]["rows"] == 10
    back = panel.request("sheet", name="sales", sheet=ds["sheet"])
    assert back["ok"] and back["dataset"]["rows"] == 4000


def test_upload_cap_is_the_sessions(kc: Any, panel: PanelClient) -> None:
    run(kc, "%config Ask.max_upload_bytes = 1000")
    try:
        refused = panel.request("upload-begin", name="big.csv", size=5000)
        assert not refused["ok"] and "over the 1,000 bytes upload cap" in refused["error"]
    finally:
        run(kc, "%config Ask.max_upload_bytes = 268435456")


def test_ask_streams_progress_then_the_turn(llm_server: ScriptedLLM, panel: PanelClient) -> None:
    llm_server.on(
        "revenue by region",
        "result = df.groupby('region')['revenue'].sum().sort_values(ascending=False)",
    )
    start = len(panel.pushes)
    reply = panel.request("ask", question="What is the revenue by region?")
    assert reply["ok"]
    ask = reply["ask"]
    done = panel.wait_push(lambda m: m["type"] == "ask-done" and m["ask"] == ask)
    events = [m for m in panel.pushes[start:] if m["type"] == "event" and m["ask"] == ask]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "stage" and "code" in kinds and kinds[-1] == "answer"
    assert any(e["kind"] == "token" for e in events)  # the reply as it streams
    turn = next(m["turn"] for m in panel.pushes[start:] if m["type"] == "turn")
    assert turn["number"] == done["number"] and turn["ok"]
    assert "groupby('region')" in turn["code"]
    value = turn["value"]
    assert value["type"] == "tables" and value["chartable"]
    page = value["tables"][0]["page"]
    assert [c["label"] for c in page["columns"]] == ["region", "revenue"]
    assert page["total_rows"] == 4

    # sort by the region, descending; and the chart
    sorted_page = panel.request(
        "page", turn=turn["number"], page=0, page_size=2, sort_by="region", ascending=False
    )["page"]
    assert [r[0] for r in sorted_page["rows"]] == sorted([r[0] for r in page["rows"]])[::-1][:2]
    assert sorted_page["pages"] == 2
    figure = panel.request("chart", turn=turn["number"])["figure"]
    assert figure["data"][0]["type"] == "bar" and len(figure["data"][0]["x"]) == 4


def test_export_downloads_the_answers_file(panel: PanelClient) -> None:
    number = panel.request("hello")["turns"][-1]["number"]
    got = panel.request("export", turn=number, format="csv")
    assert got["ok"] and got["name"].endswith(".csv") and got["mime"] == "text/csv"
    frame = pd.read_csv(io.BytesIO(got["buffers"][0]))
    assert list(frame.columns) == ["region", "revenue"] and len(frame) == 4
    xlsx = panel.request("export", turn=number, format="xlsx")
    assert xlsx["buffers"][0][:2] == b"PK"
    bad = panel.request("export", turn=number, format="pdf")
    assert not bad["ok"] and "csv, json, xlsx, png" in bad["error"]


def test_a_question_asked_in_a_cell_reaches_the_panel(
    kc: Any, llm_server: ScriptedLLM, panel: PanelClient
) -> None:
    llm_server.on("how many orders", "result = len(df)")
    start = len(panel.pushes)
    run(kc, "%%ask\nHow many orders are there?")
    pushed = panel.wait_push(
        lambda m: m["type"] == "turn" and m["turn"]["question"] == "How many orders are there?",
        since=start,
    )
    assert pushed["turn"]["value"] == {"type": "headline", "text": "4,000", "noun": "a number"}
    # a fresh panel (a page reload) gets the whole conversation
    again = PanelClient(kc).open()
    assert again is not None
    assert [t["question"] for t in again["turns"]][-2:] == [
        "What is the revenue by region?",
        "How many orders are there?",
    ]


def test_stop_cancels_the_question(llm_server: ScriptedLLM, panel: PanelClient) -> None:
    llm_server.on("slow question", "result = 1")
    llm_server.delay(20)
    ask = panel.request("ask", question="A slow question?")["ask"]
    panel.wait_push(lambda m: m["type"] == "event" and m["ask"] == ask)
    assert panel.request("cancel")["ok"]
    done = panel.wait_push(lambda m: m["type"] == "ask-done" and m["ask"] == ask, timeout=15)
    turn = panel.wait_push(lambda m: m["type"] == "turn" and m["turn"]["number"] == done["number"])[
        "turn"
    ]
    assert turn["cancelled"] and not turn["ok"]


def test_reset_in_a_cell_clears_the_panels_turns(kc: Any, panel: PanelClient) -> None:
    start = len(panel.pushes)
    run(kc, "%ask reset")
    state = panel.wait_push(lambda m: m["type"] == "state" and not m["state"]["turns"], since=start)
    assert state["state"]["datasets"][0]["name"] == "sales"
