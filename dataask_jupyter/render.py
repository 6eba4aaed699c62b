"""The render stage: how an answer looks, as text, as HTML and (in a widget frontend) as widgets.

``display_answer`` is what the magics call. With a kernel and ``ipywidgets`` + ``anywidget``
installed it shows the widget view (``dataask_jupyter.widgets.AnswerView``); every bundle also
carries ``text/plain`` (headless runs, nbval) and ``text/html`` (nbconvert, saved notebooks).
Everything user- or LLM-controlled is HTML-escaped. Cell formatting comes from
``dataask_jupyter.values`` (shared with the exporter); the automatic chart of a Series lives here.
"""

from __future__ import annotations

import datetime as _dt
import html
import numbers
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from dataask_jupyter.results import summarize
from dataask_jupyter.values import (
    MAX_CELL_CHARS,
    format_cell,
    format_number,
    is_figure,
    is_null,
)

if TYPE_CHECKING:
    from dataask_jupyter.session import Answer

__all__ = [
    "MAX_CELL_CHARS",
    "answer_mimebundle",
    "answer_text",
    "auto_chart",
    "can_chart",
    "display_answer",
    "format_cell",
    "headline",
    "is_figure",
    "value_text",
    "widgets_enabled",
]

#: ``None``: widgets when a kernel and the widget packages are there; ``True``/``False`` forces.
use_widgets: bool | None = None
#: Series/tables up to this many rows get an automatic chart.
MAX_CHART_ROWS = 5_000

PLOTLY_MIME = "application/vnd.plotly.v1+json"


# --- values as text ---------------------------------------------------------------------------
def _noun(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "a yes/no answer"
    if isinstance(value, numbers.Number):
        return "a number"
    if isinstance(value, str):
        return "a text"
    if isinstance(value, (list, tuple)):
        n = len(value)
        return f"a list of {n:,} item{'s' if n != 1 else ''}"
    if isinstance(value, (pd.Timestamp, _dt.date, _dt.datetime)):
        return "a date"
    return f"a {type(value).__name__}"


def headline(value: Any, max_items: int = 12) -> tuple[str, str]:
    """``(headline, kind)`` for a scalar or list answer, e.g. ``("1,234.50", "a number")``."""
    if isinstance(value, (list, tuple)):
        items = [headline(v)[0] for v in value[:max_items]]
        more = len(value) - len(items)
        text = ", ".join(items) + (f", … (+{more:,} more)" if more > 0 else "")
        return text or "(empty list)", _noun(value)
    if is_null(value):
        return "no value (null)", "a missing value"
    if isinstance(value, (numbers.Number, np.bool_)):
        return format_number(value), _noun(value)
    if isinstance(value, (pd.Timestamp, _dt.date)):
        return format_cell(value, date_only=value == pd.Timestamp(value).normalize()) or "", _noun(
            value
        )
    text = value if isinstance(value, str) else str(value)
    if len(text) > 2000:
        text = text[:1999] + "…"
    return text, _noun(value)


def value_text(value: Any, max_rows: int = 20) -> str:
    if isinstance(value, (pd.DataFrame, pd.Series)):
        with pd.option_context(
            "display.max_rows", max_rows, "display.max_columns", 20, "display.width", 120
        ):
            return str(value)
    if is_figure(value):
        return summarize(value)
    return repr(value) if not isinstance(value, str) else value


def answer_text(a: Answer) -> str:
    """The plain-text view: question, value (or error), code. Never a traceback."""
    lines = [f"[{a.number}] {a.question}"]
    if a.ok:
        lines.append(value_text(a.value))
    else:
        lines.append(f"Error: {a.error}")
    if a.code:
        lines += [
            "",
            "code:" if a.ok else "code that failed:",
            *("    " + ln for ln in a.code.splitlines()),
        ]
    if a.repairs:
        lines.append(f"({a.repairs} repair{'s' if a.repairs > 1 else ''})")
    return "\n".join(lines)


# --- HTML fallback ----------------------------------------------------------------------------
_STYLE = (
    "<style>.dataask-answer{font-family:var(--jp-ui-font-family,sans-serif)}"
    ".dataask-answer .dataask-q{color:var(--jp-ui-font-color2,#666);font-size:90%}"
    ".dataask-answer .dataask-headline{font-size:1.6em;font-weight:600;margin:.2em 0}"
    ".dataask-answer .dataask-error{color:#b00020;white-space:pre-wrap}</style>"
)


def _value_html(value: Any) -> str:
    if isinstance(value, pd.DataFrame):
        return value.to_html(max_rows=20, max_cols=20, escape=True, border=0)
    if isinstance(value, pd.Series):
        return value.to_frame().to_html(max_rows=20, escape=True, border=0)
    if is_figure(value):
        return f"<div><i>{html.escape(value_text(value))}</i></div>"
    if hasattr(value, "_repr_png_"):
        import base64

        data = base64.b64encode(value._repr_png_()).decode()
        return f'<img src="data:image/png;base64,{data}" alt="chart"/>'
    if value is None:
        return "<div><i>no value (the code set result = None)</i></div>"
    big, kind = headline(value)
    return (
        f'<div class="dataask-headline">{html.escape(big)}</div>'
        f"<div><small>{html.escape(kind)}</small></div>"
    )


def answer_html(a: Answer) -> str:
    """The HTML fallback (nbconvert, saved notebooks): deterministic, escaped."""
    parts = [
        _STYLE,
        f'<div class="dataask-answer"><div class="dataask-q">[{a.number}] '
        f"{html.escape(a.question)}</div>",
    ]
    if a.ok:
        parts.append(_value_html(a.value))
    else:
        parts.append(f'<div class="dataask-error">{html.escape(a.error or "")}</div>')
    if a.code:
        label = "code" if a.ok else "code that failed"
        parts.append(
            f"<details><summary>{label}</summary><pre><code>"
            f"{html.escape(a.code)}</code></pre></details>"
        )
    parts.append("</div>")
    return "".join(parts)


def fallback_bundle(a: Answer, chart: bool = True) -> dict[str, Any]:
    """``text/plain`` + ``text/html``, and (``chart``) a figure as plotly JSON."""
    bundle: dict[str, Any] = {"text/plain": answer_text(a), "text/html": answer_html(a)}
    if chart and a.ok and is_figure(a.value):
        bundle[PLOTLY_MIME] = plotly_json(a.value)
    return bundle


def plotly_json(fig: Any) -> dict[str, Any]:
    import json

    import plotly.io as pio

    spec: dict[str, Any] = json.loads(pio.to_json(fig, validate=False))
    spec.setdefault("config", {"responsive": True})
    return spec


def widgets_enabled() -> bool:
    """Show widgets? Only inside a kernel, with ipywidgets and anywidget importable."""
    if use_widgets is not None:
        return use_widgets
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        return False
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    try:
        import anywidget  # noqa: F401
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def answer_mimebundle(a: Answer, widgets: bool | None = None) -> dict[str, Any]:
    """The answer's display bundle: the widget view when widgets are on, and the fallbacks."""
    if widgets if widgets is not None else widgets_enabled():
        from dataask_jupyter.widgets import AnswerView

        return AnswerView(a)._repr_mimebundle_()
    return fallback_bundle(a)


def display_answer(a: Answer, settings: Any = None) -> None:
    """Show an answer in the notebook (what ``%%ask`` calls): the widget view when widgets are
    on; otherwise a chart through plotly's own renderer, then the text/HTML answer.

    ``settings`` (the session's ``Ask``) supplies ``formula_guard`` for the export buttons.
    """
    from IPython.display import display

    if widgets_enabled():
        from dataask_jupyter.widgets import AnswerView

        guard = bool(getattr(settings, "formula_guard", True))
        display(AnswerView(a, formula_guard=guard))
        return
    if a.ok and is_figure(a.value):
        display(a.value)
    display(fallback_bundle(a, chart=False), raw=True)


# --- automatic charts -------------------------------------------------------------------------
def _label_index(idx: pd.Index) -> pd.Index:
    if isinstance(idx, pd.MultiIndex):
        return pd.Index([" / ".join(str(p) for p in t) for t in idx])
    return idx


def _chart_source(value: Any) -> tuple[pd.Index, pd.DataFrame, str] | None:
    """``(x, numeric columns, x title)`` when ``value`` reads as one series over labels."""
    if isinstance(value, pd.Series):
        if not ptypes.is_numeric_dtype(value.dtype) or ptypes.is_bool_dtype(value.dtype):
            return None
        name = "value" if value.name is None else str(value.name)
        return value.index, value.to_frame(name), _index_title(value.index)
    if not isinstance(value, pd.DataFrame) or value.empty:
        return None
    numeric = [
        c
        for c in value.columns
        if ptypes.is_numeric_dtype(value[c].dtype) and not ptypes.is_bool_dtype(value[c].dtype)
    ]
    others = [c for c in value.columns if c not in numeric]
    if not numeric:
        return None
    default_index = isinstance(value.index, pd.RangeIndex)
    if default_index and len(others) == 1:
        x = pd.Index(value[others[0]])
        return x, value[numeric[:10]], str(others[0])
    if not default_index and not others:
        return value.index, value[numeric[:10]], _index_title(value.index)
    return None


def _index_title(idx: pd.Index) -> str:
    names = [str(n) for n in idx.names if n is not None]
    return " / ".join(names)


def can_chart(value: Any) -> bool:
    """Whether ``auto_chart`` would draw ``value`` (cheap: builds nothing)."""
    if isinstance(value, (pd.DataFrame, pd.Series)) and not 1 <= len(value) <= MAX_CHART_ROWS:
        return False
    return _chart_source(value) is not None


def auto_chart(value: Any, title: str = "") -> Any:
    """A plotly figure for a Series or a grouped table (labels + numbers); ``None`` otherwise.

    Dates on the x axis give a line chart, labels a bar chart. The figure is built in the kernel
    from the answer's data only: no generated code runs here.
    """
    if not can_chart(value):
        return None
    src = _chart_source(value)
    assert src is not None
    x, frame, x_title = src
    import plotly.graph_objects as go

    timeline = ptypes.is_datetime64_any_dtype(x.dtype) or isinstance(x, pd.PeriodIndex)
    xs = x.to_timestamp() if isinstance(x, pd.PeriodIndex) else _label_index(x)
    fig = go.Figure()
    for col in frame.columns:
        ys = frame[col].to_numpy()
        if timeline or (len(frame) > 60 and ptypes.is_numeric_dtype(xs.dtype)):
            fig.add_trace(go.Scatter(x=list(xs), y=ys, mode="lines", name=str(col)))
        else:
            fig.add_trace(go.Bar(x=[str(v) for v in xs], y=ys, name=str(col)))
    fig.update_layout(
        title=title or None,
        xaxis_title=x_title or None,
        yaxis_title=str(frame.columns[0]) if frame.shape[1] == 1 else None,
        showlegend=frame.shape[1] > 1,
        margin={"l": 60, "r": 20, "t": 50 if title else 20, "b": 60},
        height=380,
    )
    return fig
