"""The upload box: pick or drop several files; each becomes a dataset through ``Session.load``.

``FilePicker`` receives files in chunks (see ``static/upload.js`` for the protocol), checking the
name and the size cap before any byte is sent and again while receiving, and writes them to a
private temporary folder. ``UploadBox`` loads each finished file with ``session.load`` (the same
validation as ``%ask load``) and shows a ``DatasetCard``; a failure is shown inline next to the
file's name and never touches the datasets already loaded.
"""

from __future__ import annotations

import html
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import ipywidgets as w
import pandas as pd
import traitlets as t

from dataask_jupyter import profile
from dataask_jupyter.uploads import ACCEPT, Incoming, refusal, safe_name, upload_cap
from dataask_jupyter.values import human_size
from dataask_jupyter.widgets.table import DataTable, asset

if TYPE_CHECKING:
    from dataask_jupyter.session import Dataset, Session

DEFAULT_MAX_UPLOAD = 256 << 20
CHUNK_BYTES = 1 << 20


class FilePicker(anywidget.AnyWidget):
    """A multi-file picker / drop zone that streams files into ``folder`` in chunks.

    ``on_file(name, path) -> (ok, message)`` runs when a file is complete; ``on_refused(name,
    message)`` when it is refused or cut short.
    """

    _esm = asset("upload.js")
    _css = asset("upload.css")

    accept = t.Unicode(",".join(ACCEPT)).tag(sync=True)
    max_bytes = t.Int(DEFAULT_MAX_UPLOAD).tag(sync=True)
    chunk_bytes = t.Int(CHUNK_BYTES).tag(sync=True)
    window = t.Int(4, help="chunks in flight").tag(sync=True)
    busy = t.Bool(False).tag(sync=True)

    def __init__(
        self,
        folder: str | Path,
        on_file: Callable[[str, Path], tuple[bool, str]],
        on_refused: Callable[[str, str], None],
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.folder = Path(folder)
        self._on_file = on_file
        self._on_refused = on_refused
        self._incoming: dict[str, Incoming] = {}
        self.on_msg(self._on_msg)

    def _reply(self, **content: Any) -> None:
        self.send(content)

    def check(self, name: str, size: int) -> str | None:
        """Why a file of this name and size is refused, or None."""
        allowed = [s.strip().lower() for s in self.accept.split(",") if s.strip()]
        return refusal(name, size, self.max_bytes, allowed)

    def _on_msg(self, _widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        kind, fid = content.get("type"), str(content.get("id", ""))
        try:
            if kind == "begin":
                self._begin(fid, str(content.get("name", "")), int(content.get("size", -1)))
            elif kind == "chunk":
                self._chunk(fid, int(content.get("offset", -1)), buffers or [])
            elif kind == "end":
                self._end(fid)
            elif kind == "failed":
                self._on_refused(str(content.get("name", "?")), str(content.get("message", "")))
        except Exception as exc:  # a broken file or message must never break the widget
            self._abort(fid, f"upload failed: {exc}")

    def _begin(self, fid: str, name: str, size: int) -> None:
        display = os.path.basename(name.replace("\\", "/")) or "file"
        problem = "the browser sent no file size" if size < 0 else self.check(display, size)
        if problem:
            self._on_refused(display, problem)
            self._reply(type="refused", id=fid, message=problem)
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / safe_name(display)
        self._incoming[fid] = Incoming(display, path, size, open(path, "wb"))  # noqa: SIM115
        self.busy = True
        self._reply(type="ready", id=fid)

    def _chunk(self, fid: str, offset: int, buffers: list[Any]) -> None:
        inc = self._incoming.get(fid)
        if inc is None:
            return
        data = b"".join(bytes(b) for b in buffers)
        if offset != inc.received:
            self._abort(fid, f"{inc.name}: a piece went missing (offset {offset:,})")
            return
        if inc.received + len(data) > min(inc.size, self.max_bytes):
            self._abort(fid, f"{inc.name}: more bytes arrived than announced; upload refused")
            return
        inc.handle.write(data)
        inc.received += len(data)
        self._reply(type="ack", id=fid, received=inc.received)

    def _end(self, fid: str) -> None:
        inc = self._incoming.pop(fid, None)
        if inc is None:
            return
        inc.handle.close()
        self.busy = bool(self._incoming)
        if inc.received != inc.size:
            inc.path.unlink(missing_ok=True)
            message = f"{inc.name}: upload cut short ({inc.received:,} of {inc.size:,} bytes)"
            self._on_refused(inc.name, message)
            self._reply(type="done", id=fid, ok=False, message=message)
            return
        ok, message = self._on_file(inc.name, inc.path)
        self._reply(type="done", id=fid, ok=ok, message=message)

    def _abort(self, fid: str, message: str) -> None:
        inc = self._incoming.pop(fid, None)
        name = inc.name if inc else "file"
        if inc is not None:
            inc.handle.close()
            inc.path.unlink(missing_ok=True)
        self.busy = bool(self._incoming)
        self._on_refused(name, message)
        self._reply(type="done", id=fid, ok=False, message=message)


def schema_html(frame: Any) -> str:
    """The dataset's columns as an HTML table: dtype, nulls, distinct, sample values."""
    table = profile.schema_table(frame)
    approx = "~" if len(frame) > profile.SAMPLE_ROWS else ""
    rows = []
    for r in table.to_dict("records"):
        lo, hi, samples = r["min"], r["max"], r["samples"]
        if isinstance(lo, str) and isinstance(hi, str):
            sample = f"{lo} … {hi}"
        else:
            sample = samples if isinstance(samples, str) else ""
        distinct: Any = r["distinct"]
        distinct_text = "?" if pd.isna(distinct) else f"{approx}{int(distinct):,}"
        rows.append(
            "<tr>"
            f"<td><b>{html.escape(str(r['column']))}</b></td>"
            f"<td>{html.escape(str(r['dtype']))}</td>"
            f'<td style="text-align:right">{int(r["nulls"]):,}</td>'
            f'<td style="text-align:right">{html.escape(distinct_text)}</td>'
            f"<td>{html.escape(sample)}</td>"
            "</tr>"
        )
    return (
        '<div style="max-height:260px;overflow:auto"><table class="dataask-schema">'
        "<thead><tr><th>column</th><th>dtype</th><th>nulls</th><th>distinct</th>"
        "<th>sample values</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>"
    )


_CARD_CSS = """<style>
.dataask-card{border:1px solid var(--jp-border-color2,#ddd);border-radius:6px;padding:8px 10px;
  margin:6px 0;font-family:var(--jp-ui-font-family,sans-serif)}
.dataask-card .dataask-card-title{font-size:1.1em}
.dataask-card .dataask-muted{color:var(--jp-ui-font-color2,#666)}
.dataask-card .dataask-err{color:#b00020}
.dataask-schema{border-collapse:collapse;font-size:var(--jp-ui-font-size1,13px)}
.dataask-schema th,.dataask-schema td{padding:2px 8px;text-align:left;
  border-bottom:1px solid var(--jp-border-color3,#eee);white-space:nowrap}
.dataask-schema th{background:var(--jp-layout-color2,#f3f3f3)}
</style>"""


def hidden_sheets(ds: Dataset) -> dict[str, str]:
    """Hidden sheets of the dataset's workbook: name -> "hidden" / "very hidden"."""
    found = getattr(ds, "hidden_sheets", None)
    return dict(found) if isinstance(found, dict) else {}


def notes_html(notes: list[str]) -> str:
    """What the reader decided (header row, skipped title, dropped totals...), one line each."""
    if not notes:
        return ""
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (
        '<div class="dataask-muted dataask-notes">How the file was read:'
        f'<ul style="margin:2px 0 2px 18px;padding:0">{items}</ul></div>'
    )


class DatasetCard(w.VBox):
    """A loaded dataset: name, size, the reader's notes, hidden sheets, sheet picker (workbooks),
    schema and a paged preview."""

    def __init__(self, session: Session, dataset: Dataset, path: Path, label: str) -> None:
        self.session = session
        self.path = path
        self.label = label
        self.sheet_picker: w.Dropdown | None = None
        self.error = w.HTML("")
        self.preview: DataTable | None = None
        super().__init__()
        self.add_class("dataask-card")
        self.show(dataset)

    @property
    def dataset(self) -> Dataset:
        return self._dataset

    def show(self, ds: Dataset) -> None:
        """Draw the card for ``ds``: what was read, what the reader decided, hidden sheets."""
        self._dataset = ds
        rows, cols = ds.shape
        where = html.escape(self.label) + (f", sheet “{html.escape(ds.sheet)}”" if ds.sheet else "")
        hidden = hidden_sheets(ds)
        title = w.HTML(
            f'{_CARD_CSS}<div class="dataask-card-title"><b>{html.escape(ds.name)}</b> · '
            f"{rows:,} rows x {cols:,} columns "
            f'<span class="dataask-muted">from {where}</span></div>'
            + notes_html(ds.notes)
            + (
                '<div class="dataask-muted dataask-hidden-sheets">hidden sheets: '
                + ", ".join(f"“{html.escape(n)}” ({html.escape(v)})" for n, v in hidden.items())
                + " · pick one in the Sheet menu</div>"
                if hidden
                else ""
            )
        )
        parts: list[w.Widget] = [title]
        if len(ds.sheets) > 1:
            options: list[Any] = list(ds.sheets)
            if hidden:
                options = [(f"{n} ({hidden[n]})" if n in hidden else n, n) for n in ds.sheets]
            self.sheet_picker = w.Dropdown(options=options, value=ds.sheet, description="Sheet:")
            self.sheet_picker.observe(self._on_sheet, names="value")
            parts.append(self.sheet_picker)
        else:
            self.sheet_picker = None
        self.preview = DataTable(ds.frame, page_size=5, caption="preview")
        parts += [self.error, w.HTML(schema_html(ds.frame)), self.preview]
        self.children = parts

    def choose_sheet(self, sheet: str) -> bool:
        """Reload the dataset from another sheet of the workbook; False (and a message) on error."""
        from dataask_jupyter.errors import DataaskError

        try:
            ds = self.session.load(self.path, name=self._dataset.name, sheet=sheet)
        except DataaskError as exc:
            self.error.value = f'<div class="dataask-err">{html.escape(str(exc))}</div>'
            return False
        self.error.value = ""
        self.show(ds)
        return True

    def _on_sheet(self, change: dict[str, Any]) -> None:
        if change["new"] != self._dataset.sheet and not self.choose_sheet(str(change["new"])):
            picker = self.sheet_picker
            if picker is not None:
                picker.unobserve(self._on_sheet, names="value")
                picker.value = self._dataset.sheet
                picker.observe(self._on_sheet, names="value")


class UploadBox(w.VBox):
    """``%ask upload``: upload CSV, Excel, ODS or parquet files; each becomes a dataset."""

    def __init__(self, session: Session, *, max_bytes: int | None = None) -> None:
        self.session = session
        settings = session.settings
        cap = max_bytes or upload_cap(settings)
        self.folder = Path(tempfile.mkdtemp(prefix="dataask-upload-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.folder), True)
        self.picker = FilePicker(self.folder, self._load, self._refused, max_bytes=cap)
        self.messages = w.VBox()
        self.cards: dict[str, DatasetCard] = {}
        self.card_box = w.VBox()
        #: (file name, None or the error) for every file, in order
        self.results: list[tuple[str, str | None]] = []
        title = w.HTML(
            "<b>Upload data</b> "
            f'<span style="color:var(--jp-ui-font-color2,#666)">{", ".join(ACCEPT)} · '
            f"up to {human_size(cap)} per file · each file becomes a dataset</span>"
        )
        super().__init__([title, self.picker, self.messages, self.card_box])
        self.add_class("dataask-upload-box")

    # --- Python API ---------------------------------------------------------------------------
    def add_file(self, name: str, data: bytes) -> bool:
        """Load ``data`` as if the file ``name`` had been uploaded (same checks); True if loaded."""
        problem = self.picker.check(name, len(data))
        if problem:
            self._refused(name, problem)
            return False
        path = self.folder / safe_name(name)
        path.write_bytes(data)
        ok, _message = self._load(name, path)
        return ok

    @property
    def errors(self) -> list[str]:
        return [err for _name, err in self.results if err]

    # --- internals ----------------------------------------------------------------------------
    def _load(self, name: str, path: Path) -> tuple[bool, str]:
        from dataask_jupyter.errors import DataaskError

        try:  # through Session.upload: the file is kept where a kernel restart finds it again
            ds = self.session.upload(name, path.read_bytes())
        except DataaskError as exc:
            self._refused(name, str(exc))
            return False, str(exc)
        except Exception as exc:  # an unexpected reader failure still stays inside this file
            message = f"{name} could not be loaded: {type(exc).__name__}: {exc}"
            self._refused(name, message)
            return False, message
        message = f"{name} → dataset {ds.name} ({ds.shape[0]:,} rows x {ds.shape[1]:,} columns)"
        self._log(
            f'<span style="color:var(--jp-success-color1,#2e7d32)">✓</span> {html.escape(message)}'
        )
        self.results.append((name, None))
        card = DatasetCard(self.session, ds, path, name)
        self.cards[ds.name] = card
        self.card_box.children = list(self.cards.values())
        return True, message

    def _refused(self, name: str, message: str) -> None:
        self.results.append((name, message))
        self._log(f'<span style="color:#b00020">✗ {html.escape(message)}</span>')

    def _log(self, text: str) -> None:
        self.messages.children = [*self.messages.children, w.HTML(text)][-50:]

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self) -> str:
        loaded = ", ".join(self.cards) or "none yet"
        return (
            f"Upload box for {', '.join(ACCEPT)} files up to {human_size(self.picker.max_bytes)} "
            f"each (datasets loaded here: {loaded}). Needs a notebook with widgets; "
            "or use %ask load PATH."
        )
