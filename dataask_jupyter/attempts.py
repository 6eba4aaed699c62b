"""One attempt at a question, as typed steps: extract -> static check -> run -> result check.

Each attempt ends in one typed outcome: :class:`NoCode`, :class:`Refused`, :class:`RunFailed`,
:class:`Misfit` (it ran, but the result does not fit the question) or :class:`Ok`. All but ``Ok``
carry the follow-up messages that ask the LLM for a better try.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from dataask_jupyter import checks, prompt
from dataask_jupyter.errors import (
    CancelledError,
    CodeExtractionError,
    SandboxError,
    SandboxTimeoutError,
)
from dataask_jupyter.events import EventKind
from dataask_jupyter.extract import check_code, extract_code
from dataask_jupyter.llm import Completion
from dataask_jupyter.sandbox import RunOutcome

Emit = Callable[[EventKind, str], None]


class LLM(Protocol):
    """What a session needs of an LLM client (``dataask_jupyter.llm.LLMClient``)."""

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        on_token: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        max_tokens: int | None = None,
    ) -> Completion: ...

    def complete_text(
        self,
        prompt: str,
        *,
        max_tokens: int = 128,
        stop: list[str] | None = None,
        cancel: threading.Event | None = None,
    ) -> Completion: ...


class Runner(Protocol):
    """What a session needs of a sandbox (``dataask_jupyter.sandbox.Sandbox``)."""

    @property
    def prev(self) -> Any: ...

    def load(self, name: str, frame: pd.DataFrame) -> None: ...

    def drop(self, name: str) -> None: ...

    def run(
        self, code: str, dataset: str | None, *, cancel: threading.Event | None = None
    ) -> RunOutcome: ...

    def set_prev(self, value: Any) -> None: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...

    def info(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Task:
    """What every attempt at one question shares."""

    question: str
    dataset: str
    frame: pd.DataFrame
    expectation: checks.Expectation
    checks: tuple[str, ...]  # the result checks in force, by name
    static_checks: bool = True


@dataclass(frozen=True)
class NoCode:
    error: str
    code: str = ""
    name: str = "no_code"

    def follow_up(self, reply: str) -> list[dict[str, str]]:
        return [
            {"role": "assistant", "content": reply},
            {"role": "user", "content": prompt.REPAIR.format(error=self.error)},
        ]


@dataclass(frozen=True)
class Refused:
    code: str
    error: str
    name: str = "refused"

    def follow_up(self, reply: str) -> list[dict[str, str]]:
        return prompt.repair_messages(self.code, self.error)


@dataclass(frozen=True)
class RunFailed:
    code: str
    run: RunOutcome
    error: str
    feedback: str  # the error, its traceback and a hint, for the LLM
    timed_out: bool = False
    fatal: bool = False  # the sandbox itself failed: a better try would not help
    name: str = "run_failed"

    def follow_up(self, reply: str) -> list[dict[str, str]]:
        return prompt.repair_messages(self.code, self.feedback)


@dataclass(frozen=True)
class Misfit:
    code: str
    run: RunOutcome
    check: str
    error: str
    notes: list[str] = field(default_factory=list)
    name: str = "misfit"

    def follow_up(self, reply: str) -> list[dict[str, str]]:
        return prompt.repair_messages(self.code, self.error, checked=True)


@dataclass(frozen=True)
class Ok:
    code: str
    run: RunOutcome
    notes: list[str] = field(default_factory=list)
    name: str = "ok"
    error: None = None


Outcome = NoCode | Refused | RunFailed | Misfit | Ok


def attempt(
    reply: str,
    task: Task,
    runner: Runner,
    *,
    recheck: bool,
    emit: Emit,
    cancel: threading.Event | None = None,
) -> Outcome:
    """Take one LLM reply through the steps. ``recheck``: a misfit may still be sent back.

    A sandbox that fails ends in a ``fatal`` :class:`RunFailed`; cancellation propagates.
    """
    try:
        extracted = extract_code(reply)
    except CodeExtractionError as exc:
        return NoCode(f"the LLM's reply had no usable code: {exc}")
    code = extracted.code
    emit("code", code)
    problems = check_code(code) if task.static_checks else []
    if problems:
        return Refused(code, "refused before running: " + "; ".join(problems))
    emit("stage", "running in the sandbox")
    try:
        run = runner.run(code, task.dataset, cancel=cancel)
    except CancelledError:
        raise
    except SandboxTimeoutError as exc:
        return RunFailed(
            code,
            RunOutcome(error=str(exc), error_name="Timeout"),
            str(exc),
            str(exc),
            timed_out=True,
        )
    except SandboxError as exc:
        return RunFailed(
            code,
            RunOutcome(error=str(exc), error_name="SandboxError"),
            str(exc),
            str(exc),
            fatal=True,
        )
    if not run.ok:
        error = run.error or "unknown error"
        feedback = error + (f"\n{run.traceback}" if run.traceback else "")
        hint = checks.error_hint(feedback, code, task.frame)
        if hint:
            feedback += "\n" + hint
        return RunFailed(code, run, error, feedback, timed_out=run.error_name == "Timeout")
    if recheck:
        emit("stage", "checking the result")
        found = misfit(task, run.value, code)
        if found is not None:
            return Misfit(code, run, found.check, found.text, list(extracted.notes))
    return Ok(code, run, list(extracted.notes))


def misfit(task: Task, value: Any, code: str) -> checks.Misfit | None:
    """The first result check ``value`` fails, if any (none when the task has no checks)."""
    if task.checks:
        return checks.misfit(
            task.question, value, code, task.frame, task.expectation, checks=task.checks
        )
    # With the checks off a None result still gets one more try: it is nearly always a slip
    # such as `result = fig.show()`.
    return checks.Misfit("none", checks.NONE_RESULT) if value is None else None
