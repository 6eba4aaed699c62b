"""DataBench scoring: the benchmark's own comparison rules, and answer values as answer strings.

:func:`default_compare` follows ``databench_eval.Evaluator.default_compare`` (databench-eval
4.0.1), rule by rule, as summarised in the README of the dev split:

- null-like answers (``None``, ``nan``, empty) match only each other;
- boolean: ``true/yes/y`` vs ``false/no/n``, case-insensitive;
- category: string equality after stripping ``[]'"`` and spaces, else equal as dates;
- number: both truncated to 2 decimals after keeping only digits, ``.`` and ``-``;
- list[category] / list[number]: split on commas, same length, equal as sets (numbers truncated
  to 2 decimals, categories also tried as dates).

The one deliberate difference: where the original lets an exception escape (a "category" answer
such as ``"-1"`` makes the date parser raise NotImplementedError), this returns ``False``.

:func:`answer_string` turns a value into the string the benchmark compares, post-processed the
way the organisers' baseline does it (a Series becomes a list, a DataFrame its first column as a
list, and only the first line of the string form counts).
"""

from __future__ import annotations

import datetime as _dt
import math
import warnings
from typing import Any

import pandas as pd

__all__ = ["ANSWER_TYPES", "answer_string", "default_compare", "is_null"]

ANSWER_TYPES = ("boolean", "number", "category", "list[category]", "list[number]")
_STRIP = "[]'\" "
_NULLS = frozenset({"", "nan", "np.nan", "None"})  # " " cannot survive the strip
_TRUE = frozenset({"true", "yes", "y"})
_FALSE = frozenset({"false", "no", "n"})


def is_null(value: Any) -> bool:
    """Whether the benchmark treats ``value`` as a null-like answer."""
    return str(value).strip(_STRIP) in _NULLS


def _date(text: str) -> _dt.date | Any:
    """``text`` as a date (``NaT`` for an empty string); ValueError if it is not one.

    Some strings make pandas raise other errors (``"-1"``: NotImplementedError); callers treat
    those as the original does (see the module docstring).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(text).date()


def _number(text: str) -> float:
    """The float left after keeping only digits, '.' and '-' (ValueError if none is)."""
    return float("".join(ch for ch in text if ch.isdigit() or ch in ".-"))


def _compare_boolean(value: str, truth: str) -> bool:
    v, t = value.strip(_STRIP).lower(), truth.strip(_STRIP).lower()
    return (v in _TRUE and t in _TRUE) or (v in _FALSE and t in _FALSE)


def _compare_category(value: str, truth: str) -> bool:
    v, t = value.strip(_STRIP), truth.strip(_STRIP)
    if v == t:
        return True
    try:
        return bool(_date(v) == _date(t))
    except Exception:  # not dates (the original lets errors other than ValueError escape)
        return False


def _compare_number(value: str, truth: str) -> bool:
    try:
        return math.trunc(_number(value) * 100) == math.trunc(_number(truth) * 100)
    except (ValueError, OverflowError):
        return False


def _category_items(text: str) -> list[str]:
    items = [item.strip(_STRIP) for item in text.strip("[]").split(",")]
    return ["" if item in _NULLS else item for item in items]


def _compare_list_category(value: str, truth: str) -> bool:
    v, t = _category_items(value), _category_items(truth)
    if len(v) != len(t):
        return False
    try:
        v_dates = [_date(item) for item in v]
        t_dates = [_date(item) for item in t]
    except (ValueError, TypeError):  # not dates: compare as strings
        return set(v) == set(t)
    except Exception:  # as in the original, where its outer handler turns these into False
        return False
    return set(v_dates) == set(t_dates)


def _number_items(text: str) -> list[float]:
    numbers = sorted(_number(item.strip()) for item in text.strip("[]").split(",") if item.strip())
    return [int(n * 100) / 100 for n in numbers]


def _compare_list_number(value: str, truth: str) -> bool:
    try:
        v, t = _number_items(value), _number_items(truth)
    except (ValueError, OverflowError):
        return False
    return len(v) == len(t) and set(v) == set(t)


_RULES = {
    "boolean": _compare_boolean,
    "category": _compare_category,
    "number": _compare_number,
    "list[category]": _compare_list_category,
    "list[number]": _compare_list_number,
}


def default_compare(value: Any, truth: Any, semantic: str) -> bool:
    """Whether answer ``value`` matches gold ``truth`` for answer type ``semantic``."""
    semantic = semantic.strip()
    if semantic not in _RULES:
        raise ValueError(f"unknown answer type {semantic!r}; expected one of {ANSWER_TYPES}")
    value_null, truth_null = is_null(value), is_null(truth)
    if value_null or truth_null:
        return value_null and truth_null
    return _RULES[semantic](str(value), str(truth))


def answer_string(value: Any) -> str:
    """The benchmark's answer string for a value: Series -> list, DataFrame -> its first column
    as a list, tuples/sets/arrays -> lists, numpy scalars -> Python scalars; the first line of
    ``str()`` of that."""
    if isinstance(value, pd.DataFrame):
        value = value.iloc[:, 0].tolist() if value.shape[1] else []
    elif isinstance(value, (pd.Series, pd.Index)):
        value = value.tolist()
    elif isinstance(value, (tuple, set, frozenset)):
        value = list(value)
    elif hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays and scalars
        value = value.tolist()
    if isinstance(value, list):
        value = [v.item() if hasattr(v, "item") and callable(v.item) else v for v in value]
    text = str(value)
    return text.split("\n", 1)[0]
