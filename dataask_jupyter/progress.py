"""A question's progress in a notebook: which stage it is in, and the code as the LLM writes it.

``ProgressView`` is the ``on_event`` handler the magics pass to ``Session.ask``. With a live
frontend (JupyterLab, Notebook) it shows one output that is updated in place (``display(...,
display_id=True)``, at most ``max_rate`` updates a second) and emptied when the answer arrives, so
the answer takes its place. Headless (plain terminal IPython, a kernel run by nbclient such as
``scripts/run_notebook.py``) it prints one line per stage.
"""

from __future__ import annotations

import html
import os
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataask_jupyter.events import Event

#: ``None``: decide per question (``live_frontend()``); ``"live"`` or ``"lines"`` forces a mode.
mode: str | None = None
#: Most lines of code shown while they stream (the last ones; the answer shows all of it).
MAX_CODE_LINES = 40


def live_frontend() -> bool:
    """Does a frontend that renders updated outputs watch this kernel?

    A kernel started by a Jupyter server for a notebook has ``JPY_SESSION_NAME`` in its
    environment, and JupyterLab sends the cell's id with each execute request; a plain kernel
    driven by nbclient (or terminal IPython) has neither.
    """
    if mode is not None:
        return mode == "live"
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    kernel = getattr(get_ipython(), "kernel", None)
    if kernel is None:
        return False
    if os.environ.get("JPY_SESSION_NAME"):
        return True
    try:
        parent = kernel.get_parent()
    except Exception:  # an older or unusual kernel: no way to tell, so no live output
        return False
    metadata = parent.get("metadata") if isinstance(parent, dict) else None
    return bool(isinstance(metadata, dict) and metadata.get("cellId"))


def code_so_far(reply: str) -> str:
    """The code part of a partly streamed LLM reply: inside the first ``` fence if there is one."""
    start = reply.find("```")
    if start < 0:
        return reply
    newline = reply.find("\n", start)
    if newline < 0:
        return ""
    body = reply[newline + 1 :]
    end = body.find("```")
    return body if end < 0 else body[:end]


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class ProgressView:
    """Feed it ``dataask.Event``s; call ``close()`` before showing the answer."""

    def __init__(self, live: bool | None = None, *, max_rate: float = 10.0) -> None:
        self.live = live_frontend() if live is None else live
        self.interval = 1.0 / max_rate if max_rate > 0 else 0.0
        self.stage = ""
        self.attempt = 0
        self.reply = ""  # the LLM's reply so far (token events of the current attempt)
        self.code = ""  # the code about to run (the "code" event), once known
        self._handle: Any = None
        self._shown = 0.0  # when the output was last updated
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            if event.attempt > self.attempt:  # a new attempt writes its code afresh
                self.attempt = event.attempt
                self.reply = self.code = ""
            if event.kind == "stage":
                self.stage = event.text
                if self.live:
                    self._show()
                else:
                    suffix = f" (attempt {event.attempt})" if event.attempt > 1 else ""
                    print(f"dataask: {_one_line(event.text)}{suffix}", flush=True)
            elif event.kind == "token":
                self.reply += event.text
                if self.live and time.monotonic() - self._shown >= self.interval:
                    self._show()
            elif event.kind == "code":
                self.code = event.text
                if self.live:
                    self._show()

    def close(self) -> None:
        """Empty the live output (the answer is shown next); idempotent."""
        with self._lock:
            if self._handle is not None:
                self._handle.update({}, raw=True)
                self._handle = None

    # --- the live output ----------------------------------------------------------------------
    def _show(self) -> None:
        bundle = self.bundle()
        if self._handle is None:
            from IPython.display import display

            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
        self._shown = time.monotonic()

    def bundle(self) -> dict[str, str]:
        """The output as it stands: text/plain and text/html."""
        stage = self.stage or "working"
        if self.attempt > 1:
            stage += f" (attempt {self.attempt})"
        code = self.code or code_so_far(self.reply)
        lines = code.rstrip("\n").splitlines()
        if len(lines) > MAX_CODE_LINES:
            lines = ["...", *lines[-MAX_CODE_LINES:]]
        code = "\n".join(lines)
        plain = f"dataask: {stage}" + (f"\n{code}" if code else "")
        pre = (
            '<pre style="margin:4px 0 0;padding:4px 8px;max-height:24em;overflow:auto;'
            f'opacity:0.8">{html.escape(code)}</pre>'
            if code
            else ""
        )
        rich = (
            '<div class="dataask-progress" style="font-size:90%">'
            f'<span style="opacity:0.7">dataask: {html.escape(stage)}&hellip;</span>{pre}</div>'
        )
        return {"text/plain": plain, "text/html": rich}
