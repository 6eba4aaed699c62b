"""The records a session keeps: datasets, answers and the attempts behind each answer."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dataask_jupyter import results
from dataask_jupyter.errors import ExportError
from dataask_jupyter.vote import Candidate


@dataclass
class Dataset:
    """A table loaded into the session (and sent once to the sandbox)."""

    name: str
    source: str
    format: str
    frame: pd.DataFrame = field(repr=False)
    sheet: str | None = None
    sheets: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    encoding: str | None = None
    delimiter: str | None = None
    engine: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # reader overrides: header_row, range
    hidden_sheets: dict[str, str] = field(default_factory=dict)  # name -> "hidden"/"very hidden"
    range: str | None = None  # where the reader found the table, Excel style ("B4:F20")
    header_row: int | None = None  # the 1-based row that gave the column names, when known

    @property
    def shape(self) -> tuple[int, int]:
        return self.frame.shape

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    @property
    def dtypes(self) -> dict[str, str]:
        return {str(c): str(t) for c, t in self.frame.dtypes.items()}

    def summary(self) -> str:
        """One line: name, size, where from."""
        where = f"{self.source}" + (f' sheet "{self.sheet}"' if self.sheet else "")
        return f"{self.name}: {self.shape[0]:,} rows x {self.shape[1]} columns from {where}"

    def __repr__(self) -> str:
        return f"Dataset({self.summary()})"


@dataclass
class Attempt:
    """One try at answering: the code the LLM wrote, how the try ended and, if it failed, why.

    ``outcome`` is one of "no_code", "refused", "run_failed", "misfit" (it ran but the result did
    not fit the question; ``check`` names the check), "ok" and "" (the try did not finish).
    """

    code: str
    error: str | None = None
    reply: str = field(default="", repr=False)
    outcome: str = ""
    check: str | None = None
    value: Any = field(default=None, repr=False)  # what the run returned (ok and misfit tries)


@dataclass
class Answer:
    """The outcome of one question (also the entry kept in ``Session.history``)."""

    question: str
    dataset: str | None
    number: int = 0
    value: Any = None
    code: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    error: str | None = None
    stdout: str = ""
    kind: str = "none"
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None  # prompt tokens served by the LLM server's cache
    first_token_seconds: float | None = None  # of the first reply
    llm_seconds: float = 0.0  # time spent waiting for the LLM, all tries
    notes: list[str] = field(default_factory=list)
    cancelled: bool = False
    # the ways the question was answered when they voted (Ask.candidates), the chosen one among
    candidates: list[Candidate] = field(default_factory=list, repr=False)
    # a turn restored from the store without its value (too large to keep): its summary then
    stored_summary: str | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def repairs(self) -> int:
        return max(0, len(self.attempts) - 1)

    @property
    def summary(self) -> str:
        """The value (or error) in one line."""
        if not self.ok:
            return f"error: {self.error}"
        if self.value is None and self.stored_summary is not None:
            return self.stored_summary
        return results.summarize(self.value)

    def export(self, path: str | os.PathLike[str], **options: Any) -> Path:
        """Write the value to ``path``; the format comes from the suffix (csv, json, xlsx, png)."""
        if not self.ok:
            raise ExportError(f"turn {self.number} has no value to export: {self.error}")
        from dataask_jupyter import export

        return export.export_value(self.value, path, **options)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # The display hook: the view layer is imported only when a frontend shows the answer.
        from dataask_jupyter.render import answer_mimebundle

        return answer_mimebundle(self)

    def __repr__(self) -> str:
        return f"Answer(#{self.number} {self.question!r} -> {self.summary})"
