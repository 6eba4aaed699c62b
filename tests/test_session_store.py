"""A session with a store: the conversation and the datasets come back after a restart."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dataask_jupyter import Session
from dataask_jupyter.errors import DatasetNotFoundError, FileTooLargeError
from dataask_jupyter.store import ConversationStore
from tests.test_ask_loop import FakeLLM, FakeRunner, ok


def _csv(path: Path, rows: int = 3) -> Path:
    pd.DataFrame(
        {"region": ["EU", "US", "EU", "US"][:rows], "revenue": [1, 2, 3, 4][:rows]}
    ).to_csv(path, index=False)
    return path


def _session(tmp_path: Path, replies: list[str], outcomes: dict[str, Any], **kw: Any) -> Session:
    store = ConversationStore(tmp_path / "state", "nb:test.ipynb")
    return Session(llm=FakeLLM(*replies), runner=FakeRunner(outcomes), store=store, **kw)


def test_history_and_datasets_come_back_and_reload_lazily(tmp_path: Path) -> None:
    data = _csv(tmp_path / "sales.csv")
    s = _session(tmp_path, ["result = len(df)"], {"result = len(df)": ok(3)})
    s.load(data, name="sales")
    assert s.ask("How many rows?").value == 3
    s.close()

    notes: list[str] = []
    runner = FakeRunner({"result = df.revenue.sum()": ok(6)})
    again = Session(
        llm=FakeLLM("result = df.revenue.sum()"),
        runner=runner,
        store=ConversationStore(tmp_path / "state", "nb:test.ipynb"),
        notify=notes.append,
    )
    assert [a.question for a in again.history] == ["How many rows?"]
    assert again.history[0].value == 3 and again.history[0].code == "result = len(df)"
    assert "sales" in again.pending and not again.datasets and not runner.frames  # lazily
    a = again.ask("Total revenue?")
    assert a.value == 6 and a.number == 2
    assert "sales" in again.datasets and "sales" in runner.frames
    assert again.datasets["sales"].notes[0].startswith("reloaded from")
    assert runner.prev_history[0] == 3  # the last answer is `prev` again


def test_a_changed_file_is_reloaded_and_noted_a_missing_one_named(tmp_path: Path) -> None:
    data = _csv(tmp_path / "sales.csv")
    s = _session(tmp_path, [], {})
    s.load(data, name="sales")
    s.close()
    _csv(data, rows=4)
    os.utime(data, (1, 1))
    s2 = _session(tmp_path, ["result = len(df)"], {"result = len(df)": ok(4)})
    assert s2.ask("How many rows?").value == 4
    assert "changed since it was loaded" in s2.datasets["sales"].notes[0]
    assert s2.datasets["sales"].shape == (4, 2)
    s2.close()
    data.unlink()
    s3 = _session(tmp_path, [], {})
    with pytest.raises(DatasetNotFoundError, match=r"sales\.csv no longer exists"):
        s3.ask("How many rows?")
    assert s3.history  # the conversation is still there


def test_reset_starts_a_new_stored_conversation_and_forget_deletes_it(tmp_path: Path) -> None:
    data = _csv(tmp_path / "sales.csv")
    s = _session(tmp_path, ["result = len(df)"] * 2, {"result = len(df)": ok(3)})
    s.load(data, name="sales")
    s.ask("one?")
    s.reset()
    s.ask("two?")
    s.close()
    s2 = _session(tmp_path, [], {})
    assert [a.question for a in s2.history] == ["two?"]
    s2.forget()
    s2.close()
    s3 = _session(tmp_path, [], {})
    assert s3.history == [] and s3.pending == {}


def test_uploads_are_kept_and_capped(tmp_path: Path) -> None:
    data = _csv(tmp_path / "orig.csv").read_bytes()
    s = _session(tmp_path, [], {}, max_upload_bytes=10_000)
    ds = s.upload("orders.csv", data)
    assert ds.name == "orders" and ds.shape == (3, 2)
    assert Path(ds.source).read_bytes() == data and str(tmp_path / "state") in ds.source
    with pytest.raises(FileTooLargeError, match=r"Ask\.max_upload_bytes"):
        s.upload("big.csv", b"x" * 20_000)
    assert list(s.datasets) == ["orders"]
    s.close()
    s2 = _session(tmp_path, ["result = len(df)"], {"result = len(df)": ok(3)})
    assert s2.ask("rows?").value == 3  # reloaded from the kept upload


def test_without_a_store_uploads_go_to_a_private_folder(tmp_path: Path) -> None:
    s = Session(llm=FakeLLM(), runner=FakeRunner({}))
    ds = s.upload("orders.csv", _csv(tmp_path / "o.csv").read_bytes(), name="o")
    assert ds.name == "o" and Path(ds.source).exists() and "dataask-upload-" in ds.source


def test_export_the_conversation_as_code(tmp_path: Path) -> None:
    data = _csv(tmp_path / "sales.csv")
    s = _session(tmp_path, ["result = len(df)"], {"result = len(df)": ok(3)})
    s.load(data, name="sales")
    s.ask("How many rows?")
    script = s.export(tmp_path / "analysis.py").read_text()
    assert "How many rows?" in script and "result = len(df)" in script
    assert "read_csv" in script and "import dataask" not in script
    nb = s.export(tmp_path / "analysis.ipynb")
    assert nb.suffix == ".ipynb" and "result = len(df)" in nb.read_text()
