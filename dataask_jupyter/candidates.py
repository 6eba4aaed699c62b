"""The candidates stage: answer a question more than one way and keep what most ways agree on.

The first candidate is the chat answer (with its repairs and result checks). Where no chart is
asked for and its value can be compared (a number, a label, a date, yes/no, a short list), or it
failed, or it does not fit the wording, a second candidate answers in one line: the question as
the docstring of a function over ``df`` with its column names, completed by the LLM after
``return``. Where those two differ, or neither fits the wording, a third ("described") answers
in one line again, with the dataset's description from the chat prompt put first as comments.
The vote (:mod:`dataask_jupyter.vote`) chooses: answers that fail the result checks do not
vote, and ties follow :data:`PREFERENCE`. Mode "all" runs every way on every question, a
column-grounded one too (the LLM names the columns the question needs, checked against the
real names and the values the question quotes, then writes code with them put before the
question), to measure each. Each extra prompt starts with a prefix the server has seen before,
so its cache serves it.
"""

from __future__ import annotations

import ast
import difflib
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd

from dataask_jupyter import attempts
from dataask_jupyter.attempts import Emit, Misfit, Ok, Task
from dataask_jupyter.checks.hints import norm
from dataask_jupyter.checks.wording import CHART, expect
from dataask_jupyter.errors import CancelledError, DataaskError
from dataask_jupyter.llm import Completion
from dataask_jupyter.vote import Candidate, Tally, canonical, choose

__all__ = [
    "MODES",
    "columns_used",
    "ground",
    "grounded_messages",
    "line_code",
    "line_prompt",
    "preferred",
    "second_opinions",
    "undecided",
    "votes_on",
]

#: ``Ask.candidates``: one answer; chat and one-line answers vote; every way every time.
MODES = ("single", "vote", "all")
LINE_MAX_TOKENS = 128
GROUND_MAX_TOKENS = 64
_MAX_VALUE_COLUMNS = 200  # text columns scanned for values the question quotes
_MAX_DISTINCT = 5_000  # ... each with at most this many distinct values

LINE_HEAD = """\
# Complete the function: one Python expression after `return`, using pandas and numpy only.
# The answer is True/False, one value from the table (a number or a label), or a list of values.
import pandas as pd
import numpy as np
{table}
def example(df: pd.DataFrame):
    \"\"\"Returns the answer to the question: How many rows are there in the dataframe?\"\"\"
    df.columns = {columns}
    return df.shape[0]
"""

GROUND = """\
Question: {question}
Which columns of df does answering it need? Reply with their exact names from the list above, \
one per line, nothing else."""


Count = Callable[[Completion], None]


def line_prompt(
    question: str, columns: Sequence[Any], prev: str | None = None, table: str | None = None
) -> str:
    """The one-line prompt: an example function, then the question's function up to ``return``;
    with ``table`` (the dataset's description from the chat prompt), that description first, as
    comments.

    Everything before the question depends only on the table, so it is a cached prefix.
    """
    cols = repr([str(c) for c in columns])
    q = " ".join(question.split()).replace('"""', "'''")
    described = ""
    if table:
        described = "\n# The table df:\n" + "".join(f"# {ln}\n" for ln in table.splitlines())
    head = LINE_HEAD.format(columns=cols, table=described)
    if prev is None:
        return head + (
            f'\ndef answer(df: pd.DataFrame):\n    """Returns the answer to the question: {q}"""\n'
            f"    df.columns = {cols}\n    return"
        )
    p = " ".join(prev.split()).replace('"""', "'''")
    return head + (
        f"\ndef answer(df: pd.DataFrame, prev):\n"
        f'    """Returns the answer to the question: {q}\n'
        f'    prev is the previous answer: {p}"""\n'
        f"    df.columns = {cols}\n    return"
    )


def line_code(completion: str) -> str:
    """Code for the sandbox from a one-line completion: ``result = <expression>``."""
    text = completion.strip()
    if "```" in text:  # a chat model that wrapped it anyway
        inner = text.split("```")[1]
        text = inner.split("\n", 1)[1] if "\n" in inner else inner
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if line.startswith("return ") or line == "return":
        line = line[len("return") :].strip()
    if not line:
        raise DataaskError("the one-line answer was empty")
    return f"result = {line}"


# --------------------------------------------------------------------------- column grounding


def _quoted_values(question: str, frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(column, value) for text values of ``frame`` the question quotes as whole words."""
    text = " " + " ".join(re.findall(r"\w+", question.casefold())) + " "
    found: list[tuple[str, str]] = []
    for c in list(frame.columns)[:_MAX_VALUE_COLUMNS]:
        col = frame[c]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_datetime64_any_dtype(col):
            continue
        values = pd.unique(col.dropna())
        if len(values) > _MAX_DISTINCT:
            continue
        for v in values:
            if not isinstance(v, str):
                continue
            words = " ".join(re.findall(r"\w+", v.casefold()))
            if len(words) >= 3 and not words.isdigit() and f" {words} " in text:
                found.append((str(c), v))
                break
    return found


def _match(name: str, columns: Sequence[str]) -> str | None:
    """The real column a name the LLM wrote means: exact, then loosely, then a close spelling."""
    name = name.strip().strip("-*•`'\"[](), ").strip()
    if not name:
        return None
    if name in columns:
        return name
    loose = {norm(c): c for c in columns}
    if norm(name) in loose:
        return loose[norm(name)]
    close = difflib.get_close_matches(name, list(columns), n=1, cutoff=0.8)
    return close[0] if close else None


def ground(reply: str, question: str, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(columns, mentions): the columns the LLM named that exist, plus the columns holding a
    value the question quotes; and one sentence per quoted value naming its column."""
    columns = [str(c) for c in frame.columns]
    chosen: list[str] = []
    for part in re.split(r"[\n,;]", reply):
        real = _match(part, columns)
        if real is not None and real not in chosen:
            chosen.append(real)
    mentions = []
    for column, value in _quoted_values(question, frame):
        if column not in chosen:
            chosen.append(column)
        mentions.append(f'"{value}" is a value of column "{column}".')
    return chosen, mentions


def grounding_messages(messages: list[dict[str, str]], question: str) -> list[dict[str, str]]:
    """Ask for the columns a question needs, after the chat prompt's (cached) system message."""
    return [messages[0], {"role": "user", "content": GROUND.format(question=question)}]


def grounded_messages(
    messages: list[dict[str, str]], columns: Sequence[str], mentions: Sequence[str]
) -> list[dict[str, str]]:
    """The chat messages with the grounded columns put before the question."""
    if not columns:
        return list(messages)
    names = ", ".join(f'"{c}"' for c in columns)
    lead = f"Columns this question needs: {names}."
    if mentions:
        lead += " " + " ".join(mentions)
    last = dict(messages[-1])
    last["content"] = lead + "\n\n" + last["content"]
    return [*messages[:-1], last]


def columns_used(code: str, columns: Sequence[Any]) -> list[str]:
    """The columns ``code`` names (as strings or attributes), in the order it names them."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    names = {str(c) for c in columns}
    found: list[tuple[int, int, str]] = []  # (line, column, name), to sort into reading order
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in names:
                found.append((node.lineno, node.col_offset, node.value))
        elif isinstance(node, ast.Attribute) and node.attr in names:
            # an attribute starts where its receiver does: place it where the receiver ends
            found.append((node.value.end_lineno or 0, node.value.end_col_offset or 0, node.attr))
    used: list[str] = []
    for _, _, name in sorted(found):
        if name not in used:
            used.append(name)
    return used


# --------------------------------------------------------------------------- running them


class _Asker:
    """What the extra candidates share: the task, the LLM, the sandbox and the accounting."""

    def __init__(
        self,
        task: Task,
        llm: attempts.LLM,
        runner: attempts.Runner,
        prev: Any,
        emit: Emit,
        count: Count,
        cancel: threading.Event | None,
    ) -> None:
        self.task, self.llm, self.runner, self.prev = task, llm, runner, prev
        self.emit, self.count, self.cancel = emit, count, cancel

    def run(self, candidate: Candidate, reply: str) -> Candidate:
        """Run the code in ``reply`` for ``candidate`` (no repair), filling in what it gave."""
        self.runner.set_prev(self.prev)  # every candidate builds on the same `prev`
        outcome = attempts.attempt(
            reply, self.task, self.runner, recheck=True, emit=self.emit, cancel=self.cancel
        )
        candidate.code = outcome.code
        if isinstance(outcome, Ok | Misfit):
            candidate.value, candidate.kind = outcome.run.value, outcome.run.kind
            candidate.stdout, candidate.notes = outcome.run.stdout, list(outcome.notes)
            candidate.misfit = outcome.check if isinstance(outcome, Misfit) else None
        else:
            candidate.error = outcome.error
        return candidate

    def line(self, prev_summary: str | None, table: str | None = None) -> Candidate:
        """The one-line answer; with ``table``, the "described" one (the table described first)."""
        c = Candidate("described" if table else "line")
        self.emit(
            "stage",
            "the answers differ: answering in one line from the table's description"
            if table
            else "answering a second way: in one line",
        )
        with _trying(c):
            columns = list(self.task.frame.columns)
            prompt = line_prompt(self.task.question, columns, prev_summary, table)
            reply = self.llm.complete_text(
                prompt, max_tokens=LINE_MAX_TOKENS, stop=["\n"], cancel=self.cancel
            )
            self.count(reply)
            self.run(c, f"```python\n{line_code(reply.text)}\n```")
        return c

    def grounded(self, messages: list[dict[str, str]]) -> Candidate:
        c = Candidate("grounded")
        self.emit("stage", "the answers differ: naming the columns the question needs")
        with _trying(c):
            asked = self.llm.complete(
                grounding_messages(messages, self.task.question),
                cancel=self.cancel,
                max_tokens=GROUND_MAX_TOKENS,
            )
            self.count(asked)
            c.columns, mentions = ground(asked.text, self.task.question, self.task.frame)
            if c.columns:
                self.emit("stage", "writing code for the columns " + ", ".join(c.columns))
            reply = self.llm.complete(
                grounded_messages(messages, c.columns, mentions), cancel=self.cancel
            )
            self.count(reply)
            self.run(c, reply.text)
        return c


@contextmanager
def _trying(c: Candidate) -> Iterator[None]:
    """Time a candidate; a DataaskError becomes its error (cancellation goes on up)."""
    started = time.perf_counter()
    try:
        yield
    except CancelledError:
        raise
    except DataaskError as exc:
        c.error = str(exc)
    finally:
        c.seconds = time.perf_counter() - started


def votes_on(first: Candidate, question: str) -> bool:
    """Whether other ways answer a question too: it asks for no chart, and the chat answer is
    a value that can be compared (a number, a label, a date, yes/no, a short list; not a
    figure or a long table), or it failed, or it does not fit what the wording asks for."""
    if CHART.search(question):
        return False
    if first.error is not None or canonical(first.value) is not None:
        return True
    return first.misfit is not None and expect(question).kind is not None


def second_opinions(
    first: Candidate,
    *,
    mode: str,
    task: Task,
    messages: list[dict[str, str]],
    llm: attempts.LLM,
    runner: attempts.Runner,
    prev: Any,
    prev_summary: str | None,
    table: str,
    emit: Emit,
    count: Count,
    cancel: threading.Event | None = None,
) -> tuple[Tally, list[Candidate]]:
    """The chosen answer and every candidate tried, starting from the chat answer ``first``.

    ``mode`` "vote": the one-line candidate, and where it and the chat answer leave the
    question open (:func:`undecided`), the described one (``table`` is the dataset's
    description); "all": every way, the grounded one too (to measure each way). The caller
    sets the sandbox's ``prev`` to the chosen value.
    """
    asker = _Asker(task, llm, runner, prev, emit, count, cancel)
    line = asker.line(prev_summary)
    tried = [first, line]
    if mode == "all" or undecided(first, line):
        tried.append(asker.line(prev_summary, table))
    if mode == "all":
        tried.append(asker.grounded(messages))
    tally = choose(preferred(tried))
    if tally.chosen is not first and first.misfit is None and first.key == tally.chosen.key:
        tally = Tally(first, tally.agree, tally.voters)  # same answer: show the chat code
    emit("stage", f"{tally.agree} of {len(tried)} ways of answering agree")
    return tally, tried


def undecided(first: Candidate, line: Candidate) -> bool:
    """Whether the chat and one-line answers leave the question open, so that the described
    way is asked too: they differ, the chat answer failed, or neither fits the wording."""
    return (
        first.key is None
        or first.key != line.key
        or (first.misfit is not None and line.misfit is not None)
    )


#: The order in which ties are broken (chosen on held-out tables: benchmarks/accuracy.py).
PREFERENCE = ("chat", "line", "described", "grounded")


def preferred(tried: Sequence[Candidate]) -> list[Candidate]:
    """``tried`` in the order of :data:`PREFERENCE`."""
    return sorted(tried, key=lambda c: PREFERENCE.index(c.name) if c.name in PREFERENCE else 9)
