"""The named result checks: does a result fit the question? If not, feedback for the LLM.

Each check reads the question's wording (never the data's answer), the result's shape and the
code; the first enabled check that fires is sent back once.
"""

from __future__ import annotations

import ast
import math
import numbers
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dataask_jupyter.checks.hints import norm, syntax_tree, unknown_values, value_hints
from dataask_jupyter.checks.wording import (
    CHART,
    NUMBER_WORDS,
    NUMERIC_LABEL,
    Expectation,
    expect,
)
from dataask_jupyter.errors import DataaskError
from dataask_jupyter.results import PngImage
from dataask_jupyter.values import is_figure

NONE_RESULT = (
    "`result` is None: the code probably assigned the return value of .show(), print() or an "
    "in-place method. Assign the answer itself (for a chart, the figure object)."
)


def is_missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(float(value))
    if isinstance(value, pd.DataFrame):
        return value.empty or bool(value.isna().all().all())
    if isinstance(value, pd.Series):
        return value.empty or bool(value.isna().all())
    if isinstance(value, list | tuple):
        return len(value) == 0 or all(is_missing(v) for v in value)
    return False


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool | np.bool_)


def _is_number(value: Any) -> bool:
    if isinstance(value, str):  # "6620": a number the code turned into text
        return bool(re.fullmatch(r"\s*-?\d[\d,]*(\.\d+)?\s*", value))
    return isinstance(value, numbers.Number) and not _is_bool(value)


def _uses_data(code: str) -> bool:
    """Whether the code reads any dataset (df, dfs, prev) at all."""
    tree = syntax_tree(code)
    if tree is None:
        return True
    return any(isinstance(n, ast.Name) and n.id in ("df", "dfs", "prev") for n in ast.walk(tree))


def _length(value: Any) -> int | None:
    """How many answers a value holds (rows of a table), or None for a scalar."""
    if isinstance(value, pd.DataFrame | pd.Series | list | tuple):
        return len(value)
    return None


def _describe(value: Any) -> str:
    if isinstance(value, pd.DataFrame):
        return f"a table of {len(value)} rows x {value.shape[1]} columns"
    if isinstance(value, pd.Series):
        head = ", ".join(repr(v) for v in value.head(3).tolist())
        return f"a column of {len(value)} values ({head}{', ...' if len(value) > 3 else ''})"
    if isinstance(value, list | tuple):
        head = ", ".join(repr(v) for v in list(value)[:3])
        return f"a list of {len(value)} values ([{head}{', ...' if len(value) > 3 else ''}])"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class Result:
    """What a result check looks at: the question, the value, the code and the dataset."""

    question: str
    value: Any
    code: str
    frame: pd.DataFrame | None
    expectation: Expectation


@dataclass(frozen=True)
class Misfit:
    """A named check that fired, and its feedback for the LLM."""

    check: str
    text: str


def _check_none(r: Result) -> str | None:
    return NONE_RESULT if r.value is None else None


def _check_chart(r: Result) -> str | None:
    if CHART.search(r.question) and not (is_figure(r.value) or isinstance(r.value, PngImage)):
        return (
            f"The question asks for a chart, but the result is {_describe(r.value)}. Assign a "
            "plotly figure to `result`, e.g. result = px.line(prev, x=..., y=...)."
        )
    return None


def _check_computed(r: Result) -> str | None:
    if r.code and r.frame is not None and not _uses_data(r.code):
        return (
            "The code never reads df: it states an answer instead of computing it. "
            "Compute the answer from df."
        )
    return None


def _check_empty(r: Result) -> str | None:
    if not is_missing(r.value):
        return None
    text = (
        f"The result is empty or missing ({_describe(r.value)}): a filter in the code probably "
        "matched no rows, or compared against a value the column does not hold."
    )
    hints = value_hints(r.code, r.frame) if r.frame is not None else []
    if hints:
        text += " " + " ".join(hints)
    return text + " Fix the code so it finds the rows the question means."


def _check_values(r: Result) -> str | None:
    """A whole value the code matches that its column never holds (and the question never
    names): that filter matches no rows, and a sum or a test over it says 0 or False."""
    hints = unknown_values(r.code, r.frame, r.question) if r.frame is not None else []
    if not hints:
        return None
    return (
        "The code matches a value its column never holds, so that filter matches no rows. "
        + " ".join(hints)
        + " Match the values the column holds."
    )


def _check_yes_no(r: Result) -> str | None:
    if r.expectation.kind != "boolean" or _is_bool(r.value) or _one_bool(r.value):
        return None
    value = r.value
    if isinstance(value, pd.Series | np.ndarray | list | tuple) and _all_bools(value):
        return (
            f"The question asks yes or no, but the result is {_describe(value)}, one per "
            "row. Reduce it to one True/False with .any() or .all()."
        )
    return (
        f"The question asks yes or no, but the result is {_describe(value)}. "
        "Assign one True/False to `result` (a comparison, .any() or .all())."
    )


def _check_row_labels(r: Result) -> str | None:
    rows = _row_labels(r.value, r.code, r.frame)
    if not rows:
        return None
    return (
        f"The result holds row numbers of df ({rows}), not values from the table: "
        ".index / .idxmax() of a column give row labels. Take the column you need from "
        'those rows, e.g. df.loc[df["X"].idxmax(), "Name"] or '
        'df.nlargest(3, "X")["Name"].tolist().'
    )


def _check_label(r: Result) -> str | None:
    if r.expectation.kind == "label" and _is_bool(r.value):
        return (
            f"The question asks which/who (a name or label), but the result is {r.value!r}. "
            "Return the label of the matching row or group, not a True/False test."
        )
    if (
        r.expectation.kind == "label"
        and _is_number(r.value)
        and not _numeric_label(r.question)
        and not _text_value(r.value, r.frame)
    ):
        return (
            f"The question asks which/who (a name or label), but the result is the number "
            f"{_describe(r.value)}. Return the label of the matching row or group, e.g. "
            'df.loc[df["X"].idxmax(), "Name"] or series.idxmax(), not the measured value.'
        )
    return None


_ASKS_COUNTS = re.compile(
    r"\b(?:counts?|how many|number of|times|frequenc(?:y|ies)|occurrences?|proportions?|"
    r"percent(?:ages?)?|share)\b",
    re.I,
)


_FROM_INDEX = re.compile(r"\.index\b|\.idxm(?:ax|in)\(|\.keys\(|reset_index\(|\.items\(")


def _counts(value: Any, code: str) -> bool:
    """Whether a result is value_counts() itself: its Series, or numbers from code that
    counts values and never takes the values counted (its index)."""
    if isinstance(value, pd.Series) and value.name in ("count", "proportion"):
        return True
    if "value_counts(" not in code or _FROM_INDEX.search(code):
        return False
    items = list(value) if isinstance(value, list | tuple | pd.Series | np.ndarray) else [value]
    return bool(items) and all(_is_number(x) for x in items)


def _check_counts(r: Result) -> str | None:
    """value_counts() itself where the question asks for the values it counts."""
    if r.expectation.kind not in ("list", "label") or _ASKS_COUNTS.search(r.question):
        return None
    if not _counts(r.value, r.code):
        return None
    v = r.value
    return (
        f"The result is how often each value occurs ({_describe(v)}, from value_counts()), but "
        "the question asks for the values themselves: take them from the index, e.g. "
        ".value_counts().head(3).index.tolist(), or .idxmax() for the most common one."
    )


def _check_direction(r: Result) -> str | None:
    return _wrong_direction(r.question, r.code)


def _check_closest(r: Result) -> str | None:
    target = _closest_target(r.question)
    if target is None or ("abs" in r.code and target in _numbers_in(r.code)):
        return None
    n = f"{target:g}"
    return (
        f"The question asks for what is closest to {n}: the smallest absolute difference from "
        f'{n}, e.g. df.loc[(df["X"] - {n}).abs().idxmin(), "Name"], or for several, '
        f'df.loc[(df["X"] - {n}).abs().nsmallest(5).index, "X"].tolist().'
    )


def _check_single(r: Result) -> str | None:
    """Rows added up across the very thing the question asks about one of ("in a single
    season", "in one game")."""
    found = _summed_across(r.question, r.code)
    if not found:
        return None
    unit, keys = found
    return (
        f"The question asks about a single {unit}: each value must come from one {unit}, but "
        f"the code adds rows up across {unit}s (groupby({keys}) and then an aggregate). If each "
        f"row of df is already one {unit}, take the values from the rows as they are (e.g. "
        f'df.nlargest(3, "X")["X"].tolist(), or ["Name"] for who); otherwise group by the '
        f"column that tells the {unit}s apart as well."
    )


def _check_names(r: Result) -> str | None:
    names = _names_expected(r.question, r.expectation, r.value, r.frame)
    if not names:
        return None
    return (
        f'The question asks for {names[0]} (column "{names[1]}" holds them), but the result '
        f'is {_describe(r.value)}. Return values of df["{names[1]}"] for the rows meant.'
    )


def _check_second(r: Result) -> str | None:
    if (
        not _SECOND.search(r.question)
        or _SECOND_CODE.search(r.code)
        or _length(r.value) is not None
    ):
        return None
    if r.expectation.kind == "boolean" and 2 in _numbers_in(r.code):
        return None  # "Is X ranked second?": a test against 2 takes no top one
    return (
        "The question asks for the second one, but the code takes the top one. Take the "
        'second with e.g. df.nlargest(2, "X").iloc[1]["Name"] or '
        "series.sort_values(ascending=False).index[1]."
    )


def _check_count(r: Result) -> str | None:
    exp = r.expectation
    if exp.kind != "list" or exp.count is None:
        return None
    n = _length(r.value)
    have = 1 if n is None else n
    if have == exp.count or (exp.at_most and 0 < have <= exp.count):
        return None
    if 1 < have < exp.count and _every_value_of_a_column(r.value, r.frame):
        return None  # "the top 5 categories" of a column that has 3: all 3 are the answer
    return (
        f"The question asks for {exp.count} values, but the result is {_describe(r.value)}. "
        f"For the top or bottom {exp.count} rows by a column use "
        f'df.nlargest({exp.count}, "X")["Y"].tolist() or df.nsmallest(...); '
        "do not filter on the single maximum or minimum first."
    )


# The result checks by name, in the order they are tried; the first that fires is sent back.
# `Ask.result_checks` switches them all (True / False) or names the ones to use.
CHECKS: dict[str, Callable[[Result], str | None]] = {
    "none": _check_none,
    "chart": _check_chart,
    "computed": _check_computed,
    "empty": _check_empty,
    "values": _check_values,
    "yes_no": _check_yes_no,
    "row_labels": _check_row_labels,
    "label": _check_label,
    "counts": _check_counts,
    "direction": _check_direction,
    "closest": _check_closest,
    "single": _check_single,
    "names": _check_names,
    "second": _check_second,
    "count": _check_count,
}


def enabled_checks(setting: bool | Sequence[str]) -> tuple[str, ...]:
    """The check names a ``result_checks`` setting turns on (unknown names: DataaskError)."""
    if setting is True:
        return tuple(CHECKS)
    if setting is False:
        return ()
    names = tuple(str(n) for n in setting)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise DataaskError(
            f"unknown result check(s) {', '.join(map(repr, unknown))} in Ask.result_checks; "
            f"known: {', '.join(CHECKS)}"
        )
    return tuple(n for n in CHECKS if n in names)


def misfit(
    question: str,
    value: Any,
    code: str,
    frame: pd.DataFrame | None = None,
    expectation: Expectation | None = None,
    *,
    checks: Sequence[str] | None = None,
) -> Misfit | None:
    """The first enabled check (all by default) that finds ``value`` does not fit ``question``."""
    result = Result(
        question, value, code, frame, expectation if expectation is not None else expect(question)
    )
    for name in CHECKS if checks is None else checks:
        text = CHECKS[name](result)
        if text:
            return Misfit(name, text)
    return None


def feedback(
    question: str,
    value: Any,
    code: str,
    frame: pd.DataFrame | None = None,
    expectation: Expectation | None = None,
) -> str | None:
    """Why ``value`` does not fit ``question`` (one short paragraph for the LLM), or None."""
    found = misfit(question, value, code, frame, expectation)
    return found.text if found else None


_SECOND = re.compile(r"\b(?:second|2nd)\b(?![- ]*(?:half|hand|time|s\b))", re.I)
_SECOND_CODE = re.compile(
    r"\[\s*(?:1|-2)\s*\]|\biloc\[\s*(?:1|-2)\b|\b(?:nlargest|nsmallest|head|tail)\(\s*2\b|"
    r"\[\s*1\s*:|\bsecond\b|\bdrop\(",
    re.I,
)
_AGGREGATING = re.compile(
    r"\b(?:groupby|value_counts|set_index|pivot|pivot_table|crosstab|unique|mode|"
    r"reset_index|index\.name|columns)\b"
)
_INDEX_END = re.compile(
    r"(?:\.index(?:\.(?:tolist|to_list)\(\)|\.values|\[[^\]]*\])?|\.idx(?:max|min)\(\))"
    r"(?:\.(?:tolist|to_list)\(\))?\s*$"
)


_LOW = re.compile(r"\b(?:lowest|smallest|least|fewest|cheapest|minimum|bottom|youngest|"
                  r"shortest|worst)\b", re.I)  # fmt: skip
_HIGH = re.compile(r"\b(?:highest|largest|most|greatest|biggest|maximum|top|best|oldest|"
                   r"longest|priciest|expensive)\b", re.I)  # fmt: skip
_TAKES_HIGH = re.compile(r"\.nlargest\(|\.idxmax\(|ascending\s*=\s*False")
_TAKES_LOW = re.compile(r"\.nsmallest\(|\.idxmin\(|ascending\s*=\s*True")
_ENTITY_AFTER = re.compile(
    r"^(?:list|name|which|who|what are)\b(?:\s+(?:all|the|of|top|first|last|\d+|"
    + "|".join(NUMBER_WORDS)
    + r"|different|unique|distinct))*\s+([a-z][\w-]*)",
    re.I,
)


_RANK = r"""["'][^"']*rank[^"']*["']"""  # a column named for a rank, quoted
_RANK_HIGH = re.compile(
    r"\[\s*" + _RANK + r"\s*\]\s*\.(?:idxmax|nlargest)\(|"
    r"nlargest\(\s*\w+\s*,\s*" + _RANK + "|"
    r"sort_values\(\s*(?:by\s*=\s*)?\[?\s*" + _RANK + r"[^)]*ascending\s*=\s*False",
    re.I,
)
_ANY_WORDS = re.compile(r"\b(?:any|anyone|anybody|anything|is there|are there)\b", re.I)
_ALL_WORDS = re.compile(r"\b(?:all|every|each|everyone|always|none|no one)\b", re.I)


def _wrong_direction(question: str, code: str) -> str | None:
    """Feedback when the question asks for the lowest and the code takes the largest (or back)."""
    if _RANK_HIGH.search(code) and re.search(r"\b(?:top|best|first|highest)\b", question, re.I):
        return (
            "A rank of 1 is the top: the best-ranked rows have the smallest rank. Use "
            "idxmin / nsmallest / an ascending sort on the rank column."
        )
    if (
        _ANY_WORDS.search(question)
        and not _ALL_WORDS.search(question)
        and re.search(r"\.all\(\)\s*\)?\s*$", _result_expression(code) or "")
    ):
        return "The question asks whether any row matches: use .any(), not .all()."
    if re.search(r"""["'][^"']*rank[^"']*["']""", code, re.I):
        return None  # on a rank, the top is the smallest: directions do not apply
    low, high = bool(_LOW.search(question)), bool(_HIGH.search(question))
    takes_high, takes_low = bool(_TAKES_HIGH.search(code)), bool(_TAKES_LOW.search(code))
    if low and not high and takes_high and not takes_low:
        return (
            "The question asks for the lowest/smallest, but the code takes the largest "
            "(nlargest, idxmax or a descending sort). Use nsmallest / idxmin / an ascending sort."
        )
    if high and not low and takes_low and not takes_high:
        return (
            "The question asks for the highest/largest, but the code takes the smallest "
            "(nsmallest, idxmin or an ascending sort). Use nlargest / idxmax / a descending sort."
        )
    return None


_CLOSEST = re.compile(
    r"\b(?:closest|nearest)\s+(?:to\s+)?(?:the\s+value\s+(?:of\s+)?)?(-?\d[\d,]*(?:\.\d+)?)\b",
    re.I,
)


def _closest_target(question: str) -> float | None:
    """The number a question asks for the values closest to ("closest to 80"), if any."""
    m = _CLOSEST.search(question)
    return float(m.group(1).replace(",", "")) if m else None


def _numbers_in(code: str) -> set[float]:
    """The number literals of ``code``."""
    tree = syntax_tree(code)
    if tree is None:
        return set()
    return {
        float(n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant)
        and isinstance(n.value, int | float)
        and not isinstance(n.value, bool)
    }


_SINGLE = re.compile(
    r"\b(?:in|during|within|for|of|over)\s+(?:a\s+|any\s+)?(?:single|given|one|particular)\s+"
    r"(?:given\s+)?([a-z]{3,})",
    re.I,
)
_SUMS = re.compile(r"\.(?:sum|mean|size|count|agg|aggregate)\(")
# group keys that tell periods apart: grouping by one of them keeps "one season" apart
_PERIOD_KEYS = ("year", "date", "time", "period", "season", "month", "week", "day")


def _summed_across(question: str, code: str) -> tuple[str, str] | None:
    """(unit, keys) when the question asks about one unit ("in a single season") and the code
    groups by keys none of which names that unit or a period, then aggregates."""
    m = _SINGLE.search(question)
    if not m or not _SUMS.search(code):
        return None
    unit = m.group(1).lower()
    unit = unit[:-1] if unit.endswith("s") and not unit.endswith("ss") else unit
    groups = _group_keys(code)
    if not groups:
        return None
    for keys in groups:
        names = [norm(k) for k in keys]
        if not names or any(norm(unit) in k or any(p in k for p in _PERIOD_KEYS) for k in names):
            return None
    return unit, ", ".join(repr(k) for k in groups[0])


def _group_keys(code: str) -> list[list[str]]:
    """The quoted column names of each ``.groupby(...)`` call in ``code`` (by= included)."""
    tree = syntax_tree(code)
    if tree is None:
        return []
    found = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "groupby"
        ):
            continue
        args = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "by")]
        found.append(
            [
                c.value
                for a in args
                for c in ast.walk(a)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            ]
        )
    return found


def _names_expected(
    question: str, exp: Expectation, value: Any, frame: pd.DataFrame | None
) -> tuple[str, str] | None:
    """(noun, column) when a list/which question names a text column's things but got numbers."""
    if frame is None or exp.kind not in ("list", "label"):
        return None
    items = list(value) if isinstance(value, list | tuple) else [value]
    if not items or not all(_is_number(v) for v in items):
        return None
    m = _ENTITY_AFTER.search(" ".join(question.split()))
    if not m:
        return None
    noun = m.group(1).lower()
    stems = {
        noun,
        noun[:-1] if noun.endswith("s") else noun,
        noun[:-2] if noun.endswith("es") else noun,
    }
    for c in frame.columns:
        col = frame[c]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_datetime64_any_dtype(col):
            continue
        if norm(str(c)) in {norm(x) for x in stems}:
            held = set(col.dropna().astype(str).iloc[:200_000])
            if all(str(v) in held for v in items):  # IDs that look like numbers
                return None
            return noun, str(c)
    return None


_ASKED_THING = re.compile(
    r"\b(?:which|what|(?:most|least)\s+(?:common|frequent|popular))\s+(\w+)(?:\s+(\w+))?", re.I
)


def _numeric_label(question: str) -> bool:
    """Whether a "which ..." or "the most common ..." question asks for something a number
    names ("which year", "the most common age")."""
    words = [w for m in _ASKED_THING.finditer(question) for w in m.groups() if w]
    return any(NUMERIC_LABEL.fullmatch(w) for w in words)


def _text_value(value: Any, frame: pd.DataFrame | None, rows: int = 200_000) -> bool:
    """Whether a number is also a label: one of the values of a text column ("483" as an ID)."""
    if frame is None:
        return False
    text = str(value).strip()
    for c in frame.columns:
        col = frame[c]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_datetime64_any_dtype(col):
            continue
        if (col.iloc[:rows].dropna().astype(str).str.strip() == text).any():
            return True
    return False


def _row_labels(value: Any, code: str, frame: pd.DataFrame | None) -> str | None:
    """The row labels a result holds when the code returned df's index instead of values."""
    if frame is None or not isinstance(frame.index, pd.RangeIndex):
        return None
    expr = _result_expression(code)
    if not expr or _AGGREGATING.search(expr) or not _INDEX_END.search(expr):
        return None
    items = list(value) if isinstance(value, list | tuple) else [value]
    if not items or not all(isinstance(v, numbers.Integral) and not _is_bool(v) for v in items):
        return None
    if not all(0 <= int(v) < len(frame) for v in items):
        return None
    return ", ".join(str(v) for v in items[:5]) + (", ..." if len(items) > 5 else "")


def _result_expression(code: str) -> str | None:
    """The source of the last ``result = ...`` statement."""
    tree = syntax_tree(code)
    if tree is None:
        return None
    for node in reversed(tree.body):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "result" for t in node.targets
        ):
            return ast.get_source_segment(code, node.value)
    return None


def _every_value_of_a_column(value: Any, frame: pd.DataFrame | None, rows: int = 200_000) -> bool:
    """Whether a list holds exactly the distinct values of one of ``frame``'s columns."""
    if frame is None or not isinstance(value, list | tuple | pd.Series | np.ndarray):
        return False
    items = {str(v) for v in value}
    for c in frame.columns:
        held = pd.unique(frame[c].iloc[:rows].dropna())
        if len(held) == len(items) and {str(v) for v in held} == items:
            return True
    return False


def _one_bool(value: Any) -> bool:
    """A container of a single True/False (``[True]``): one answer, as good as ``True``."""
    if not isinstance(value, pd.Series | np.ndarray | list | tuple) or len(value) != 1:
        return False
    item = value.iloc[0] if isinstance(value, pd.Series) else value[0]
    return _is_bool(item)


def _all_bools(value: Any) -> bool:
    items = value.tolist() if isinstance(value, pd.Series | np.ndarray) else list(value)
    return len(items) > 1 and all(_is_bool(v) for v in items)
