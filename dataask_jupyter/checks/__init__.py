"""The "check" stage: does a result fit the question? If not, one line of feedback for the LLM.

Small models often write code that runs but answers a different question: a column of True/False
for "is there any ...", the count instead of the name for "which ...", one value for "the top 3",
or an empty result because a filter compared against a value the column does not hold. These
checks read the question's wording (never the data's answer) and the result's shape; a mismatch
is sent back once as feedback, and the session keeps the first result if the retry does no better.
For an empty result the feedback names the values the filtered columns really hold, taken from
the kernel's own copy of the dataset (no code runs for it).
"""

from __future__ import annotations

from dataask_jupyter.checks.hints import error_hint
from dataask_jupyter.checks.result import (
    CHECKS,
    NONE_RESULT,
    Misfit,
    Result,
    enabled_checks,
    feedback,
    is_missing,
    misfit,
)
from dataask_jupyter.checks.wording import Expectation, expect

__all__ = [
    "CHECKS",
    "NONE_RESULT",
    "Expectation",
    "Misfit",
    "Result",
    "enabled_checks",
    "error_hint",
    "expect",
    "feedback",
    "is_missing",
    "misfit",
]
