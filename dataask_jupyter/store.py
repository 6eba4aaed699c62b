"""Persistence: each notebook's conversation, dataset registry and uploads, in SQLite.

One database per user (``conversations.sqlite3`` under the state directory: ``DATAASK_STATE_DIR``,
else ``<jupyter data dir>/dataask``), in WAL mode; conversations are keyed by the notebook's key
(:func:`dataask_jupyter.notebook_key.notebook_key`). Every write is one transaction, so a kernel
killed mid-write loses at most that write. Values are never pickled: tables are kept as Parquet
(capped), scalars, lists and dicts as JSON, plotly figures as their JSON, images as PNG bytes;
anything else (or anything over the caps) keeps only its one-line summary.
A database that turns out corrupt is moved aside (the ``notify`` callback says where) and a new one
started; a full disk or an unwritable directory is a :class:`StoreError` sentence.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import math
import os
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar

from dataask_jupyter.errors import DataaskError, DatasetNotFoundError

__all__ = [
    "ConversationStore",
    "DatasetRecord",
    "Fingerprint",
    "StoreError",
    "TurnRecord",
    "default_state_dir",
    "fingerprint",
    "source_state",
]

DB_NAME = "conversations.sqlite3"
SCHEMA_VERSION = 1
TABLE_MAX_BYTES = 5 << 20  # a table value kept as Parquet up to this size ...
TABLE_MAX_ROWS = 100_000  # ... and this many rows; larger ones keep only their summary
JSON_MAX_BYTES = 1 << 20
BLOB_MAX_BYTES = 5 << 20  # plotly JSON, PNG
UPLOAD_CAP_BYTES = 1 << 30
KEEP_CONVERSATIONS = 10  # per notebook, the current one included (older ones are deleted)
STDOUT_MAX_CHARS = 10_000
FINGERPRINT_EDGE = 1 << 20  # bytes hashed at each end of a file

_T = TypeVar("_T")
_SQLITE_CORRUPT, _SQLITE_NOTADB, _SQLITE_FULL = 11, 26, 13


class StoreError(DataaskError):
    """The conversation could not be read or saved (full disk, unwritable directory, locked)."""


def default_state_dir() -> Path:
    """``DATAASK_STATE_DIR``, else ``<jupyter data dir>/dataask``."""
    override = os.environ.get("DATAASK_STATE_DIR")
    if override:
        return Path(override).expanduser()
    try:
        from jupyter_core.paths import jupyter_data_dir

        base = Path(jupyter_data_dir())
    except ImportError:  # plain IPython without jupyter_core: its default location
        base = Path.home() / ".local" / "share" / "jupyter"
    return base / "dataask"


# --- records ------------------------------------------------------------------------------


@dataclass
class TurnRecord:
    """One question and its outcome, as stored.

    ``value`` is the answer's value; the store keeps it when it is small enough and of a kind it
    can write without pickling. On reading, ``kept`` says whether ``value`` came back (False:
    only ``summary`` survives; ``value`` is None).
    """

    number: int
    question: str
    dataset: str | None
    code: str = ""
    kind: str = "none"
    summary: str = ""
    error: str | None = None
    cancelled: bool = False
    seconds: float = 0.0
    created: float = field(default_factory=time.time)
    value: Any = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list)
    stdout: str = ""
    kept: bool = False

    @classmethod
    def from_answer(cls, answer: Any) -> TurnRecord:
        """A record of a ``Session`` answer (``question``, ``code``, ``value``, ... attributes)."""
        return cls(
            number=int(answer.number),
            question=str(answer.question),
            dataset=answer.dataset,
            code=str(answer.code or ""),
            kind=str(getattr(answer, "kind", "none")),
            summary=str(answer.summary),
            error=answer.error,
            cancelled=bool(getattr(answer, "cancelled", False)),
            seconds=float(getattr(answer, "seconds", 0.0)),
            value=answer.value,
            notes=[str(n) for n in getattr(answer, "notes", [])],
            stdout=str(getattr(answer, "stdout", "")),
        )

    def answer_fields(self) -> dict[str, Any]:
        """Keyword arguments for ``Answer(...)`` that bring this turn back into a history."""
        return {
            "question": self.question,
            "dataset": self.dataset,
            "number": self.number,
            "value": self.value,
            "code": self.code,
            "error": self.error,
            "stdout": self.stdout,
            "kind": self.kind,
            "seconds": self.seconds,
            "notes": list(self.notes),
            "cancelled": self.cancelled,
        }


@dataclass(frozen=True)
class Fingerprint:
    """Size, modification time and a hash of the first and last MB of a file."""

    size: int
    mtime_ns: int
    digest: str


@dataclass
class DatasetRecord:
    """A dataset of the session: where it came from and how it was read.

    ``source`` is the file's absolute path ("" for a DataFrame, which cannot be reloaded).
    ``header_row`` and ``range`` are the reader options the user gave; ``encoding``/``delimiter``
    what the reader decided for a CSV, ``engine`` the parser it used; ``columns`` and ``dtypes``
    the table it produced.
    """

    name: str
    source: str
    format: str
    sheet: str | None = None
    header_row: int | None = None
    range: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    engine: str = ""
    columns: list[str] = field(default_factory=list)
    dtypes: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    fingerprint: Fingerprint | None = None
    active: bool = False
    table_range: str | None = None  # where the reader found the table ("B4:F20"), not an override

    @classmethod
    def from_dataset(
        cls,
        ds: Any,
        *,
        active: bool = False,
        header_row: int | None = None,
        range: str | None = None,
    ) -> DatasetRecord:
        """A record of a ``Session`` dataset (fingerprinting its file when there is one)."""
        fmt = str(ds.format)
        options = dict(getattr(ds, "options", None) or {})  # the reader overrides given to load
        source = "" if fmt == "dataframe" else os.path.abspath(str(ds.source))
        fp = None
        if source:
            with contextlib.suppress(OSError):
                fp = fingerprint(source)
        return cls(
            name=str(ds.name),
            source=source,
            format=fmt,
            sheet=ds.sheet,
            header_row=options.get("header_row") if header_row is None else header_row,
            range=options.get("range") if range is None else range,
            encoding=getattr(ds, "encoding", None),
            delimiter=getattr(ds, "delimiter", None),
            engine=str(getattr(ds, "engine", "") or ""),
            columns=[str(c) for c in ds.columns],
            dtypes={str(k): str(v) for k, v in dict(getattr(ds, "dtypes", {})).items()},
            notes=[str(n) for n in getattr(ds, "notes", [])],
            fingerprint=fp,
            active=active,
            table_range=getattr(ds, "range", None),
        )

    def load_args(self) -> dict[str, Any]:
        """Keyword arguments for ``Session.load`` that read the file again the same way."""
        args: dict[str, Any] = {"source": self.source, "name": self.name, "sheet": self.sheet}
        if self.header_row is not None:
            args["header_row"] = self.header_row
        if self.range is not None:
            args["range"] = self.range
        return args

    def reload_check(self) -> str | None:
        """Before reloading: a note if the file changed; DatasetNotFoundError if it is gone."""
        state = source_state(self)
        if state == "missing":
            raise DatasetNotFoundError(
                f'dataset "{self.name}" cannot be reloaded: {self.source} no longer exists; '
                f"load it again from where it is now (%ask load PATH --name {self.name})"
            )
        if state == "not a file":
            raise DatasetNotFoundError(
                f'dataset "{self.name}" was a DataFrame of the earlier kernel and is not kept; '
                f"load it again (%ask load VARIABLE --name {self.name})"
            )
        if state == "changed":
            return f"{os.path.basename(self.source)} changed since it was loaded; reloaded it"
        return None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> DatasetRecord:
        data = json.loads(text)
        fp = data.pop("fingerprint", None)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known, fingerprint=Fingerprint(**fp) if fp else None)


def fingerprint(path: str | os.PathLike[str]) -> Fingerprint:
    """Size, mtime and a SHA-256 of the size, first MB and last MB (fast on big files)."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        h = hashlib.sha256(str(st.st_size).encode())
        h.update(f.read(FINGERPRINT_EDGE))
        if st.st_size > FINGERPRINT_EDGE:
            f.seek(max(FINGERPRINT_EDGE, st.st_size - FINGERPRINT_EDGE))
            h.update(f.read(FINGERPRINT_EDGE))
    return Fingerprint(size=st.st_size, mtime_ns=st.st_mtime_ns, digest=h.hexdigest())


SourceState = Literal["same", "changed", "missing", "not a file"]


def source_state(rec: DatasetRecord) -> SourceState:
    """Whether the dataset's file is still the one that was read."""
    if not rec.source:
        return "not a file"
    try:
        now = fingerprint(rec.source)
    except OSError:
        return "missing"
    return "same" if now == rec.fingerprint else "changed"


# --- values -------------------------------------------------------------------------------


def _tag(obj: Any) -> Any:
    """JSON-able form of a value, with the tags ``results.decode`` undoes ($datetime, ...)."""
    import numpy as np
    import pandas as pd

    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating, Decimal)):
        f = float(obj)
        return f if math.isfinite(f) else {"$float": repr(f)}
    if isinstance(obj, (pd.Timestamp, dt.datetime)):
        return {"$datetime": obj.isoformat()}
    if isinstance(obj, dt.date):
        return {"$date": obj.isoformat()}
    if isinstance(obj, (pd.Timedelta, dt.timedelta)):
        return {"$timedelta": pd.Timedelta(obj).isoformat()}
    if isinstance(obj, (list, tuple)):
        return [_tag(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _tag(v) for k, v in obj.items()}
    if obj is pd.NaT or (isinstance(obj, float) and obj != obj):
        return None
    raise TypeError(f"cannot keep a {type(obj).__name__} as JSON")


def encode_value(value: Any) -> tuple[str, dict[str, Any], bytes] | None:
    """``(kind, meta, payload)`` to keep ``value``, or None when only its summary can be kept."""
    import pandas as pd

    from dataask_jupyter.results import PngImage

    try:
        if isinstance(value, (pd.DataFrame, pd.Series)):
            if len(value) > TABLE_MAX_ROWS:
                return None
            meta: dict[str, Any] = {}
            frame = value
            if isinstance(value, pd.Series):
                meta["name"] = None if value.name is None else str(value.name)
                frame = value.to_frame(meta["name"] or "value")
            buf = io.BytesIO()
            frame.to_parquet(buf, engine="pyarrow", compression="zstd")
            data = buf.getvalue()
            kind = "series" if isinstance(value, pd.Series) else "table"
            return (kind, meta, data) if len(data) <= TABLE_MAX_BYTES else None
        if type(value).__module__.startswith("plotly"):
            data = value.to_json().encode()
            return ("figure", {}, data) if len(data) <= BLOB_MAX_BYTES else None
        if isinstance(value, PngImage):
            return ("image", {}, value.data) if len(value.data) <= BLOB_MAX_BYTES else None
        meta = {"pytype": "tuple"} if isinstance(value, tuple) else {}
        data = json.dumps(_tag(value), allow_nan=False).encode()
        return ("json", meta, data) if len(data) <= JSON_MAX_BYTES else None
    except (TypeError, ValueError, ImportError, OverflowError, RecursionError):
        return None
    except Exception:  # pyarrow refusing a column type: keep the summary
        return None


def decode_value(kind: str, meta: dict[str, Any], payload: bytes) -> Any:
    """The value ``encode_value`` kept."""
    import pandas as pd

    from dataask_jupyter import results

    if kind in ("table", "series"):
        frame = pd.read_parquet(io.BytesIO(payload), engine="pyarrow")
        if kind == "series":
            return frame.iloc[:, 0].rename(meta.get("name"))
        return frame
    return results.decode({"kind": kind, **meta}, payload)


# --- the store ----------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    started REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_key ON conversations (key, id);
CREATE TABLE IF NOT EXISTS turns (
    conversation INTEGER NOT NULL,
    number INTEGER NOT NULL,
    question TEXT NOT NULL,
    dataset TEXT,
    code TEXT NOT NULL,
    kind TEXT NOT NULL,
    summary TEXT NOT NULL,
    error TEXT,
    cancelled INTEGER NOT NULL,
    seconds REAL NOT NULL,
    created REAL NOT NULL,
    notes TEXT NOT NULL,
    stdout TEXT NOT NULL,
    value_kind TEXT,
    value_meta TEXT,
    value BLOB,
    PRIMARY KEY (conversation, number)
);
CREATE TABLE IF NOT EXISTS datasets (
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (key, name)
);
CREATE TABLE IF NOT EXISTS uploads (
    key TEXT NOT NULL,
    filename TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (key, filename)
);
"""


def _errcode(exc: sqlite3.Error) -> int:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if isinstance(code, int):
        return code & 0xFF
    text = str(exc).lower()
    if "malformed" in text:
        return _SQLITE_CORRUPT
    if "not a database" in text:
        return _SQLITE_NOTADB
    if "disk is full" in text:
        return _SQLITE_FULL
    return -1


def _human(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GB"


_UNSAFE = re.compile(r"[^\w.\- ()]+", re.UNICODE)


def _safe_filename(filename: str) -> str:
    base = os.path.basename(filename.replace("\\", "/")).strip()
    cleaned = _UNSAFE.sub("_", base).strip(". ")
    return cleaned[:200] or "upload"


class ConversationStore:
    """The stored conversation, datasets and uploads of one notebook (``key``).

    ``ConversationStore(None, key)`` uses :func:`default_state_dir`. Thread-safe; every method
    raises only :class:`StoreError` (a :class:`DataaskError`).
    """

    def __init__(
        self,
        state_dir: Path | str | None,
        key: str,
        *,
        notify: Callable[[str], None] | None = None,
        upload_cap_bytes: int = UPLOAD_CAP_BYTES,
    ) -> None:
        self.dir = Path(state_dir).expanduser() if state_dir is not None else default_state_dir()
        self.path = self.dir / DB_NAME
        self.key = key
        self.notify = notify or (lambda msg: None)
        self.upload_cap_bytes = upload_cap_bytes
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._conversation: int | None = None
        with self._lock:
            self._call(lambda c: None)  # open (or start anew) now, not at the first question

    # --- connection -----------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StoreError(
                f"cannot create the dataask state directory {self.dir} ({exc.strerror}); "
                "set DATAASK_STATE_DIR to a writable directory"
            ) from None
        fresh = not self.path.exists()
        conn = sqlite3.connect(
            self.path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        try:
            if fresh:
                with contextlib.suppress(OSError):
                    os.chmod(self.path, 0o600)
            conn.execute("PRAGMA journal_mode=WAL")  # falls back to a rollback journal (NFS)
            conn.execute("PRAGMA synchronous=NORMAL")  # durable across process kills in WAL
            conn.execute("PRAGMA secure_delete=ON")  # forget() overwrites what it deletes
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer dataask (schema {version}); "
                    "upgrade dataask or set DATAASK_STATE_DIR elsewhere"
                )
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed: {check}")
            if version < SCHEMA_VERSION:
                conn.executescript(_SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
        except BaseException:
            conn.close()
            raise
        return conn

    def _move_aside(self, reason: str) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        self._conversation = None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                with contextlib.suppress(OSError):
                    os.replace(src, Path(str(aside) + suffix))
        self.notify(
            f"dataask: the conversation database was damaged ({reason}); moved it to {aside} "
            "and started a new one"
        )

    def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` on the connection; a corrupt database is moved aside once and fn retried."""
        for retry in (False, True):
            try:
                if self._conn is None:
                    self._conn = self._open()
                return fn(self._conn)
            except sqlite3.Error as exc:
                code = _errcode(exc)
                if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB) and not retry:
                    self._move_aside(str(exc))
                    continue
                raise self._error(exc, code) from None
            except OSError as exc:
                raise self._error(exc, -1) from None
        raise AssertionError("unreachable")

    def _error(self, exc: BaseException, code: int) -> StoreError:
        if code == _SQLITE_FULL or getattr(exc, "errno", None) == 28:
            return StoreError(
                f"the conversation could not be saved: the disk holding {self.dir} is full; "
                "the answer is kept for this session only (free space, or set DATAASK_STATE_DIR)"
            )
        return StoreError(f"the conversation store {self.path} failed: {exc}")

    @contextlib.contextmanager
    def _tx(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it or nothing."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _current(self, conn: sqlite3.Connection, create: bool) -> int | None:
        if self._conversation is None:
            row = conn.execute(
                "SELECT id FROM conversations WHERE key = ? ORDER BY id DESC LIMIT 1", (self.key,)
            ).fetchone()
            if row is not None:
                self._conversation = int(row[0])
            elif create:
                cur = conn.execute(
                    "INSERT INTO conversations (key, started) VALUES (?, ?)",
                    (self.key, time.time()),
                )
                self._conversation = int(cur.lastrowid or 0)
        return self._conversation

    # --- turns ----------------------------------------------------------------------------
    def turns(self, limit: int | None = None, *, values: bool = True) -> list[TurnRecord]:
        """The current conversation, oldest first (only the last ``limit`` turns if given).

        ``values=False`` skips reading and decoding the kept values (``kept`` still says which).
        """
        cols = "value_kind, value_meta, " + ("value" if values else "NULL")

        def read(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            conv = self._current(conn, create=False)
            if conv is None:
                return []
            sql = (
                "SELECT number, question, dataset, code, kind, summary, error, cancelled, "
                f"seconds, created, notes, stdout, {cols} FROM turns WHERE conversation = ? "
                "ORDER BY number DESC"
            )
            args: tuple[Any, ...] = (conv,)
            if limit is not None:
                sql += " LIMIT ?"
                args = (conv, max(0, int(limit)))
            return conn.execute(sql, args).fetchall()

        with self._lock:
            rows = self._call(read)
        out = []
        for row in reversed(rows):
            rec = TurnRecord(
                number=row[0],
                question=row[1],
                dataset=row[2],
                code=row[3],
                kind=row[4],
                summary=row[5],
                error=row[6],
                cancelled=bool(row[7]),
                seconds=row[8],
                created=row[9],
                notes=json.loads(row[10]),
                stdout=row[11],
                kept=row[12] is not None,
            )
            if values and row[12] is not None:
                try:
                    rec.value = decode_value(row[12], json.loads(row[13] or "{}"), row[14])
                except Exception:  # a value that no longer decodes: its summary stands
                    rec.kept = False
            out.append(rec)
        return out

    def value(self, number: int) -> Any:
        """The kept value of turn ``number`` of the current conversation (None if not kept)."""

        def read(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            conv = self._current(conn, create=False)
            if conv is None:
                return None
            return conn.execute(
                "SELECT value_kind, value_meta, value FROM turns "
                "WHERE conversation = ? AND number = ?",
                (conv, number),
            ).fetchone()

        with self._lock:
            row = self._call(read)
        if row is None or row[0] is None:
            return None
        return decode_value(row[0], json.loads(row[1] or "{}"), row[2])

    def add_turn(self, rec: TurnRecord) -> None:
        """Append (or replace) turn ``rec.number`` of the current conversation, atomically."""
        encoded = encode_value(rec.value)
        row = (
            rec.number,
            rec.question,
            rec.dataset,
            rec.code,
            rec.kind,
            rec.summary,
            rec.error,
            int(rec.cancelled),
            float(rec.seconds),
            float(rec.created),
            json.dumps(list(rec.notes)),
            rec.stdout[:STDOUT_MAX_CHARS],
            encoded[0] if encoded else None,
            json.dumps(encoded[1]) if encoded else None,
            encoded[2] if encoded else None,
        )

        def write(conn: sqlite3.Connection) -> None:
            with self._tx(conn):
                conv = self._current(conn, create=True)
                conn.execute(
                    "INSERT OR REPLACE INTO turns (conversation, number, question, dataset, code, "
                    "kind, summary, error, cancelled, seconds, created, notes, stdout, value_kind, "
                    "value_meta, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (conv, *row),
                )

        with self._lock:
            try:
                self._call(write)
            except StoreError:
                self._conversation = None  # a rolled-back new conversation row is not ours
                raise
        rec.kept = encoded is not None

    def new_conversation(self) -> None:
        """Start a new conversation (``%ask reset``); older ones beyond the last few are deleted."""

        def write(conn: sqlite3.Connection) -> None:
            with self._tx(conn):
                cur = conn.execute(
                    "INSERT INTO conversations (key, started) VALUES (?, ?)",
                    (self.key, time.time()),
                )
                self._conversation = int(cur.lastrowid or 0)
                old = [
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM conversations WHERE key = ? ORDER BY id DESC LIMIT -1 "
                        "OFFSET ?",
                        (self.key, KEEP_CONVERSATIONS),
                    )
                ]
                for conv in old:
                    conn.execute("DELETE FROM turns WHERE conversation = ?", (conv,))
                    conn.execute("DELETE FROM conversations WHERE id = ?", (conv,))

        with self._lock:
            try:
                self._call(write)
            except StoreError:
                self._conversation = None
                raise

    # --- datasets -------------------------------------------------------------------------
    def datasets(self) -> list[DatasetRecord]:
        """The datasets of this notebook, in the order they were first loaded."""

        def read(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(
                "SELECT record FROM datasets WHERE key = ? ORDER BY position", (self.key,)
            ).fetchall()

        with self._lock:
            rows = self._call(read)
        out = []
        for (text,) in rows:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                out.append(DatasetRecord.from_json(text))
        return out

    def put_dataset(self, rec: DatasetRecord) -> None:
        """Add or replace dataset ``rec.name``; an active ``rec`` makes the others inactive."""

        def write(conn: sqlite3.Connection) -> None:
            with self._tx(conn):
                if rec.active:
                    for name, text in conn.execute(
                        "SELECT name, record FROM datasets WHERE key = ? AND name != ?",
                        (self.key, rec.name),
                    ).fetchall():
                        other = DatasetRecord.from_json(text)
                        if other.active:
                            other.active = False
                            conn.execute(
                                "UPDATE datasets SET record = ? WHERE key = ? AND name = ?",
                                (other.to_json(), self.key, name),
                            )
                row = conn.execute(
                    "SELECT position FROM datasets WHERE key = ? AND name = ?",
                    (self.key, rec.name),
                ).fetchone()
                if row is None:
                    row = conn.execute(
                        "SELECT COALESCE(MAX(position), 0) + 1 FROM datasets WHERE key = ?",
                        (self.key,),
                    ).fetchone()
                conn.execute(
                    "INSERT OR REPLACE INTO datasets (key, name, position, record) "
                    "VALUES (?, ?, ?, ?)",
                    (self.key, rec.name, row[0], rec.to_json()),
                )

        with self._lock:
            self._call(write)

    def drop_dataset(self, name: str) -> None:
        """Remove dataset ``name`` from the registry (no-op if absent)."""

        def write(conn: sqlite3.Connection) -> None:
            with self._tx(conn):
                conn.execute("DELETE FROM datasets WHERE key = ? AND name = ?", (self.key, name))

        with self._lock:
            self._call(write)

    # --- uploads --------------------------------------------------------------------------
    def keep_upload(self, filename: str, data: bytes) -> Path:
        """Keep an uploaded file in the per-user upload store; returns where it now lives.

        The store holds at most ``upload_cap_bytes`` for all notebooks together; the oldest
        uploads are removed to make room. A file over the cap is a :class:`StoreError`.
        """
        name = _safe_filename(filename)
        size = len(data)
        if size > self.upload_cap_bytes:
            raise StoreError(
                f"{name} is {_human(size)}, over the {_human(self.upload_cap_bytes)} cap of the "
                "upload store; load it from disk with %ask load PATH instead"
            )
        folder = self.dir / "uploads" / hashlib.sha256(self.key.encode()).hexdigest()[:16]
        target = folder / name
        with self._lock:
            evicted = self._make_room(size, exclude=(self.key, name))
            for path in evicted:
                with contextlib.suppress(OSError):
                    path.unlink()
            try:
                folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                _atomic_write(target, data)
            except OSError as exc:
                raise self._error(exc, -1) from None

            def record(conn: sqlite3.Connection) -> None:
                with self._tx(conn):
                    conn.execute(
                        "INSERT OR REPLACE INTO uploads (key, filename, path, size, created) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (self.key, name, str(target), size, time.time()),
                    )

            try:
                self._call(record)
            except StoreError:
                with contextlib.suppress(OSError):
                    target.unlink()
                raise
        for path in evicted:
            self.notify(f"dataask: removed the old upload {path.name} to stay under the cap")
        return target

    def _make_room(self, size: int, exclude: tuple[str, str]) -> list[Path]:
        """Delete the oldest upload records until ``size`` more bytes fit; their paths."""

        def write(conn: sqlite3.Connection) -> list[Path]:
            with self._tx(conn):
                rows = conn.execute(
                    "SELECT key, filename, path, size FROM uploads ORDER BY created"
                ).fetchall()
                total = sum(r[3] for r in rows if (r[0], r[1]) != exclude)
                evicted: list[Path] = []
                for key, filename, path, n in rows:
                    if total + size <= self.upload_cap_bytes:
                        break
                    if (key, filename) == exclude:
                        continue
                    conn.execute(
                        "DELETE FROM uploads WHERE key = ? AND filename = ?", (key, filename)
                    )
                    total -= n
                    evicted.append(Path(path))
                return evicted

        return self._call(write)

    def uploads(self) -> list[Path]:
        """This notebook's kept uploads, oldest first."""

        def read(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(
                "SELECT path FROM uploads WHERE key = ? ORDER BY created", (self.key,)
            ).fetchall()

        with self._lock:
            return [Path(r[0]) for r in self._call(read)]

    # --- forgetting, closing --------------------------------------------------------------
    def forget(self) -> None:
        """Delete everything stored for this notebook: conversations, datasets and uploads."""

        def write(conn: sqlite3.Connection) -> list[Path]:
            with self._tx(conn):
                paths = [
                    Path(r[0])
                    for r in conn.execute("SELECT path FROM uploads WHERE key = ?", (self.key,))
                ]
                conn.execute(
                    "DELETE FROM turns WHERE conversation IN "
                    "(SELECT id FROM conversations WHERE key = ?)",
                    (self.key,),
                )
                for table in ("conversations", "datasets", "uploads"):
                    conn.execute(f"DELETE FROM {table} WHERE key = ?", (self.key,))
            with contextlib.suppress(sqlite3.Error):  # don't leave the old pages in the WAL
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return paths

        with self._lock:
            paths = self._call(write)
            self._conversation = None
        for path in paths:
            with contextlib.suppress(OSError):
                path.unlink()
        folder = self.dir / "uploads" / hashlib.sha256(self.key.encode()).hexdigest()[:16]
        with contextlib.suppress(OSError):
            folder.rmdir()

    def close(self) -> None:
        """Close the database (the store reopens it if used again)."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None
            self._conversation = None

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ConversationStore({str(self.path)!r}, key={self.key!r})"


def _atomic_write(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temporary file and a rename (no half files)."""
    fd, tmp = tempfile.mkstemp(prefix=".part-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
