"""Hints for the LLM from the kernel's copy of the data: what filtered columns really hold, and
pointers for common pandas slips in a failed run's error. No code runs for them."""

from __future__ import annotations

import ast
import difflib
import functools
import re
from collections.abc import Sequence

import pandas as pd

__all__ = ["error_hint", "norm", "syntax_tree", "unknown_values", "value_hints"]

# --------------------------------------------------------------------------------------------
# what the filtered columns really hold


@functools.lru_cache(maxsize=64)
def syntax_tree(code: str) -> ast.Module | None:
    """``code`` parsed once for every check that reads it (None where it does not parse).
    Callers only read the tree."""
    try:
        return ast.parse(code)
    except SyntaxError:
        return None


def norm(name: str) -> str:
    """A column name reduced to lower-case letters and digits, for loose matching."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


_EXACT_CALLS = ("isin", "eq")
_PATTERN_CALLS = ("contains", "startswith", "endswith", "match")


def _literal_comparisons(code: str, *, exact: bool = False) -> list[tuple[str, object]]:
    """(column, literal) pairs the code compares: x["col"] == lit, x["col"].isin([...]), ...
    (with ``exact``, only the comparisons that need a whole value: ==, !=, isin, eq)."""
    tree = syntax_tree(code)
    if tree is None:
        return []
    pairs: list[tuple[str, object]] = []

    def column(node: ast.AST) -> str | None:
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            return node.slice.value
        if isinstance(node, ast.Attribute) and node.attr not in ("str", "dt"):
            base = node.value
            if isinstance(base, ast.Name | ast.Subscript | ast.Call):
                return node.attr
        if isinstance(node, ast.Attribute) and node.attr in ("str", "dt"):
            return column(node.value)
        return None

    def literals(node: ast.AST) -> list[object]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float):
            return [node.value]
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            return [e.value for e in node.elts if isinstance(e, ast.Constant)]
        return []

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            if isinstance(node.ops[0], ast.Eq | ast.NotEq) or (
                isinstance(node.ops[0], ast.In) and not exact
            ):
                left, right = node.left, node.comparators[0]
                for a, b in ((left, right), (right, left)):
                    col = column(a)
                    if col is not None:
                        pairs += [(col, lit) for lit in literals(b)]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in (_EXACT_CALLS if exact else _EXACT_CALLS + _PATTERN_CALLS)
        ):
            col = column(node.func.value)
            if col is not None and node.args:
                pairs += [(col, lit) for lit in literals(node.args[0])]
    return pairs


def value_hints(code: str, frame: pd.DataFrame, per_column: int = 6) -> list[str]:
    """One sentence per filtered column (at most 3) that lacks the value the code compares it
    with: what the column holds instead, near that value first."""
    return _hints(_literal_comparisons(code), frame, per_column)


def unknown_values(code: str, frame: pd.DataFrame, question: str) -> list[str]:
    """:func:`value_hints` for the text values the code needs whole (==, !=, isin) that their
    text column never holds; values the question itself quotes, and columns the code
    rewrites first, are left out."""
    asked = f" {_words(question)} "
    rewritten = _assigned_columns(code)
    pairs = []
    for name, literal in _literal_comparisons(code, exact=True):
        if not isinstance(literal, str) or name in rewritten:
            continue
        if name in frame.columns and not _is_text(frame[name]):
            continue
        words = _words(literal)
        if words and f" {words} " in asked:
            continue
        pairs.append((name, literal))
    return _hints(pairs, frame)


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def _is_text(col: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_datetime64_any_dtype(col))


def _assigned_columns(code: str) -> set[str]:
    """Columns the code assigns to (df["c"] = ..., df.c = ...)."""
    tree = syntax_tree(code)
    if tree is None:
        return set()
    found = set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else []
        for t in targets:
            if isinstance(t, ast.Subscript) and isinstance(t.slice, ast.Constant):
                found.add(str(t.slice.value))
            elif isinstance(t, ast.Attribute):
                found.add(t.attr)
    return found


def _hints(
    pairs: Sequence[tuple[str, object]], frame: pd.DataFrame, per_column: int = 6
) -> list[str]:
    hints: list[str] = []
    seen: set[str] = set()
    columns = {str(c): c for c in frame.columns}
    for name, literal in pairs:
        if name not in columns or name in seen or len(seen) >= 3:
            continue
        col = frame[columns[name]]
        if pd.api.types.is_numeric_dtype(col) and isinstance(literal, int | float):
            continue  # a number against numbers: nothing useful to suggest
        values = [str(v) for v in pd.unique(col.dropna())[:20_000]]
        if not values or str(literal) in values:
            continue
        seen.add(name)
        want = str(literal).lower()
        near = [v for v in values if want in v.lower()][:per_column]
        for v in difflib.get_close_matches(str(literal), values, n=per_column, cutoff=0.4):
            if v not in near and len(near) < per_column:
                near.append(v)
        if not near:
            near = [str(v) for v in col.value_counts().index[:per_column]]
        shown = ", ".join(_short(v) for v in near)
        hint = f'Column "{name}" has no value {_short(str(literal))}; it holds e.g. {shown}.'
        elsewhere = _columns_holding(frame, str(literal), skip=name)
        if elsewhere:
            hint += (
                f" {_short(str(literal))} is a value of column "
                + ", ".join(f'"{c}"' for c in elsewhere)
                + "."
            )
        hints.append(hint)
    return hints


def _columns_holding(frame: pd.DataFrame, text: str, skip: str, limit: int = 3) -> list[str]:
    """Text columns (other than ``skip``) in which ``text`` is a whole value, case aside."""
    want = text.strip().lower()
    found: list[str] = []
    for c in frame.columns:
        col = frame[c]
        if str(c) == skip or pd.api.types.is_numeric_dtype(col) or len(found) >= limit:
            continue
        values = pd.unique(col.dropna().iloc[:200_000])
        if any(isinstance(v, str) and v.strip().lower() == want for v in values[:20_000]):
            found.append(str(c))
    return found


def _short(text: str, limit: int = 40) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return '"' + text.replace('"', '\\"') + '"'


# --------------------------------------------------------------------------------------------
# hints for a failed run


_EMPTY_SELECTION = re.compile(
    r"single positional indexer is out-of-bounds|index -?\d+ is out of bounds for axis 0 with "
    r"size 0|argm(?:ax|in) of an empty sequence|list index out of range"
)


def error_hint(error: str, code: str, frame: pd.DataFrame | None) -> str | None:
    """A one-line pointer for common pandas slips in ``error``, from the code and the columns."""
    if frame is None:
        return None
    undefined = re.search(r"NameError: name '(\w+)' is not defined", error)
    if undefined:
        if undefined.group(1) == "result":
            return (
                "`result` is not defined before your code assigns it; where you meant the "
                "previous answer, use `prev`."
            )
        return "Defined already: df, dfs, prev, pd, np, px, go; define anything else yourself."
    if _EMPTY_SELECTION.search(error):
        hints = value_hints(code, frame)
        return " ".join(["The selection was empty: a filter matched no rows.", *hints])
    if re.search(r"Cannot perform '(?:rand_|ror_|and_|or_)'|unsupported operand type\(s\) for [&|]",
                 error):  # fmt: skip
        return (
            "& and | bind tighter than ==: put each comparison in parentheses, "
            '(df["A"] == x) & (df["B"] == y).'
        )
    if "Can only compare identically-labeled" in error:
        return (
            "Two filtered columns cannot be compared row by row: take one value from each "
            'first, e.g. df.loc[df["A"] == x, "B"].iloc[0].'
        )
    columns = [str(c) for c in frame.columns]
    m = re.search(r"KeyError: ['\"](.+?)['\"]\s*$", error, re.M) or re.search(
        r"has no attribute ['\"](.+?)['\"]", error
    )
    if m and m.group(1) not in columns:
        wrong = m.group(1)
        same = [c for c in columns if norm(c) == norm(wrong)]
        near = same or difflib.get_close_matches(wrong, columns, n=3, cutoff=0.5)
        if not near:
            near = [c for c in columns if norm(wrong) in norm(c) or norm(c) in norm(wrong)]
        if near:
            shown = ", ".join(f'df["{c}"]' for c in near[:3])
            return f'There is no column "{wrong}"; did you mean {shown}?'
        if "has no attribute" not in m.group(0):
            return f'There is no column "{wrong}" (the columns are listed above).'
    if (
        re.search(r"KeyError: -?\d+\s*$", error, re.M)
        and re.search(r"\.idx(?:max|min)\(\)\s*\]", code)
        and ".loc[" not in code
    ):
        return (
            'df[label] selects a column, not a row: use df.loc[df["X"].idxmax(), "Y"] '
            "for the row with the largest X."
        )
    return None
