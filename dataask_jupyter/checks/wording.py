"""The wording of a question: what kind of answer it asks for (English; no opinion when unsure)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = ["CHART", "NUMBER_WORDS", "NUMERIC_LABEL", "Expectation", "expect"]

_AUX = {
    "is", "are", "was", "were", "do", "does", "did", "has", "have", "had", "can", "could",
    "will", "would", "should", "shall", "must", "may", "might", "isn't", "aren't", "doesn't",
    "don't", "didn't", "wasn't", "weren't", "hasn't", "haven't", "won't", "wouldn't", "can't",
}  # fmt: skip
NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
}  # fmt: skip
_N = r"(\d{1,3}|" + "|".join(NUMBER_WORDS) + r")"
_NOT_ROWS = r"(?!\s+(?:rows?|records?|lines?|entries|observations)\b)"
_COUNT_PATTERNS = [
    re.compile(
        r"\b(?:top|first|last|bottom|lowest|highest|largest|smallest|biggest)\s+"
        + _N
        + r"\b(?![-./,]\d)"
        + _NOT_ROWS,
        re.I,
    ),
    re.compile(
        r"\bthe\s+" + _N + r"\b(?![-./,:]\d)(?!\s*(?:%|percent|times|years? old))" + _NOT_ROWS,
        re.I,
    ),
    re.compile(r"\b" + _N + r"[\s-]+(?:elements?|values?|items?|names?|entries)\b", re.I),
]
_ORDINAL = r"(\d{1,3})(?:st|nd|rd|th)\b"
# "ranked 10th to 15th", "between the 1st and the 5th": a range of positions, both ends counted
_POSITIONS = re.compile(
    r"\b" + _ORDINAL + r"\s*(?:to|through|until|and|-)\s*(?:the\s+)?" + _ORDINAL, re.I
)
_AT_MOST = re.compile(r"\b(?:less|fewer)\s+than\b|\bat most\b|\bup to\b|\bas many as\b", re.I)
_BREAKDOWN = re.compile(r"\b(?:per|each|every|breakdown|broken down|grouped)\b", re.I)
CHART = re.compile(r"\b(?:plot|chart|graph|draw|visuali[sz]e|histogram)\b", re.I)
_NOT_YES_NO = re.compile(r"\b(?:show|list|which|what|plot|chart|table|how many|how much)\b", re.I)
_LIST_START = re.compile(
    r"^(?:please\s+)?(?:list|name|give me|enumerate|what are|which are)\b", re.I
)
_LABEL_START = re.compile(
    r"^(?:(?:in|for|from|at|on|of)\s+)?(?:which|who|whom|whose|where)\b"
    r"|^what(?:'s| is| was)? the (?:name|(?:most|least) (?:common|frequent|popular))\b",
    re.I,
)
# words after which a number is a fine answer to "which ..." ("which year", "which rank")
NUMERIC_LABEL = re.compile(
    r"\b(?:year|month|day|date|number|id|code|age|rank|score|level|rating|grade|size|"
    r"many|much|value|amount|percentage|season|digit|zip|postcode)s?\b",
    re.I,
)
_NUMBER_START = re.compile(
    r"^(?:how (?:many|much|old|long)\b|what(?:'s| is| was)? the (?:average|mean|median|sum|"
    r"total|number|count|percentage|proportion|ratio|difference|range|maximum|minimum|"
    r"highest|lowest|standard deviation|variance)\b)",
    re.I,
)


@dataclass(frozen=True)
class Expectation:
    """What the wording of a question says about its answer."""

    kind: str | None = None  # "boolean" | "list" | "label" | "number" | None (no opinion)
    count: int | None = None  # how many values a list question asks for
    at_most: bool = False  # "... if there are fewer, list as many as there are"

    def hint(self) -> str | None:
        """A one-line answer-type hint for the prompt, or None."""
        if self.kind == "boolean":
            return "`result` must be one True/False, computed from df."
        if self.kind == "list":
            if self.count is None:
                return "`result` must be a Python list of values, computed from df."
            most = "at most " if self.at_most else ""
            return f"`result` must be a Python list of {most}{self.count} values, computed from df."
        if self.kind == "label":
            return "`result` must be the name or label itself (not a count), computed from df."
        if self.kind == "number":
            return "`result` must be one number, computed from df."
        return None


def _first_words(question: str) -> list[str]:
    return re.findall(r"[a-z']+", question.lower())[:3]


def _count(question: str) -> int | None:
    text = re.sub(r"\([^)]*\)\s*", "", question)  # "the first (by row number) 3 values"
    span = _POSITIONS.search(text)
    if span:
        first, last = int(span.group(1)), int(span.group(2))
        if 1 < last - first + 1 <= 100:
            return last - first + 1
    for pattern in _COUNT_PATTERNS:
        m = pattern.search(text)
        if m:
            word = m.group(1).lower()
            n = NUMBER_WORDS.get(word) or int(word)
            if 1 < n <= 100:
                return n
    return None


@functools.lru_cache(maxsize=1024)
def expect(question: str) -> Expectation:
    """Read the expected answer type from a question's wording (English; None when unsure).

    Cached: every question re-reads the wording of the earlier turns it carries."""
    q = " ".join(question.split())
    if not q or CHART.search(q):
        return Expectation()
    clause = q
    if q.lower().startswith("if ") and "," in q:  # "If I move to X, would I ...?"
        clause = q.split(",", 1)[1].strip()
    words = _first_words(clause)
    lower = q.lower()
    imperative = words[:1] == ["do"] and "?" not in q  # "Do the tasks", not "Do we ...?"
    if (
        words and words[0] in _AUX and not imperative and not _NOT_YES_NO.search(clause)
    ) or re.search(r"\btrue or false\b|\byes or no\b", lower):
        return Expectation("boolean")
    count = _count(q)
    if _LIST_START.search(q):
        if _BREAKDOWN.search(q) and count is None:
            return Expectation()
        return Expectation("list", count, bool(count and _AT_MOST.search(q)))
    numeric = bool(_NUMBER_START.search(q))
    ranked = re.search(r"\b(?:top|first|last|bottom)\s+" + _N, q, re.I)
    if count is not None and ranked and not numeric and not _BREAKDOWN.search(q):
        return Expectation("list", count, bool(_AT_MOST.search(q)))
    if _BREAKDOWN.search(q) or re.search(r"\bby\b", lower):
        return Expectation()
    if _LABEL_START.search(q):
        return Expectation("label")
    if numeric:
        return Expectation("number")
    return Expectation()
