"""The kernel side of the side panel: one comm per open panel, every request a call on the
kernel's ``Session``.

Requests are JSON objects ``{"op": ..., "id": ...}``; each gets one ``{"type": "reply", "id",
"ok", ...}`` (``error`` says why not, in one sentence). The hub also pushes ``state`` (datasets,
turn numbers), new ``turn`` views, and an asking panel's progress ``event``s. Questions run in a
worker thread so the panel can still page tables and press Stop while one runs; the Session
serialises questions from the panel and from cells. The message catalogue is in docs/panel.md.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dataask_jupyter.errors import DataaskError
from dataask_jupyter.pages import Pager
from dataask_jupyter.panel import views
from dataask_jupyter.panel.uploads import Uploads
from dataask_jupyter.uploads import ACCEPT, upload_cap

if TYPE_CHECKING:
    from dataask_jupyter.session import Answer, Session

PROTOCOL = 1
EXPORT_FORMATS = {
    "csv": "text/csv",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "png": "image/png",
}
MAX_PAGERS = 16
MAX_CONNECTIONS = 8

Send = Callable[[dict[str, Any], list[bytes] | None], None]


class Connection:
    """One open panel: what it has been sent, and how to reach it."""

    def __init__(self, send: Send, close: Callable[[], None] = lambda: None) -> None:
        self.send = send
        self.close = close
        self.sent: set[int] = set()


class PanelHub:
    """Serves every open panel of this kernel from the one ``Session`` that ``get_session``
    returns (the magics' session: cells and panels share the conversation)."""

    def __init__(self, get_session: Callable[[], Session]) -> None:
        self.get_session = get_session
        self.connections: list[Connection] = []
        self.uploads = Uploads()
        self.asking: dict[str, Connection] = {}
        self._lock = threading.RLock()
        self._pagers: OrderedDict[tuple[int, int], Pager] = OrderedDict()
        self._session: Session | None = None

    # --- connections ----------------------------------------------------------------------
    def connect(self, send: Send, close: Callable[[], None] = lambda: None) -> Connection:
        conn = Connection(send, close)
        with self._lock:
            self.connections.append(conn)
            for old in self.connections[:-MAX_CONNECTIONS]:  # panels of closed pages
                self.connections.remove(old)
        return conn

    def disconnect(self, conn: Connection) -> None:
        with self._lock:
            if conn in self.connections:
                self.connections.remove(conn)

    def close(self) -> None:
        """The extension is unloading: tell every panel, close their comms."""
        with self._lock:
            conns, self.connections = self.connections, []
        for conn in conns:
            _quiet(conn.send, {"type": "closed", "reason": "dataask was unloaded"}, None)
            _quiet(conn.close)
        self.uploads.close()

    # --- requests -------------------------------------------------------------------------
    def handle(self, conn: Connection, msg: Any, buffers: list[bytes] | None = None) -> None:
        """Answer one request; never raises (a failure is the reply's ``error``)."""
        if not isinstance(msg, dict):
            return
        rid = msg.get("id")
        op = str(msg.get("op", ""))
        handler = getattr(self, f"_op_{op.replace('-', '_')}", None)
        try:
            if handler is None:
                raise DataaskError(f"unknown panel request {op!r}")
            reply = handler(conn, msg, buffers or [])
        except DataaskError as exc:
            conn.send({"type": "reply", "id": rid, "ok": False, "error": str(exc)}, None)
        except Exception as exc:  # a bug must not break the panel's comm
            error = f"the panel request {op!r} failed: {type(exc).__name__}: {exc}"
            conn.send({"type": "reply", "id": rid, "ok": False, "error": error}, None)
        else:
            data, out = reply if isinstance(reply, tuple) else (reply, None)
            conn.send({"type": "reply", "id": rid, "ok": True, **data}, out)
        if op not in ("page", "chart", "upload-chunk"):
            self.sync()

    def _op_hello(self, conn: Connection, msg: dict[str, Any], _b: list[bytes]) -> dict[str, Any]:
        s = self.session()
        with self._lock:
            conn.sent = {a.number for a in s.history}
            turns = [self._turn(a) for a in s.history]
        return {"protocol": PROTOCOL, "state": self.state(), "turns": turns}

    def _op_ask(self, conn: Connection, msg: dict[str, Any], _b: list[bytes]) -> dict[str, Any]:
        question = str(msg.get("question", "")).strip()
        if not question:
            raise DataaskError("write a question first")
        dataset = msg.get("dataset") or None
        s = self.session()
        if not s.datasets and not s.pending:
            raise DataaskError("no dataset loaded yet: upload a file first")
        ask_id = uuid.uuid4().hex[:12]
        with self._lock:
            self.asking[ask_id] = conn
        threading.Thread(
            target=self._run_ask,
            args=(conn, ask_id, question, dataset),
            name=f"dataask-panel-ask-{ask_id}",
            daemon=True,
        ).start()
        return {"ask": ask_id}

    def _run_ask(self, conn: Connection, ask_id: str, question: str, dataset: Any) -> None:
        def on_event(event: Any) -> None:
            conn.send(
                {
                    "type": "event",
                    "ask": ask_id,
                    "kind": event.kind,
                    "text": event.text,
                    "attempt": event.attempt,
                },
                None,
            )

        done: dict[str, Any] = {"type": "ask-done", "ask": ask_id}
        try:
            answer = self.session().ask(question, dataset=dataset, on_event=on_event)
            done["number"] = answer.number
        except DataaskError as exc:
            done["error"] = str(exc)
        except Exception as exc:  # never leave the panel waiting
            done["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                self.asking.pop(ask_id, None)
        self.sync()
        conn.send(done, None)

    def _op_cancel(self, conn: Connection, msg: dict[str, Any], _b: list[bytes]) -> dict[str, Any]:
        self.session().cancel()
        return {}

    def _op_page(self, conn: Connection, msg: dict[str, Any], _b: list[bytes]) -> dict[str, Any]:
        pager = self._pager(self.session().turn(int(msg["turn"])), int(msg.get("table", 0)))
        if pager is None:
            raise DataaskError(f"turn {msg['turn']} has no table")
        page = pager.page(
            int(msg.get("page", 0)),
            int(msg.get("page_size", views.FIRST_PAGE_ROWS)),
            str(msg.get("sort_by") or ""),
            bool(msg.get("ascending", True)),
        )
        return {"page": page}

    def _op_chart(self, conn: Connection, msg: dict[str, Any], _b: list[bytes]) -> dict[str, Any]:
        from dataask_jupyter import render

        a = self.session().turn(int(msg["turn"]))
        fig = render.auto_chart(a.value, title=a.question) if a.ok else None
        if fig is None:
            raise DataaskError(f"turn {a.number} has no chart")
        return {"figure": views.figure_json(fig)}

    def _op_export(
        self, conn: Connection, msg: dict[str, Any], _b: list[bytes]
    ) -> tuple[dict[str, Any], list[bytes]]:
        fmt = str(msg.get("format", "")).lower()
        if fmt not in EXPORT_FORMATS:
            raise DataaskError(
                f"cannot export as {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}"
            )
        s = self.session()
        number = int(msg["turn"])
        name = f"dataask-turn-{number}.{fmt}"
        with tempfile.TemporaryDirectory(prefix="dataask-export-") as folder:
            path = s.export(Path(folder) / name, turn=number)
            data = path.read_bytes()
        return {"name": name, "mime": EXPORT_FORMATS[fmt], "size": len(data)}, [data]

    def _op_use(self, conn: Connection, msg: dict[str, Any], _b: list[bytes]) -> dict[str, Any]:
        self.session().use(str(msg.get("name", "")))
        return {}

    def _op_drop(self, conn: Connection, msg: dict[str, Any], _b: list[bytes]) -> dict[str, Any]:
        self.session().drop(str(msg.get("name", "")))
        return {}

    def _op_sheet(self, conn: Connection, msg: dict[str, Any], _b: list[bytes]) -> dict[str, Any]:
        s = self.session()
        name = str(msg.get("name", ""))
        ds = s.datasets.get(name)
        if ds is None or not Path(ds.source).is_file():
            raise DataaskError(f'dataset "{name}" was not read from a workbook file')
        loaded = s.load(ds.source, name=name, sheet=str(msg.get("sheet", "")))
        return {"dataset": views.dataset_view(loaded, s.active == loaded.name)}

    def _op_upload_begin(
        self, conn: Connection, msg: dict[str, Any], _b: list[bytes]
    ) -> dict[str, Any]:
        cap = upload_cap(self.session().settings)
        return {
            "upload": self.uploads.begin(str(msg.get("name", "")), int(msg.get("size", -1)), cap)
        }

    def _op_upload_chunk(
        self, conn: Connection, msg: dict[str, Any], buffers: list[bytes]
    ) -> dict[str, Any]:
        data = b"".join(bytes(b) for b in buffers)
        return {
            "received": self.uploads.chunk(str(msg.get("upload")), int(msg.get("offset", -1)), data)
        }

    def _op_upload_end(
        self, conn: Connection, msg: dict[str, Any], _b: list[bytes]
    ) -> dict[str, Any]:
        name, path = self.uploads.end(str(msg.get("upload")))
        s = self.session()
        try:  # Session.upload keeps the file where a restarted kernel finds it again
            ds = s.upload(name, path.read_bytes())
        finally:
            path.unlink(missing_ok=True)
        return {"dataset": views.dataset_view(ds, s.active == ds.name)}

    def _op_upload_abort(
        self, conn: Connection, msg: dict[str, Any], _b: list[bytes]
    ) -> dict[str, Any]:
        self.uploads.abort(str(msg.get("upload")))
        return {}

    # --- pushes ---------------------------------------------------------------------------
    def session(self) -> Session:
        s = self.get_session()
        with self._lock:
            if s is not self._session:  # a new session (extension reloaded): start afresh
                self._session = s
                self._pagers.clear()
                for conn in self.connections:
                    conn.sent = set()
        return s

    def state(self) -> dict[str, Any]:
        s = self.session()
        return {
            "datasets": [views.dataset_view(ds, n == s.active) for n, ds in s.datasets.items()]
            + [
                views.pending_view(r, n == s.active)
                for n, r in s.pending.items()
                if n not in s.datasets
            ],
            "active": s.active,
            "turns": [a.number for a in s.history],
            "asking": len(self.asking),
            "upload": {"accept": list(ACCEPT), "max_bytes": upload_cap(s.settings)},
        }

    def sync(self) -> None:
        """Push the state and the turns each panel has not seen (after every request, every
        finished question and every cell run)."""
        with self._lock:
            if not self.connections:
                return
            s = self.session()
            state = self.state()
            history = list(s.history)
            numbers = {a.number for a in history}
            for conn in list(self.connections):
                new = [a for a in history if a.number not in conn.sent]
                conn.sent = (conn.sent & numbers) | {a.number for a in new}
                for a in new:
                    conn.send({"type": "turn", "turn": self._turn(a)}, None)
                conn.send({"type": "state", "state": state}, None)

    def after_cell(self, *_args: Any) -> None:
        """IPython's ``post_run_cell``: a cell may have asked, loaded or reset."""
        if self.connections:
            _quiet(self.sync)

    # --- views ----------------------------------------------------------------------------
    def _turn(self, a: Answer) -> dict[str, Any]:
        return views.turn_view(a, lambda i: self._pager(a, i))

    def _pager(self, a: Answer, i: int) -> Pager | None:
        key = (a.number, i)
        with self._lock:
            if key in self._pagers:
                self._pagers.move_to_end(key)
                return self._pagers[key]
            tables = views.tables_of(a.value) if a.ok else []
            if not 0 <= i < len(tables):
                return None
            pager = self._pagers[key] = Pager(tables[i][1])
            while len(self._pagers) > MAX_PAGERS:
                self._pagers.popitem(last=False)
            return pager


def _quiet(fn: Callable[..., Any], *args: Any) -> None:
    with contextlib.suppress(Exception):
        fn(*args)
