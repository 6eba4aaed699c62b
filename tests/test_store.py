"""The conversation store: SQLite on disk, real processes killed mid-write, a real full disk."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from dataask_jupyter.errors import DataaskError, DatasetNotFoundError
from dataask_jupyter.notebook_key import notebook_key
from dataask_jupyter.results import PngImage
from dataask_jupyter.store import (
    DB_NAME,
    KEEP_CONVERSATIONS,
    TABLE_MAX_ROWS,
    ConversationStore,
    DatasetRecord,
    StoreError,
    TurnRecord,
    default_state_dir,
    fingerprint,
    source_state,
)

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConversationStore]:
    s = ConversationStore(tmp_path / "state", "notebook:/work/a.ipynb")
    yield s
    s.close()


def turn(n: int, value: object = None, **kw: object) -> TurnRecord:
    return TurnRecord(number=n, question=f"question {n}", dataset="sales", value=value, **kw)  # type: ignore[arg-type]


# --- values -------------------------------------------------------------------------------


def test_values_round_trip_without_pickle(store: ConversationStore) -> None:
    frame = pd.DataFrame(
        {
            "region": ["EU", "US"],
            "revenue": [1.5, np.nan],
            "day": pd.to_datetime(["2024-01-02"] * 2),
        },
        index=pd.Index(["a", "b"], name="key"),
    )
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]), layout={"title": {"text": "t"}})
    values: list[object] = [
        frame,
        frame["revenue"],
        42,
        np.int64(7),
        2.5,
        float("inf"),
        "text",
        [1, "two", None],
        (1, 2),
        {"when": pd.Timestamp("2024-03-01 10:00"), "day": dt.date(2024, 3, 1), "n": 3},
        None,
        True,
        fig,
        PngImage(PNG),
    ]
    for i, v in enumerate(values, 1):
        store.add_turn(turn(i, v, summary=f"value {i}"))
    store.close()
    back = ConversationStore(store.dir, store.key).turns()
    assert [t.number for t in back] == list(range(1, len(values) + 1))
    assert all(t.kept for t in back)
    pd.testing.assert_frame_equal(back[0].value, frame)
    pd.testing.assert_series_equal(back[1].value, frame["revenue"])
    assert back[2].value == 42 and back[3].value == 7 and back[4].value == 2.5
    assert back[5].value == float("inf")
    assert back[6].value == "text" and back[7].value == [1, "two", None]
    assert back[8].value == (1, 2)
    assert back[9].value == {
        "when": pd.Timestamp("2024-03-01 10:00"),
        "day": dt.date(2024, 3, 1),
        "n": 3,
    }
    assert back[10].value is None and back[11].value is True
    assert back[12].value.data == fig.data and back[12].value.layout.title.text == "t"
    assert back[13].value == PngImage(PNG)
    assert back[0].summary == "value 1" and back[0].question == "question 1"


def test_large_or_foreign_values_keep_only_the_summary(store: ConversationStore) -> None:
    big = pd.DataFrame({"x": np.arange(TABLE_MAX_ROWS + 1)})
    store.add_turn(turn(1, big, summary="DataFrame 100,001 rows"))
    store.add_turn(turn(2, {1, 2, 3}, summary="set: {1, 2, 3}"))
    store.add_turn(turn(3, object(), summary="object"))
    store.add_turn(turn(4, pd.DataFrame({1: [1], 2: [2]}), summary="int-named columns"))
    back = store.turns()
    assert [t.kept for t in back[:3]] == [False, False, False]
    assert [t.value for t in back[:3]] == [None, None, None]
    assert back[0].summary == "DataFrame 100,001 rows"
    if back[3].kept:  # pyarrow may write int column names as text; then they come back
        assert back[3].value.shape == (1, 2)


def test_turn_fields_and_values_flag(store: ConversationStore) -> None:
    store.add_turn(
        turn(
            1,
            None,
            code="result = 1/0",
            kind="none",
            summary="error: division by zero",
            error="ZeroDivisionError: division by zero",
            cancelled=False,
            seconds=1.25,
            notes=["a note"],
            stdout="printed",
        )
    )
    store.add_turn(turn(2, 5, cancelled=True, error="cancelled"))
    first, second = store.turns()
    assert first.error == "ZeroDivisionError: division by zero" and first.code == "result = 1/0"
    assert first.seconds == 1.25 and first.notes == ["a note"] and first.stdout == "printed"
    assert second.cancelled and second.error == "cancelled"
    light = store.turns(values=False)
    assert light[1].kept and light[1].value is None
    assert store.value(2) == 5 and store.value(99) is None
    assert [t.number for t in store.turns(limit=1)] == [2]


def test_from_answer_and_dataset_records(tmp_path: Path) -> None:
    class FakeAnswer:  # the attributes Session.Answer has
        number, question, dataset, code, kind = 3, "q", "d", "result = 1", "json"
        value, error, seconds, notes, stdout, summary = 1, None, 0.5, ["n"], "", "int: 1"

    rec = TurnRecord.from_answer(FakeAnswer())
    assert (rec.number, rec.value, rec.summary, rec.cancelled) == (3, 1, "int: 1", False)

    path = tmp_path / "t.csv"
    path.write_text("a;b\n1;2\n")

    class FakeDataset:
        name, source, format, sheet = "t", str(path), "csv", None
        encoding, delimiter, columns, notes = "utf-8", ";", ["a", "b"], []
        dtypes = {"a": "int64", "b": "int64"}

    ds = DatasetRecord.from_dataset(FakeDataset(), active=True, header_row=2)
    assert ds.source == str(path.resolve()) and ds.delimiter == ";" and ds.header_row == 2
    assert ds.fingerprint == fingerprint(path)
    assert DatasetRecord.from_json(ds.to_json()) == ds


# --- conversations, datasets, uploads -----------------------------------------------------


def test_survives_reopen_and_keys_are_separate(store: ConversationStore) -> None:
    store.add_turn(turn(1, 10))
    other = ConversationStore(store.dir, "notebook:/work/b.ipynb")
    other.add_turn(turn(1, 20))
    other.close()
    store.close()
    again = ConversationStore(store.dir, store.key)
    assert [t.value for t in again.turns()] == [10]
    assert [t.value for t in ConversationStore(store.dir, "notebook:/work/b.ipynb").turns()] == [20]
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_new_conversation_keeps_datasets_and_prunes_old_ones(
    store: ConversationStore, tmp_path: Path
) -> None:
    store.put_dataset(DatasetRecord(name="sales", source="/x.csv", format="csv", active=True))
    for k in range(KEEP_CONVERSATIONS + 3):
        store.add_turn(turn(1, k))
        store.new_conversation()
        assert store.turns() == []
    assert [d.name for d in store.datasets()] == ["sales"]
    with sqlite3.connect(store.path) as conn:
        (n,) = conn.execute("SELECT COUNT(*) FROM conversations").fetchone()
        (t,) = conn.execute("SELECT COUNT(*) FROM turns").fetchone()
    assert n == KEEP_CONVERSATIONS and t == KEEP_CONVERSATIONS - 1


def test_dataset_registry(store: ConversationStore) -> None:
    store.put_dataset(DatasetRecord(name="a", source="/a.csv", format="csv", active=True))
    store.put_dataset(
        DatasetRecord(name="b", source="/b.xlsx", format="xlsx", sheet="S", active=True)
    )
    store.put_dataset(DatasetRecord(name="a", source="/a2.csv", format="csv"))  # replaced in place
    recs = store.datasets()
    assert [(d.name, d.source, d.active) for d in recs] == [
        ("a", "/a2.csv", False),
        ("b", "/b.xlsx", True),
    ]
    store.put_dataset(DatasetRecord(name="a", source="/a2.csv", format="csv", active=True))
    assert [d.active for d in store.datasets()] == [True, False]
    store.drop_dataset("a")
    store.drop_dataset("never there")
    assert [d.name for d in store.datasets()] == ["b"]


def test_fingerprint_and_source_state(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(3 << 20))
    rec = DatasetRecord(name="big", source=str(path), format="csv", fingerprint=fingerprint(path))
    assert source_state(rec) == "same"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the last MB is hashed
    path.write_bytes(bytes(data))
    os.utime(path, ns=(rec.fingerprint.mtime_ns, rec.fingerprint.mtime_ns))  # type: ignore[union-attr]
    assert source_state(rec) == "changed"
    path.unlink()
    assert source_state(rec) == "missing"
    assert source_state(DatasetRecord(name="df", source="", format="dataframe")) == "not a file"


def test_records_come_back_as_answers_and_loads(tmp_path: Path) -> None:
    from dataask_jupyter.answer import Answer

    rec = turn(4, [1, 2], code="result = [1, 2]", kind="json", notes=["n"], seconds=0.5)
    answer = Answer(**rec.answer_fields())
    assert (answer.number, answer.value, answer.code, answer.notes) == (4, [1, 2], rec.code, ["n"])
    path = tmp_path / "t.csv"
    path.write_text("a\n1\n")
    ds = DatasetRecord(
        name="t", source=str(path), format="csv", header_row=2, fingerprint=fingerprint(path)
    )
    assert ds.load_args() == {"source": str(path), "name": "t", "sheet": None, "header_row": 2}
    assert ds.reload_check() is None
    path.write_text("a\n1\n2\n")
    assert "t.csv changed" in (ds.reload_check() or "")
    path.unlink()
    with pytest.raises(DatasetNotFoundError, match=r"t\.csv no longer exists"):
        ds.reload_check()
    with pytest.raises(DatasetNotFoundError, match="DataFrame"):
        DatasetRecord(name="m", source="", format="dataframe").reload_check()


def test_uploads_capped_oldest_evicted(tmp_path: Path) -> None:
    notes: list[str] = []
    a = ConversationStore(tmp_path, "nb:a", notify=notes.append, upload_cap_bytes=1000)
    b = ConversationStore(tmp_path, "nb:b", notify=notes.append, upload_cap_bytes=1000)
    first = a.keep_upload("first.csv", b"x" * 400)
    second = b.keep_upload("second.csv", b"y" * 400)
    assert first.read_bytes() == b"x" * 400 and first.parent != second.parent
    third = a.keep_upload("third.csv", b"z" * 400)  # 1200 > 1000: the oldest goes
    assert not first.exists() and second.exists() and third.exists()
    assert any("first.csv" in n for n in notes)
    assert a.uploads() == [third]
    again = a.keep_upload("third.csv", b"w" * 500)  # same name replaces, counted once
    assert again == third and third.read_bytes() == b"w" * 500 and second.exists()
    with pytest.raises(StoreError, match="over the 1,000 bytes cap"):
        a.keep_upload("huge.csv", b"h" * 1001)
    sneaky = a.keep_upload("../../etc/passwd", b"p")
    assert sneaky.parent == third.parent and sneaky.name == "passwd"
    assert not [p for p in third.parent.iterdir() if p.name.startswith(".part-")]


def test_forget_deletes_everything_for_the_key(tmp_path: Path) -> None:
    s = ConversationStore(tmp_path, "nb:secret")
    keep = ConversationStore(tmp_path, "nb:other")
    s.add_turn(turn(1, "confidential-answer-7f3a", code="result = 'confidential-code-7f3a'"))
    s.put_dataset(DatasetRecord(name="d", source="/confidential-path-7f3a.csv", format="csv"))
    up = s.keep_upload("upload.csv", b"confidential-upload-7f3a")
    keep.add_turn(turn(1, "kept"))
    s.forget()
    assert s.turns() == [] and s.datasets() == [] and s.uploads() == [] and not up.exists()
    assert [t.value for t in keep.turns()] == ["kept"]
    s.close()
    keep.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob(DB_NAME + "*"))
    assert b"confidential" not in raw  # secure_delete + checkpoint: not left in free pages


def test_threads_share_one_store(store: ConversationStore) -> None:
    def work(start: int) -> None:
        for n in range(start, start + 20):
            store.add_turn(turn(n, n))

    threads = [threading.Thread(target=work, args=(k * 100,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(t.number for t in store.turns()) == sorted(
        n for k in range(4) for n in range(k * 100, k * 100 + 20)
    )


# --- faults -------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np, pandas as pd
    from dataask_jupyter.store import ConversationStore, TurnRecord
    store = ConversationStore(sys.argv[1], "nb:killed")
    for n in range(1, 100000):
        frame = pd.DataFrame({"n": np.full(20000, n), "r": np.random.default_rng(n).random(20000)})
        store.add_turn(TurnRecord(number=n, question=f"q{n}", dataset="d", code=f"c{n}",
                                  value=frame, summary=f"s{n}"))
        print(n, flush=True)
    """
)


def test_kill_mid_write_loses_at_most_the_turn_in_flight(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    done = 0
    for line in proc.stdout:
        done = int(line)
        if done >= 15:
            break
    os.kill(proc.pid, signal.SIGKILL)  # most likely in the middle of turn 16's write
    proc.wait()
    store = ConversationStore(tmp_path, "nb:killed")
    turns = store.turns()
    numbers = [t.number for t in turns]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) >= done
    for t in turns:
        assert t.kept and t.summary == f"s{t.number}" and t.code == f"c{t.number}"
        assert t.value.shape == (20000, 2) and (t.value["n"] == t.number).all()
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.add_turn(turn(len(numbers) + 1, "next"))
    assert store.turns()[-1].value == "next"


def test_garbage_database_is_moved_aside(tmp_path: Path) -> None:
    tmp_path.joinpath(DB_NAME).write_bytes(b"this is not a database" * 100)
    notes: list[str] = []
    store = ConversationStore(tmp_path, "nb:x", notify=notes.append)
    assert len(notes) == 1 and "moved it to" in notes[0] and "started a new one" in notes[0]
    aside = list(tmp_path.glob(DB_NAME + ".corrupt-*"))
    assert aside and aside[0].read_bytes().startswith(b"this is not a database")
    store.add_turn(turn(1, 1))
    assert [t.value for t in store.turns()] == [1]


def test_damaged_pages_are_detected_and_moved_aside(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, "nb:x")
    for n in range(1, 40):
        store.add_turn(turn(n, "v" * 3000))
    store.close()
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = bytearray((tmp_path / DB_NAME).read_bytes())
    page = 4096
    for k in range(3 * page, len(raw) - page, 7 * page):  # scribble over b-tree pages
        raw[k : k + 64] = b"\xff" * 64
    (tmp_path / DB_NAME).write_bytes(bytes(raw))
    notes: list[str] = []
    fresh = ConversationStore(tmp_path, "nb:x", notify=notes.append)
    assert notes and "damaged" in notes[0]
    assert fresh.turns() == []
    fresh.add_turn(turn(1, "after"))
    assert [t.value for t in fresh.turns()] == ["after"]


@contextlib.contextmanager
def small_disk(path: Path, size: str = "256k") -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_disk_is_a_clear_error_and_nothing_half_written(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        store = ConversationStore(disk, "nb:full")
        store.add_turn(turn(1, "small"))
        noise = pd.DataFrame({"r": np.random.default_rng(0).random(60000)})  # ~480 KB parquet
        with pytest.raises(StoreError, match=r"disk holding .* is full") as err:
            store.add_turn(turn(2, noise))
        assert isinstance(err.value, DataaskError)
        assert [t.number for t in store.turns()] == [1]  # turn 2 is not half there
        store.add_turn(turn(2, "small again"))  # the store goes on once it fits
        with pytest.raises(StoreError, match="full"):
            store.keep_upload("big.csv", b"u" * (400 << 10))
        assert not [p for p in disk.rglob("*") if p.name.startswith(".part-")]
        store.close()
        again = ConversationStore(disk, "nb:full")
        assert [t.value for t in again.turns()] == ["small", "small again"]
        again.close()


def test_unusable_state_dir_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="DATAASK_STATE_DIR"):
        ConversationStore(blocker / "state", "nb:x")


def test_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATAASK_STATE_DIR", str(tmp_path / "here"))
    assert default_state_dir() == tmp_path / "here"
    monkeypatch.delenv("DATAASK_STATE_DIR")
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jd"))
    assert default_state_dir() == tmp_path / "jd" / "dataask"


# --- notebook keys ------------------------------------------------------------------------


def test_notebook_key_sources() -> None:
    env = {"JPY_SESSION_NAME": "/home/u/work/sales.ipynb"}
    assert notebook_key({}, env, "/home/u/work") == "notebook:/home/u/work/sales.ipynb"
    ns = {"__session__": "/home/u/other.ipynb"}
    assert notebook_key(ns, {}, "/home/u") == "notebook:/home/u/other.ipynb"
    vsc = {"__vsc_ipynb_file__": "/c/vs.ipynb", "__session__": "/c/x.ipynb"}
    assert notebook_key(vsc, {}, "/c") == "notebook:/c/vs.ipynb"
    # relative to the server root; the kernel runs in the notebook's directory
    rel = {"JPY_SESSION_NAME": "work/sales.ipynb"}
    assert notebook_key({}, rel, "/home/u/work") == "notebook:/home/u/work/sales.ipynb"
    assert notebook_key({}, rel, "/elsewhere") == "notebook:work/sales.ipynb"
    uuid = {"JPY_SESSION_NAME": "work/34361149-e3d8-4dbc-9302-0e86431b3e8c"}
    assert notebook_key({}, uuid, "/home/u/work") == "ipython:/home/u/work"
    assert notebook_key({}, {}, "/data") == "ipython:/data"


def test_notebook_key_of_a_script(tmp_path: Path) -> None:
    script = tmp_path / "analysis.py"
    script.write_text(
        "from dataask_jupyter.notebook_key import notebook_key\nprint(notebook_key())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "JPY_SESSION_NAME"}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == f"script:{script}"
