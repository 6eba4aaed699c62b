"""``CodeView``: an answer's code, folded, copyable, insertable as a new notebook cell.

How the insert works (all in the browser; see ``static/code.js``): a ``dataask:insert-cell`` DOM
event for the dataask JupyterLab extension first; else, in JupyterLab 4 and Notebook 7, the
ipywidgets manager's document context, whose shared notebook model inserts a code cell below the
current one; else the clipboard. The kernel cannot do it on a click: ``set_next_input`` only acts
in the reply to an execute request, not to a widget message.
"""

from __future__ import annotations

from typing import Any

import anywidget
import traitlets as t

from dataask_jupyter.widgets.table import asset


class CodeView(anywidget.AnyWidget):
    """The code behind an answer (or the code that failed)."""

    _esm = asset("code.js")
    _css = asset("code.css")

    code = t.Unicode("").tag(sync=True)
    label = t.Unicode("code").tag(sync=True)
    expanded = t.Bool(False, help="unfolded").tag(sync=True)
    failed = t.Bool(False).tag(sync=True)

    def __init__(self, code: str, *, failed: bool = False, **kw: Any) -> None:
        label = kw.pop("label", "code that failed" if failed else "code")
        super().__init__(code=code, failed=failed, label=label, **kw)
        #: what the front end reported: {"event": "insert", "how": "notebook"}, ...
        self.events: list[dict[str, Any]] = []
        self.on_msg(self._on_msg)

    def _on_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and "event" in content:
            self.events.append({k: str(v) for k, v in content.items()})
            del self.events[:-20]

    def __repr__(self) -> str:
        return f"<CodeView {self.label}: {len(self.code.splitlines())} lines>"
