"""``AnswerView``: one answer as widgets: the value, its code, and export buttons.

Tables become a ``DataTable``; a Series or grouped table also gets a chart tab; charts are plotly
``FigureWidget``s rebuilt from the JSON spec the sandbox sent; a scalar or list is a headline with
a one-line summary; a failure shows the message and the code that failed, never a traceback.
Export buttons call ``Answer.export``; the display bundle keeps the text/plain and HTML fallbacks.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w
import pandas as pd

from dataask_jupyter import render
from dataask_jupyter.errors import DataaskError
from dataask_jupyter.export import tables_of
from dataask_jupyter.results import PngImage
from dataask_jupyter.values import human_size, is_figure, to_frame
from dataask_jupyter.widgets.code import CodeView
from dataask_jupyter.widgets.table import DataTable

if TYPE_CHECKING:
    from dataask_jupyter.session import Answer

EXPORT_FORMATS = ("csv", "json", "xlsx", "png")

_CSS = """<style>
.dataask-answer-view .dataask-q{color:var(--jp-ui-font-color2,#666);
  font-family:var(--jp-ui-font-family,sans-serif);font-size:var(--jp-ui-font-size1,13px)}
.dataask-answer-view .dataask-headline{font-size:1.9em;font-weight:600;line-height:1.25;
  margin:.15em 0;color:var(--jp-content-font-color0,#111);white-space:pre-wrap;
  word-break:break-word}
.dataask-answer-view .dataask-summary{color:var(--jp-ui-font-color2,#666)}
.dataask-answer-view .dataask-error{border-left:4px solid #b00020;padding:4px 10px;
  background:rgba(176,0,32,.06);color:var(--jp-content-font-color1,#222);white-space:pre-wrap}
.dataask-answer-view .dataask-error b{color:#b00020}
.dataask-answer-view .dataask-muted{color:var(--jp-ui-font-color2,#666);font-size:90%}
.dataask-answer-view .dataask-status-ok{color:var(--jp-success-color1,#2e7d32)}
.dataask-answer-view .dataask-status-err{color:#b00020}
.dataask-answer-view details pre{white-space:pre-wrap;margin:2px 0 4px}
</style>"""


def export_filename(answer: Answer, fmt: str) -> str:
    """``answer-3-top-3-products.csv``: turn number and the question's first words."""
    words = re.findall(r"[a-z0-9]+", answer.question.lower())
    slug = ""
    for word in words:
        if len(slug) + len(word) + 1 > 40:
            break
        slug = f"{slug}-{word}" if slug else word
    return f"answer-{answer.number}" + (f"-{slug}" if slug else "") + f".{fmt}"


class AnswerView(w.VBox):
    """The widget view of an ``Answer``; ``display(AnswerView(answer))``."""

    def __init__(
        self,
        answer: Answer,
        *,
        export_dir: str | Path | None = None,
        formula_guard: bool = True,
        page_size: int = 20,
    ) -> None:
        self.answer = answer
        self.export_dir = Path(export_dir) if export_dir is not None else None
        self.formula_guard = formula_guard
        self.table: DataTable | None = None
        self.chart: Any = None
        self.figure: Any = None
        self.code_view: CodeView | None = None
        self.export_buttons: dict[str, w.Button] = {}
        self.status = w.HTML("")
        self._chart_box: w.Box | None = None
        self.view_toggle: w.ToggleButtons | None = None
        a = answer
        parts: list[w.Widget] = [
            w.HTML(f'{_CSS}<div class="dataask-q">[{a.number}] {html.escape(a.question)}</div>')
        ]
        parts.append(self._body(page_size) if a.ok else self._failure())
        if a.stdout.strip():
            parts.append(
                w.HTML(
                    "<details><summary class='dataask-muted'>printed output</summary><pre>"
                    f"{html.escape(a.stdout[-5000:])}</pre></details>"
                )
            )
        if a.code:
            self.code_view = CodeView(a.code, failed=not a.ok, expanded=not a.ok)
            parts.append(self.code_view)
        if a.ok and a.value is not None:
            parts.append(self._export_bar())
        super().__init__(children=parts)
        self.add_class("dataask-answer-view")

    # --- body ---------------------------------------------------------------------------------
    def _body(self, page_size: int) -> w.Widget:
        value = self.answer.value
        if isinstance(value, (pd.DataFrame, pd.Series)):
            self.table = DataTable(value, page_size=page_size)
            if not render.can_chart(value):
                return self.table
            self.view_toggle = w.ToggleButtons(
                options=["Table", "Chart"], value="Table", style={"button_width": "70px"}
            )
            self._chart_box = w.Box([self.table])
            self.view_toggle.observe(self._on_toggle, names="value")
            return w.VBox([self.view_toggle, self._chart_box])
        if is_figure(value):
            import plotly.graph_objects as go

            self.figure = go.FigureWidget(value)
            return self.figure
        if isinstance(value, PngImage):
            return w.Image(value=value.data, format="png")
        if isinstance(value, (dict, list, tuple)):
            tables = tables_of(value, "table")
            if len(tables) > 1:  # several tables (exported as one sheet each)
                views = [DataTable(t, page_size=page_size, caption=k) for k, t in tables.items()]
                self.table = views[0]
                return w.VBox(views)
            if isinstance(value, dict):
                self.table = DataTable(to_frame(value), page_size=page_size)
                return self.table
        if value is None:
            return w.HTML(
                '<div class="dataask-muted">No value: the code set <code>result = None</code>.'
                "</div>"
            )
        return w.HTML(self._headline_html(value))

    def _headline_html(self, value: Any) -> str:
        big, kind = render.headline(value)
        a = self.answer
        bits = [kind]
        if a.dataset:
            bits.append(f"from {a.dataset}")
        if a.repairs:
            bits.append(f"after {a.repairs} repair{'s' if a.repairs > 1 else ''}")
        if a.seconds >= 0.05:
            bits.append(f"{a.seconds:.1f} s")
        return (
            f'<div class="dataask-headline">{html.escape(big)}</div>'
            f'<div class="dataask-summary">{html.escape(" · ".join(bits))}</div>'
        )

    def _failure(self) -> w.Widget:
        a = self.answer
        tries = len(a.attempts)
        head = "Could not answer" + (f" after {tries} attempts" if tries > 1 else "")
        parts = [f'<div class="dataask-error"><b>{head}:</b> {html.escape(a.error or "")}</div>']
        earlier = [t for t in a.attempts[:-1] if t.error]
        if earlier:
            items = "".join(
                f"<li>attempt {i + 1}: {html.escape(t.error or '')}</li>"
                for i, t in enumerate(earlier)
            )
            parts.append(
                f"<details><summary class='dataask-muted'>earlier attempts</summary>"
                f"<ul>{items}</ul></details>"
            )
        return w.HTML("".join(parts))

    def _on_toggle(self, change: dict[str, Any]) -> None:
        assert self._chart_box is not None and self.table is not None
        if change["new"] == "Chart":
            self._chart_box.children = [self.show_chart()]
        else:
            self._chart_box.children = [self.table]

    def show_chart(self) -> Any:
        """The chart of a Series or grouped table (built on first use), as a ``FigureWidget``."""
        if self.chart is None:
            import plotly.graph_objects as go

            fig = render.auto_chart(self.answer.value, title=self.answer.question)
            if fig is None:
                raise DataaskError("this answer has no chart")
            self.chart = go.FigureWidget(fig)
        if self.view_toggle is not None and self.view_toggle.value != "Chart":
            self.view_toggle.value = "Chart"
        return self.chart

    # --- exports ------------------------------------------------------------------------------
    def _export_bar(self) -> w.Widget:
        for fmt in EXPORT_FORMATS:
            button = w.Button(
                description=fmt.upper(),
                tooltip=f"save this answer as {fmt.upper()}",
                layout=w.Layout(width="64px"),
            )
            button.on_click(lambda _b, fmt=fmt: self.export(fmt))
            self.export_buttons[fmt] = button
        label = w.HTML('<span class="dataask-muted">Export:</span>')
        return w.HBox([label, *self.export_buttons.values(), self.status])

    def export(self, fmt: str, path: str | Path | None = None) -> Path | None:
        """Write the answer as ``fmt`` (into ``export_dir``, default the kernel's working
        directory); the outcome shows next to the buttons. Returns the path, or None on error."""
        folder = self.export_dir if self.export_dir is not None else Path.cwd()
        target = Path(path) if path is not None else folder / export_filename(self.answer, fmt)
        self.status.value = (
            f'<span class="dataask-muted">writing {html.escape(target.name)}…</span>'
        )
        try:
            out = self.answer.export(target, formula_guard=self.formula_guard)
        except DataaskError as exc:
            self.status.value = f'<span class="dataask-status-err">{html.escape(str(exc))}</span>'
            return None
        shown = _relative(out)
        self.status.value = (
            f'<span class="dataask-status-ok">wrote {html.escape(shown)} '
            f"({human_size(out.stat().st_size)})</span>"
        )
        return out

    # --- display ------------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = super()._repr_mimebundle_(**kwargs) or {}
        bundle.update(render.fallback_bundle(self.answer))
        return bundle

    def __repr__(self) -> str:
        return render.answer_text(self.answer)


def _relative(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)
