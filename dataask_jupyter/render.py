"""Rendering for now: plain rich reprs of the value plus the code, folded (widgets come later).

Everything user- or LLM-controlled is HTML-escaped; a ``text/plain`` fallback is always there.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from dataask_jupyter.session import Answer


def value_text(value: Any, max_rows: int = 20) -> str:
    if isinstance(value, (pd.DataFrame, pd.Series)):
        with pd.option_context(
            "display.max_rows", max_rows, "display.max_columns", 20, "display.width", 120
        ):
            return str(value)
    if hasattr(value, "to_plotly_json"):
        from dataask_jupyter.results import summarize

        return summarize(value)
    return repr(value) if not isinstance(value, str) else value


def answer_text(a: Answer) -> str:
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


def _value_html(value: Any) -> str:
    if isinstance(value, pd.DataFrame):
        return value.to_html(max_rows=20, max_cols=20, escape=True, border=0)
    if isinstance(value, pd.Series):
        return value.to_frame().to_html(max_rows=20, escape=True, border=0)
    if hasattr(value, "to_plotly_json"):
        return "<div><i>chart shown above</i></div>"
    if hasattr(value, "_repr_png_"):
        import base64

        data = base64.b64encode(value._repr_png_()).decode()
        return f'<img src="data:image/png;base64,{data}" alt="chart"/>'
    return f'<div class="dataask-scalar"><b>{html.escape(value_text(value))}</b></div>'


def answer_mimebundle(a: Answer) -> dict[str, Any]:
    """``text/plain`` always, ``text/html`` for notebooks; charts also as plotly JSON."""
    bundle: dict[str, Any] = {"text/plain": answer_text(a)}
    parts = [
        f'<div class="dataask-answer"><div><small>[{a.number}] '
        f"{html.escape(a.question)}</small></div>"
    ]
    if a.ok:
        parts.append(_value_html(a.value))
    else:
        parts.append(
            f'<div class="dataask-error" style="color:#b00020">{html.escape(a.error or "")}</div>'
        )
    if a.code:
        label = "code" if a.ok else "code that failed"
        parts.append(
            f"<details><summary>{label}</summary><pre><code>"
            f"{html.escape(a.code)}</code></pre></details>"
        )
    parts.append("</div>")
    bundle["text/html"] = "".join(parts)
    return bundle


def display_answer(a: Answer) -> None:
    """Show an answer in the notebook: a chart through plotly's own renderer, then the answer."""
    from IPython.display import display

    if a.ok and hasattr(a.value, "to_plotly_json"):
        display(a.value)
    display(a)
