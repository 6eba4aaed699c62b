"""``Session``: the one place where a question becomes an answer.

The magics, the upload widget, the side panel and the benchmarks all call it; none re-implements
a step. A session holds the datasets, the conversation (bounded) and one sandbox.
"""

from __future__ import annotations

import os
import sys
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dataask_jupyter import checks, prompt, readers, results
from dataask_jupyter import export as _export
from dataask_jupyter.config import Ask
from dataask_jupyter.errors import (
    CodeExtractionError,
    DataaskError,
    DatasetNotFoundError,
    LLMError,
    SandboxError,
)
from dataask_jupyter.extract import check_code, extract_code
from dataask_jupyter.llm import LLMClient
from dataask_jupyter.sandbox import Sandbox


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
    """One try at answering: the code the LLM wrote and, if it failed, why."""

    code: str
    error: str | None = None
    reply: str = field(default="", repr=False)


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
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def repairs(self) -> int:
        return max(0, len(self.attempts) - 1)

    @property
    def summary(self) -> str:
        """The value (or error) in one line."""
        return results.summarize(self.value) if self.ok else f"error: {self.error}"

    def export(self, path: str | os.PathLike[str], **options: Any) -> Path:
        """Write the value to ``path``; the format comes from the suffix (csv, json, xlsx, png)."""
        if not self.ok:
            raise _export.ExportError(f"turn {self.number} has no value to export: {self.error}")
        return _export.export_value(self.value, path, **options)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from dataask_jupyter.render import answer_mimebundle

        return answer_mimebundle(self)

    def __repr__(self) -> str:
        return f"Answer(#{self.number} {self.question!r} -> {self.summary})"


def _no_better(value: Any, first: Any) -> bool:
    """A retry after a misfit that came back empty when the first result was not."""
    return checks.is_missing(value) and not checks.is_missing(first)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Session:
    """Datasets, conversation and sandbox for one user (one per kernel in notebooks).

    ``Session(exec_timeout=30, llm_model="...")`` overrides any ``Ask`` setting; pass ``config``
    to share a live ``Ask`` instance (the magics do, so ``%config Ask.x`` takes effect).
    """

    def __init__(
        self,
        config: Ask | None = None,
        *,
        notify: Callable[[str], None] | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = config if config is not None else Ask()
        for k, v in overrides.items():
            if not self.settings.has_trait(k):
                raise TypeError(f"unknown setting {k!r}; see Ask.class_trait_names()")
            setattr(self.settings, k, v)
        self.notify = notify or _stderr
        self.datasets: dict[str, Dataset] = {}
        self.active: str | None = None
        self.history: list[Answer] = []
        self._turns = 0
        self.llm = LLMClient(self.settings, notify=lambda m: self.notify(m))
        self.sandbox = Sandbox(self.settings, notify=lambda m: self.notify(m))
        self._finalizer = weakref.finalize(self, Sandbox.close, self.sandbox)

    # --- datasets -------------------------------------------------------------------------
    def load(
        self,
        source: str | os.PathLike[str] | pd.DataFrame,
        name: str | None = None,
        sheet: str | int | None = None,
    ) -> Dataset:
        """Read a CSV/XLS/XLSX/parquet file (or take a DataFrame) and make it the active dataset."""
        res = readers.read_table(
            source,
            sheet=sheet,
            max_bytes=self.settings.max_file_bytes,
            max_uncompressed_bytes=self.settings.max_uncompressed_bytes,
        )
        if isinstance(source, pd.DataFrame):
            label = "a DataFrame"
            default = "df"
        else:
            label = str(source)
            default = _name_from_path(Path(source))
        name = _clean_name(name or default)
        ds = Dataset(
            name=name,
            source=label,
            format=res.format,
            frame=res.frame,
            sheet=res.sheet,
            sheets=list(res.sheets),
            notes=list(res.notes),
            encoding=res.encoding,
            delimiter=res.delimiter,
            engine=res.engine,
        )
        self.sandbox.load(name, res.frame)
        self.datasets[name] = ds
        self.active = name
        return ds

    def use(self, name: str) -> Dataset:
        """Make ``name`` the active dataset."""
        self.active = self._dataset(name).name
        return self.datasets[self.active]

    def drop(self, name: str) -> None:
        self._dataset(name)
        del self.datasets[name]
        self.sandbox.drop(name)
        if self.active == name:
            self.active = next(reversed(self.datasets), None) if self.datasets else None

    def _dataset(self, name: str | None) -> Dataset:
        if name is None:
            if self.active is None:
                raise DatasetNotFoundError(
                    "no dataset loaded yet: load one first (%ask load PATH, or Session.load)"
                )
            name = self.active
        if name not in self.datasets:
            known = ", ".join(f'"{n}"' for n in self.datasets) or "none"
            raise DatasetNotFoundError(f'no dataset named "{name}"; loaded: {known}')
        return self.datasets[name]

    # --- questions ------------------------------------------------------------------------
    def ask(self, question: str, dataset: str | None = None) -> Answer:
        """Answer ``question`` about the active dataset (or ``dataset``), repairing on errors.

        Failures of the LLM, the code or the sandbox come back as ``Answer.error``; the session
        and its history go on.
        """
        question = question.strip()
        if not question:
            raise DataaskError("the question is empty")
        ds = self._dataset(dataset)
        self._turns += 1
        answer = Answer(question=question, dataset=ds.name, number=self._turns)
        started = time.perf_counter()
        s = self.settings
        frames = {n: d.frame for n, d in self.datasets.items()}
        past = [prompt.PastTurn(t.question, t.code, t.summary) for t in self.history if t.code]
        expectation = checks.expect(question)
        messages = prompt.build_messages(
            frames,
            ds.name,
            question,
            past,
            history_turns=s.history_turns,
            max_columns=s.profile_max_columns,
            max_chars=s.profile_max_chars,
            hint=expectation.hint() if s.result_checks else None,
        )
        kept: tuple[Any, str, str, list[str]] | None = None  # a result that ran but did not fit
        prev = self.sandbox.prev  # what every attempt at this question builds on
        for _ in range(1 + max(0, s.max_repairs)):
            try:
                reply = self.llm.complete(messages)
            except LLMError as exc:
                answer.error = str(exc)
                break
            answer.prompt_tokens += reply.prompt_tokens
            answer.completion_tokens += reply.completion_tokens
            attempt = Attempt(code="", reply=reply.text)
            answer.attempts.append(attempt)
            try:
                extracted = extract_code(reply.text)
            except CodeExtractionError as exc:
                attempt.error = str(exc)
                answer.error = f"the LLM's reply had no usable code: {exc}"
                messages += [
                    {"role": "assistant", "content": reply.text},
                    {"role": "user", "content": prompt.REPAIR.format(error=str(exc))},
                ]
                continue
            attempt.code = answer.code = extracted.code
            problems = check_code(extracted.code) if s.static_checks else []
            if problems:
                attempt.error = "refused before running: " + "; ".join(problems)
                answer.error = attempt.error
                messages += prompt.repair_messages(extracted.code, attempt.error)
                continue
            try:
                outcome = self.sandbox.run(extracted.code, ds.name)
            except SandboxError as exc:
                attempt.error = answer.error = str(exc)
                break
            answer.stdout = outcome.stdout
            if outcome.ok:
                answer.value, answer.kind, answer.error = outcome.value, outcome.kind, None
                answer.notes = list(extracted.notes)
                misfit = None
                if kept is None and len(answer.attempts) <= s.max_repairs:
                    if s.result_checks:
                        misfit = checks.feedback(
                            question, outcome.value, extracted.code, ds.frame, expectation
                        )
                    elif outcome.value is None:
                        misfit = checks.NONE_RESULT
                if misfit is None:
                    break
                # Runs, but does not fit the question (None, empty, wrong shape): say so once;
                # if the retry fails or does no better, this result stands.
                attempt.error = misfit
                kept = (outcome.value, outcome.kind, extracted.code, list(extracted.notes))
                self.sandbox.set_prev(prev)  # the retry builds on the same `prev`
                messages += prompt.repair_messages(extracted.code, misfit, checked=True)
                continue
            detail = outcome.error or "unknown error"
            attempt.error = answer.error = detail
            feedback = detail + (f"\n{outcome.traceback}" if outcome.traceback else "")
            hint = checks.error_hint(feedback, extracted.code, ds.frame)
            if hint:
                feedback += "\n" + hint
            messages += prompt.repair_messages(extracted.code, feedback)
        if kept is not None and (answer.error is not None or _no_better(answer.value, kept[0])):
            answer.value, answer.kind, answer.code, answer.notes = kept
            answer.error = None
            self.sandbox.set_prev(answer.value)
        answer.seconds = time.perf_counter() - started
        self._remember(answer)
        return answer

    def _remember(self, answer: Answer) -> None:
        self.history.append(answer)
        overflow = len(self.history) - max(1, self.settings.max_history)
        if overflow > 0:
            del self.history[:overflow]

    def turn(self, number: int | None = None) -> Answer:
        """The answer of turn ``number`` (default: the last one)."""
        if not self.history:
            raise DataaskError("no questions asked yet")
        if number is None:
            return self.history[-1]
        for a in self.history:
            if a.number == number:
                return a
        raise DataaskError(
            f"no turn {number}; turns kept: {self.history[0].number}..{self.history[-1].number}"
        )

    def export(self, path: str | os.PathLike[str], turn: int | None = None, **options: Any) -> Path:
        """Export the value of ``turn`` (default: the last answer) to ``path``."""
        options.setdefault("formula_guard", self.settings.formula_guard)
        return self.turn(turn).export(path, **options)

    def reset(self) -> None:
        """Forget the conversation (datasets stay loaded)."""
        self.history.clear()
        self.sandbox.reset()

    def sandbox_info(self) -> dict[str, Any]:
        return self.sandbox.info()

    def close(self) -> None:
        """Stop the sandbox; the session can be used again (it restarts lazily)."""
        self.sandbox.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _name_from_path(path: Path) -> str:
    return path.stem or "data"


def _clean_name(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name.strip())
    if not cleaned or cleaned[0].isdigit():
        cleaned = "d_" + cleaned
    return cleaned
