"""Answer accuracy on a DataBench-style QA set: dataask against the organisers' baseline prompt.

    python benchmarks/accuracy.py [--qa DIR] [--limit N] [--ids ID ...] [--baseline/--no-baseline]
                                  [--endpoint URL --model M --api-key K] [--lite] [--timeout S]
                                  [--sandbox auto|docker|local] [--out results.jsonl]
    python benchmarks/accuracy.py --summarize results.jsonl [more.jsonl ...]

The QA folder has the DataBench layout (``qa.csv`` with ``id, dataset, question, type, answer,
sample_answer``; tables in ``data/<dataset>/all.parquet`` and ``sample.parquet``). The default is
``$DATABENCH_DIR``, else ``shared/benchmarks/databench-dev`` beside (or inside) the repository.

Two systems answer every question, with the same model on the same endpoint, in the same run:

- **dataask**: the public ``Session`` API, one session per table, each table loaded with
  ``Session.load`` (the readers users get), ``reset()`` before every question (each is
  independent), then ``ask()``; the value becomes the benchmark's answer string the way the
  baseline post-processes (Series -> list, DataFrame -> first column as a list, first line).
- **baseline**: the organisers' one-line completion prompt (``def answer(df): ... return``),
  sent as a plain completion (``/v1/completions``; a chat request asking to continue it where the
  endpoint has no completions). The continuation up to the end of the line is the expression; it
  is evaluated in a dataask sandbox holding the table (never in this process) and post-processed
  there as the baseline does.

Scoring is the benchmark's own (``databench_score.default_compare``). Every question runs under a
wall-clock guard (``--timeout``): one that hangs or raises is recorded as an error and the run
goes on. Without ``--endpoint`` the embedded local model answers (started if needed).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import pandas as pd  # noqa: E402
from databench_score import ANSWER_TYPES, answer_string, default_compare  # noqa: E402

from dataask_jupyter.candidates import (  # noqa: E402
    MODES,
    PREFERENCE,
    columns_used,
    undecided,
)
from dataask_jupyter.checks import CHECKS, expect  # noqa: E402
from dataask_jupyter.config import Ask  # noqa: E402
from dataask_jupyter.llm import LLMClient  # noqa: E402
from dataask_jupyter.sandbox import Sandbox  # noqa: E402
from dataask_jupyter.session import Session  # noqa: E402
from dataask_jupyter.vote import Candidate, choose  # noqa: E402

DEFAULT_SET = Path("shared") / "benchmarks" / "databench-dev"
SYSTEMS = ("dataask", "baseline")
ERROR_ANSWER = "__ERROR__"  # what a failed question answers: never null-like, never right
BASELINE_MAX_TOKENS = 128  # as the organisers' script (llama-cli -n 128)

T = TypeVar("T")
Notify = Callable[[str], None]


# --------------------------------------------------------------------------- the QA set


@dataclass(frozen=True)
class Question:
    id: str
    dataset: str
    question: str
    type: str
    gold: str


@dataclass
class Outcome:
    """One system's answer to one question (one line of the JSONL output)."""

    system: str
    id: str
    dataset: str
    type: str
    question: str
    gold: str
    answer: str = ERROR_ANSWER
    ok: bool = False
    error: str | None = None
    timed_out: bool = False
    repairs: int = 0
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token_seconds: float | None = None  # streamed replies (dataask) only
    llm_seconds: float = 0.0
    cached_tokens: int | None = None  # prompt tokens the server's cache served, when it says
    code: str = ""
    # result checks: each check that fired, with the answer string of the result it judged
    checks: list[list[str]] = field(default_factory=list)
    # the ways it was answered (Ask.candidates): name, answer string, seconds, columns named
    # (grounded), columns its code uses, whether the result checks accepted it (and if not,
    # the check that fired), and its code
    candidates: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def start(cls, system: str, q: Question) -> Outcome:
        return cls(system, q.id, q.dataset, q.type, q.question, q.gold)

    def score(self) -> None:
        self.ok = self.error is None and default_compare(self.answer, self.gold, self.type)


def default_qa_dir() -> Path:
    """``$DATABENCH_DIR``, else the dev split in ``shared/`` beside or inside the repository."""
    env = os.environ.get("DATABENCH_DIR")
    if env:
        return Path(env).expanduser()
    candidates = [ROOT.parent / DEFAULT_SET, ROOT / DEFAULT_SET, Path.cwd().parent / DEFAULT_SET]
    for c in candidates:
        if (c / "qa.csv").is_file():
            return c.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise SystemExit(f"no DataBench QA set found (tried {tried}); pass --qa DIR or DATABENCH_DIR")


def load_questions(qa_dir: Path, *, lite: bool) -> list[Question]:
    path = qa_dir / "qa.csv"
    if not path.is_file():
        raise SystemExit(f"{path} not found: --qa must be a folder in the DataBench layout")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    gold = "sample_answer" if lite else "answer"
    need = {"id", "dataset", "question", "type", gold}
    missing = need - set(rows[0] if rows else need)
    if missing:
        raise SystemExit(f"{path} lacks the column(s) {', '.join(sorted(missing))}")
    return [
        Question(r["id"].strip(), r["dataset"].strip(), r["question"], r["type"].strip(), r[gold])
        for r in rows
    ]


def table_path(qa_dir: Path, dataset: str, *, lite: bool) -> Path:
    """``data/<dataset>/all.parquet`` (``sample.parquet`` with --lite), or another format of it."""
    folder = qa_dir / "data" / dataset
    stem = "sample" if lite else "all"
    exact = folder / f"{stem}.parquet"
    if exact.is_file():
        return exact
    others = sorted(folder.glob(f"{stem}.*"))
    return others[0] if others else exact


def select(questions: list[Question], ids: Sequence[str], limit: int | None) -> list[Question]:
    if ids:
        wanted = {i.strip() for chunk in ids for i in chunk.split(",") if i.strip()}
        unknown = wanted - {q.id for q in questions}
        if unknown:
            raise SystemExit(f"unknown question id(s): {', '.join(sorted(unknown))}")
        questions = [q for q in questions if q.id in wanted]
    return questions[:limit] if limit is not None else questions


def by_dataset(questions: Iterable[Question]) -> dict[str, list[Question]]:
    groups: dict[str, list[Question]] = {}
    for q in questions:
        groups.setdefault(q.dataset, []).append(q)
    return groups


# --------------------------------------------------------------------------- wall-clock guard


@dataclass
class Guarded:
    value: Any = None
    error: BaseException | None = None
    timed_out: bool = False
    thread: threading.Thread | None = None


def guarded(fn: Callable[[], T], timeout: float) -> Guarded:
    """Run ``fn`` in a daemon thread; give up waiting after ``timeout`` seconds.

    A call that overruns is abandoned, not killed: its thread finishes in the background (its
    own LLM and execution timeouts bound it) and is returned so the caller can clean up after it.
    """
    out = Guarded()

    def target() -> None:
        try:
            out.value = fn()
        except BaseException as exc:  # anything at all: the run must go on
            out.error = exc

    thread = threading.Thread(target=target, daemon=True, name="accuracy-question")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        out.timed_out = True
        out.thread = thread
    return out


def timed(
    out: Outcome, fn: Callable[[], Any], timeout: float, reaper: Reaper, close: Callable[[], None]
) -> Guarded:
    """``guarded(fn)``, timed into ``out``; on a timeout, ``out`` says so and ``close`` runs
    once the abandoned thread ends."""
    started = time.perf_counter()
    g = guarded(fn, timeout)
    out.seconds = time.perf_counter() - started
    if g.timed_out:
        out.timed_out = True
        out.error = f"no answer within {timeout:g} s (wall-clock guard, --timeout)"
        assert g.thread is not None
        reaper.later(g.thread, close)
    return g


class Reaper:
    """Closes what abandoned questions still use once their threads end (bounded at exit)."""

    def __init__(self) -> None:
        self._pending: list[tuple[threading.Thread, Callable[[], None]]] = []

    def later(self, thread: threading.Thread, close: Callable[[], None]) -> None:
        def wait_then_close() -> None:
            thread.join()
            with contextlib.suppress(Exception):
                close()

        reaper = threading.Thread(target=wait_then_close, daemon=True, name="accuracy-reaper")
        reaper.start()
        self._pending.append((reaper, close))

    def finish(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for reaper, close in self._pending:
            reaper.join(max(0.0, deadline - time.monotonic()))
            if reaper.is_alive():  # still stuck: close from here (its thread then fails fast)
                with contextlib.suppress(Exception):
                    close()


def _llm_timeout(guard: float) -> float:
    """Seconds one LLM request may take under a wall-clock guard of ``guard`` seconds."""
    return max(1.0, 0.9 * guard)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


# --------------------------------------------------------------------------- dataask


class DataaskRunner:
    """One ``Session`` for one table; replaced (and the old one closed later) after a hang."""

    def __init__(self, settings: Ask, path: Path, name: str, reaper: Reaper, notify: Notify):
        self.settings, self.path, self.name = settings, path, name
        self.reaper, self.notify = reaper, notify
        self.session: Session | None = self._new_session()

    def _new_session(self) -> Session:
        session = Session(self.settings, notify=self.notify)
        try:
            session.load(self.path, name=self.name)
        except BaseException:
            session.close()
            raise
        return session

    @property
    def frame(self) -> pd.DataFrame:
        assert self.session is not None
        return next(iter(self.session.datasets.values())).frame

    def ask(self, q: Question, timeout: float) -> Outcome:
        out = Outcome.start("dataask", q)
        if self.session is None:  # the last one was abandoned and its successor failed to start
            self.session = self._new_session()
        session = self.session

        def run() -> Any:
            session.reset()  # each question is independent
            return session.ask(q.question)

        g = timed(out, run, timeout, self.reaper, session.close)
        if g.timed_out:
            self.session = None
            with contextlib.suppress(Exception):  # else: retried (and reported) next question
                self.session = self._new_session()
        elif g.error is not None:
            out.error = f"crashed: {_describe(g.error)}"
        else:
            a = g.value
            out.repairs = a.repairs
            out.prompt_tokens, out.completion_tokens = a.prompt_tokens, a.completion_tokens
            out.first_token_seconds, out.llm_seconds = a.first_token_seconds, a.llm_seconds
            out.cached_tokens = a.cached_tokens
            out.code = a.code
            for t in a.attempts:
                if t.check is not None:
                    out.checks.append([t.check, _answer_or_error(t.value)])
            columns = list(self.frame.columns)
            out.candidates = [
                {
                    "name": c.name,
                    "answer": ERROR_ANSWER if c.error else _answer_or_error(c.value),
                    "seconds": round(c.seconds, 3),
                    "named": c.columns,
                    "used": columns_used(c.code, columns),
                    "fits": c.misfit is None and c.error is None,
                    "misfit": c.misfit,
                    "code": c.code,
                    "key": list(c.key) if c.key is not None else None,
                }
                for c in a.candidates
            ]
            if a.error is None:
                try:
                    out.answer = answer_string(a.value)
                except Exception as exc:
                    out.error = f"the value could not be turned into an answer: {_describe(exc)}"
            else:
                out.error = a.error
        out.score()
        return out

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


# --------------------------------------------------------------------------- baseline

BASELINE_INSTRUCTIONS = """\
You are a pandas code generator. Your goal is to complete the function below.
* Write no code other than what completes the function.
* You can use only pandas and numpy.
* You cannot read files from disk.
* Keep the answer short, in the format asked for.
* Answer in one of these formats, depending on the question:
    1. True/False (a Python bool, not np.True_ or np.False_)
    2. a single value from the dataframe (a category or a number)
    3. a list of values (categories or numbers)"""


def baseline_prompt(question: str, columns: Sequence[Any]) -> str:
    """The organisers' prompt: instructions, an example function, the function to complete."""
    cols = [str(c) for c in columns]
    return f'''
{BASELINE_INSTRUCTIONS}

import pandas as pd
import numpy as np

# This is an example
def example(df: pd.DataFrame):
    """Returns the answer to the question: How many rows are there in the dataframe? """
    df.columns = {cols}
    return df.shape[0]

# This is the question you have to answer
def answer(df: pd.DataFrame):
    """Returns the answer to the question: {question} """
    df.columns = {cols}
    return'''


def completion_expression(text: str) -> str:
    """The continuation of ``return`` up to the end of its line."""
    return text.split("\n", 1)[0].strip().replace("[end of text]", "")


def chat_expression(text: str) -> str:
    """The expression in a chat reply: after the last ``return``, else its first code line."""
    body = text
    if "```" in body:
        parts = body.split("```")
        body = parts[1] if len(parts) > 1 else body
        first, _, rest = body.partition("\n")
        if first.strip().isidentifier() or not first.strip():  # a language tag
            body = rest
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    for line in reversed(lines):
        if line == "return" or line.startswith("return "):
            return line[len("return") :].strip()
    return lines[0] if lines else ""


def baseline_code(expression: str) -> str:
    """Sandbox code: ``answer(df)`` with the expression, post-processed as the baseline does."""
    return (
        "def answer(df):\n"
        f"    return {expression}\n"
        "ans = answer(df)\n"
        "if isinstance(ans, pd.Series):\n"
        "    ans = ans.tolist()\n"
        "elif isinstance(ans, pd.DataFrame):\n"
        "    ans = ans.iloc[:, 0].tolist()\n"
        'if "\\n" in str(ans):\n'
        '    ans = ans.split("\\n")[0]\n'
        "result = str(ans)\n"
    )


class BaselineModel:
    """The same endpoint and model as the sessions, asked for a one-line completion (through
    the client dataask uses: ``/completions``, or a chat request to continue the text where the
    endpoint has none)."""

    def __init__(self, settings: Ask, timeout: float, notify: Notify) -> None:
        self.settings, self.notify = settings, notify
        self.client = LLMClient(settings, notify)

    @property
    def mode(self) -> str | None:
        """ "completions", or "chat" where there are none (None before the first question)."""
        if self.client.endpoint is None:
            return None
        return "chat" if self.client.text_via_chat else "completions"

    def expression(self, prompt: str) -> tuple[str, int, int]:
        """(expression, prompt tokens, completion tokens)."""
        was = self.mode
        reply = self.client.complete_text(prompt, max_tokens=BASELINE_MAX_TOKENS, stop=["\n"])
        if self.mode == "chat" and was != "chat":
            self.notify(
                "accuracy: the endpoint has no /completions; "
                "the baseline asks the chat endpoint to continue its prompt"
            )
        parse = chat_expression if self.mode == "chat" else completion_expression
        return parse(reply.text), reply.prompt_tokens, reply.completion_tokens


class BaselineRunner:
    """The baseline on one table: its own sandbox holding the same frame dataask loaded."""

    def __init__(
        self,
        model: BaselineModel,
        settings: Ask,
        frame: pd.DataFrame,
        reaper: Reaper,
        notify: Notify,
    ) -> None:
        self.model, self.settings, self.frame = model, settings, frame
        self.reaper, self.notify = reaper, notify
        self.sandbox: Sandbox | None = self._new_sandbox()

    def _new_sandbox(self) -> Sandbox:
        sandbox = Sandbox(self.settings, notify=self.notify)
        sandbox.load("table", self.frame)
        return sandbox

    def ask(self, q: Question, timeout: float) -> Outcome:
        out = Outcome.start("baseline", q)
        if self.sandbox is None:
            self.sandbox = self._new_sandbox()
        sandbox = self.sandbox
        # the worker fills its own copy; the result is taken only from a worker that finished
        work = Outcome.start("baseline", q)

        def run() -> None:
            prompt = baseline_prompt(q.question, list(self.frame.columns))
            expr, work.prompt_tokens, work.completion_tokens = self.model.expression(prompt)
            work.code = expr
            outcome = sandbox.run(baseline_code(expr), "table")
            if outcome.ok:
                work.answer = str(outcome.value)
            else:
                work.error = outcome.error or "unknown error"
                work.answer = f"__CODE_ERROR__: {work.error}"

        g = timed(out, run, timeout, self.reaper, sandbox.close)
        if g.timed_out:
            self.sandbox = None
            with contextlib.suppress(Exception):
                self.sandbox = self._new_sandbox()
        else:
            out.code, out.answer, out.error = work.code, work.answer, work.error
            out.prompt_tokens, out.completion_tokens = work.prompt_tokens, work.completion_tokens
            if g.error is not None:
                out.error = f"failed: {_describe(g.error)}"
                out.answer = ERROR_ANSWER
        out.score()
        return out

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()


# --------------------------------------------------------------------------- summary


def _answer_or_error(value: Any) -> str:
    try:
        return answer_string(value)
    except Exception:
        return ERROR_ANSWER


def check_report(outcomes: Sequence[Outcome]) -> str:
    """Per result check: how often it fired, and what its retry did to the answer.

    ``fixed``: the result it judged was wrong and the final answer is right; ``broke``: the
    result it judged was right and the final answer is wrong; ``false alarm``: it fired on a
    right result. A check earns its place when fixed clearly outnumbers broke.
    """
    rows: dict[str, list[int]] = {}
    for o in outcomes:
        if o.system != "dataask":
            continue
        for name, judged in o.checks:
            first_ok = default_compare(judged, o.gold, o.type)
            r = rows.setdefault(name, [0, 0, 0, 0])
            r[0] += 1
            r[1] += (not first_ok) and o.ok
            r[2] += first_ok and not o.ok
            r[3] += first_ok
    if not rows:
        lines = ["result checks: none fired"]
    else:
        lines = [f"{'result check':<16}{'fired':>7}{'fixed':>7}{'broke':>7}{'false alarm':>13}"]
        for name, (fired, fixed, broke, false) in sorted(rows.items(), key=lambda kv: -kv[1][0]):
            lines.append(f"{name:<16}{fired:>7}{fixed:>7}{broke:>7}{false:>13}")
    vote = _vote_check_report(outcomes)
    return "\n".join(lines) + (f"\n\n{vote}" if vote else "")


def _vote_check_report(outcomes: Sequence[Outcome]) -> str:
    """Per result check, the answers (of every way that voted) it kept out of the vote: how
    many were wrong (rightly kept out) and how many right (a right answer lost its vote)."""
    rows: dict[str, list[int]] = {}
    for o in outcomes:
        if o.system != "dataask" or len(o.candidates) < 2:
            continue
        for c in o.candidates:
            if not c.get("misfit") or c["answer"] == ERROR_ANSWER:
                continue
            right = default_compare(c["answer"], o.gold, o.type)
            r = rows.setdefault(c["misfit"], [0, 0, 0])
            r[0] += 1
            r[1 + right] += 1
    if not rows:
        return ""
    lines = [f"{'kept out of the vote':<22}{'answers':>9}{'wrong':>7}{'right':>7}"]
    for name, (n, wrong, right) in sorted(rows.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"{name:<22}{n:>9}{wrong:>7}{right:>7}")
    return "\n".join(lines)


WAYS = ("chat", "line", "described", "grounded")
LATER = ("described", "grounded")  # ways that join only where chat and line leave the
# question open (``candidates.undecided``, as the vote runs them lazily; ``--candidates all``
# records them everywhere)
ORDERS = [  # which ways vote, in the order that breaks a tie
    "line>chat",
    "chat>line",
    *(
        order
        for later in LATER
        for order in (
            f"line>chat>{later}",
            f"chat>line>{later}",
            f"line>{later}>chat",
            f"{later}>line>chat",
            f"chat>{later}>line",
            f"{later}>chat>line",
        )
    ),
]
SCALARS = "scalars"  # a rule "<order> scalars" votes only where the wording does not expect
# yes/no or a list (``checks.expect``); there the chat answer stands alone
VOTE_RULES = [*ORDERS, *(f"{order} {SCALARS}" for order in ORDERS)]
# what Ask.candidates = "vote" does (every question type votes: candidates.votes_on)
SHIPPED = ">".join(w for w in PREFERENCE if w != "grounded")


def _cand(record: dict[str, Any]) -> Candidate:
    """A recorded candidate, rebuilt for the vote (its key stands for its value)."""
    failed = record["answer"] == ERROR_ANSWER
    return Candidate(
        record["name"],
        value=list(record["key"]) if record.get("key") is not None else None,
        error="failed" if failed else None,
        misfit=None if record.get("fits", True) or failed else "check",
        seconds=float(record.get("seconds", 0.0)),
    )


def simulate(o: Outcome, rule: str) -> tuple[str, float] | None:
    """(answer string, seconds) a rule would have given, from the ways recorded for ``o``
    (None where a way it needs was not run).

    Rules: a way's name alone ("chat", "line", "grounded"), or one of VOTE_RULES: the ways
    named vote (``vote.choose``: answers failing the checks do not vote; ties by the order).
    A run with ``--candidates all`` records every way, so every rule replays exactly.
    """
    recorded = {c["name"]: c for c in o.candidates}
    if rule in WAYS:
        c = recorded.get(rule)
        return None if c is None else (c["answer"], float(c["seconds"]))
    if not {"chat", "line"} <= set(recorded):
        return None
    order, _, scope = rule.partition(" ")
    names = order.split(">")
    if scope == SCALARS and expect(o.question).kind in ("boolean", "list"):
        return recorded["chat"]["answer"], float(recorded["chat"]["seconds"])
    chat, line = _cand(recorded["chat"]), _cand(recorded["line"])
    tried = [chat, line]
    seconds = chat.seconds + line.seconds
    for later in (n for n in names if n in LATER):
        if undecided(chat, line):
            if later not in recorded:
                return None
            tried.append(_cand(recorded[later]))
            seconds += tried[-1].seconds
    chosen = choose(sorted(tried, key=lambda c: names.index(c.name))).chosen
    return recorded[chosen.name]["answer"], seconds


def replay(outcomes: Sequence[Outcome], rule: str) -> list[Outcome]:
    """The outcomes with dataask's answers (and seconds) as ``rule`` would have given them;
    questions the rule cannot replay keep their answers."""
    if rule not in VOTE_RULES and rule not in WAYS:
        raise SystemExit(f"unknown rule {rule!r}; known: {', '.join([*WAYS, *VOTE_RULES])}")
    out = []
    for o in outcomes:
        got = simulate(o, rule) if o.system == "dataask" else None
        if got is not None:
            o = Outcome(**{**asdict(o), "answer": got[0], "seconds": got[1]})
            o.error = None if got[0] != ERROR_ANSWER else (o.error or "no candidate answered")
            o.score()
        out.append(o)
    return out


def _rule_accuracy(outcomes: Sequence[Outcome], rule: str) -> tuple[int, int, list[float]]:
    right = n = 0
    times: list[float] = []
    for o in outcomes:
        got = simulate(o, rule)
        if got is None:
            continue
        n += 1
        right += default_compare(got[0], o.gold, o.type)
        times.append(got[1])
    return right, n, times


def candidate_report(outcomes: Sequence[Outcome]) -> str:
    """With every way recorded (--candidates all): each way alone, each vote rule, the
    vote rule chosen on the other tables for each held-out table, and the grounding."""
    ours = [o for o in outcomes if o.system == "dataask" and simulate(o, ORDERS[0]) is not None]
    if not ours:
        return ""
    tables = sorted({o.dataset for o in ours})
    recorded = {c["name"] for o in ours for c in o.candidates}
    rules = [  # the rules whose ways this run recorded
        r for r in [*WAYS, *VOTE_RULES] if set(r.split(" ")[0].split(">")) <= recorded
    ]
    lines = [
        f"ways of answering and vote rules ({len(ours)} questions; a way alone is scored where "
        "it ran)",
        f"{'rule':<30}{'right':>9}{'acc':>8}{'median s':>10}{'p90 s':>8}  per table",
    ]
    for rule in rules:
        right, n, times = _rule_accuracy(ours, rule)
        per = []
        for t in tables:
            r, m, _ = _rule_accuracy([o for o in ours if o.dataset == t], rule)
            per.append(f"{100 * r / m:5.1f}" if m else "    -")
        lines.append(
            f"{rule:<30}{f'{right}/{n}':>9}{_pct(right, n):>8}{_quantile(times, 0.5):>10.1f}"
            f"{_quantile(times, 0.9):>8.1f}  " + " ".join(per)
        )
    # leave one table out: the tie-break order is chosen on the other tables only
    lines.append("vote rule chosen without the held-out table (then scored on it):")
    held_right = held_n = 0
    for t in tables:
        train = [o for o in ours if o.dataset != t]
        test = [o for o in ours if o.dataset == t]
        # only rules that replay on every training question (their ways were all recorded)
        whole = [r for r in rules if r in VOTE_RULES and _rule_accuracy(train, r)[1] == len(train)]
        best = max(whole or VOTE_RULES, key=lambda r: _rule_accuracy(train, r)[0])
        r, m, _ = _rule_accuracy(test, best)
        held_right, held_n = held_right + r, held_n + m
        lines.append(f"  {_short(t, 26):<28}{best:<30}{_pct(r, m)}")
    lines.append(f"  held-out total: {held_right}/{held_n} {_pct(held_right, held_n)}")
    right, n, _ = _rule_accuracy(ours, SHIPPED)
    lines.append(f"shipped (Ask.candidates = vote): {SHIPPED}: {right}/{n} {_pct(right, n)}")
    # grounding: do the columns named match the columns the grounded code uses?
    named = [c for o in ours for c in o.candidates if c["name"] == "grounded" and c.get("used")]
    if named:
        covered = sum(set(c["used"]) <= set(c["named"]) for c in named)
        same = sum(set(c["used"]) == set(c["named"]) for c in named)
        lines.append(
            f"grounding: the named columns cover the ones the code uses in {covered}/"
            f"{len(named)} ({_pct(covered, len(named)).strip()}), equal them in {same}"
        )
    return "\n".join(lines)


def fold_report(outcomes: Sequence[Outcome]) -> str:
    """Accuracy per table (each table one fold), with the mean and spread across tables.

    The gap per table is dataask minus the baseline; a change tuned on some tables shows up as
    a spread that widens on the others.
    """
    tables = sorted({o.dataset for o in outcomes})
    lines = [f"{'table (fold)':<28}{'n':>5}{'dataask':>10}{'baseline':>10}{'gap':>8}"]
    accs: dict[str, list[float]] = {s: [] for s in SYSTEMS}
    for t in tables:
        cells = []
        n = 0
        for s in SYSTEMS:
            group = [o for o in outcomes if o.dataset == t and o.system == s]
            n = max(n, len(group))
            acc = 100 * sum(o.ok for o in group) / len(group) if group else float("nan")
            if group:
                accs[s].append(acc)
            cells.append(acc)
        gap = cells[0] - cells[1]
        lines.append(f"{_short(t, 27):<28}{n:>5}{cells[0]:>10.1f}{cells[1]:>10.1f}{gap:>+8.1f}")
    for s in SYSTEMS:
        if len(accs[s]) > 1:
            lines.append(
                f"{s} across tables: mean {statistics.fmean(accs[s]):.1f}, "
                f"sd {statistics.stdev(accs[s]):.1f}, min {min(accs[s]):.1f}, "
                f"max {max(accs[s]):.1f}"
            )
    return "\n".join(lines)


def _first_token(group: list[Outcome]) -> str:
    times = [o.first_token_seconds for o in group if o.first_token_seconds is not None]
    return f"{_quantile(times, 0.5):.2f}" if times else "-"


def _tokens_per_second(group: list[Outcome]) -> str:
    """Generated tokens over the time after the first token, summed over the questions."""
    tokens = seconds = 0.0
    for o in group:
        if o.first_token_seconds is not None and o.llm_seconds > o.first_token_seconds:
            tokens += o.completion_tokens
            seconds += o.llm_seconds - o.first_token_seconds
    return f"{tokens / seconds:.1f}" if seconds else "-"


def _cache_rate(group: list[Outcome]) -> str:
    """Share of prompt tokens the server's prompt cache served (where the server reports it)."""
    reported = [o for o in group if o.cached_tokens is not None]
    prompt = sum(o.prompt_tokens for o in reported)
    return f"{100 * sum(o.cached_tokens or 0 for o in reported) / prompt:.0f}%" if prompt else "-"


def _pct(n: int, d: int) -> str:
    return f"{100 * n / d:5.1f}%" if d else "    -"


def _quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarize(outcomes: Sequence[Outcome], *, header: str = "") -> str:
    """The summary table: accuracy overall and per type for each system, the gap, costs."""
    systems = [s for s in SYSTEMS if any(o.system == s for o in outcomes)]
    per: dict[str, list[Outcome]] = {s: [o for o in outcomes if o.system == s] for s in systems}
    both = len(systems) == 2
    types = [t for t in ANSWER_TYPES if any(o.type == t for o in outcomes)]
    types += sorted({o.type for o in outcomes} - set(types))
    w = 24
    lines = [header] if header else []
    lines.append(
        f"{'':<{w}}" + "".join(f"{s:>15}" for s in systems) + ("   gap (points)" if both else "")
    )

    def acc_row(label: str, type_: str | None) -> str:
        accs: list[float] = []
        cells = []
        n = 0
        for s in systems:
            group = [o for o in per[s] if type_ is None or o.type == type_]
            n = max(n, len(group))
            right = sum(o.ok for o in group)
            accs.append(100 * right / len(group) if group else 0.0)
            cells.append(f"{f'{right}/{len(group)}':>7} {_pct(right, len(group))}")
        gap = f"{accs[0] - accs[1]:+10.1f}" if both else ""
        return f"{label:<{w}}" + "".join(f"{c:>15}" for c in cells) + gap

    lines.append(acc_row("accuracy, all", None))
    for t in types:
        lines.append(acc_row(f"  {t}", t))

    def row(label: str, fn: Callable[[list[Outcome]], str]) -> str:
        return f"{label:<{w}}" + "".join(f"{fn(per[s]):>15}" for s in systems)

    lines.append(row("errors (no answer)", lambda g: str(sum(o.error is not None for o in g))))
    lines.append(row("  of which timeouts", lambda g: str(sum(o.timed_out for o in g))))
    lines.append(row("repairs used", lambda g: str(sum(o.repairs for o in g))))
    lines.append(row("  questions repaired", lambda g: str(sum(o.repairs > 0 for o in g))))
    lines.append(
        row("  right after a repair", lambda g: str(sum(o.repairs > 0 and o.ok for o in g)))
    )
    lines.append(
        row("latency median (s)", lambda g: f"{_quantile([o.seconds for o in g], 0.5):.1f}")
    )
    lines.append(row("latency p90 (s)", lambda g: f"{_quantile([o.seconds for o in g], 0.9):.1f}"))
    lines.append(
        row(
            "prompt tokens, mean", lambda g: f"{statistics.fmean([o.prompt_tokens for o in g]):.0f}"
        )
    )
    lines.append(
        row(
            "completion tokens, mean",
            lambda g: f"{statistics.fmean([o.completion_tokens for o in g]):.0f}",
        )
    )
    lines.append(row("first token median (s)", _first_token))
    lines.append(row("generated tokens/s", _tokens_per_second))
    lines.append(row("prompt cache hit rate", _cache_rate))
    if both:
        a, b = (sum(o.ok for o in per[s]) for s in systems)
        ratio = f"{a / b:.2f}x" if b else "inf"
        lines.append(f"{'accuracy ratio':<{w}}{ratio:>15} (dataask / baseline, same model)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def build_settings(args: argparse.Namespace) -> Ask:
    s = Ask()
    s.exec_timeout = min(args.exec_timeout, args.timeout)
    # An LLM request ends (its connection closed, so a llama.cpp server cancels the generation)
    # a little before the wall-clock guard, and is not retried: a retry of a runaway generation
    # would keep a one-slot server busy into the next questions.
    s.llm_timeout = _llm_timeout(args.timeout)
    s.llm_max_retries = 0
    if args.endpoint:
        s.llm = ""
        s.llm_base_url = args.endpoint
        s.llm_api_key = args.api_key or "not-needed"
        s.llm_model = args.model or ""
    else:
        s.llm = "local"
    if args.sandbox:
        s.sandbox = args.sandbox
    s.result_checks = parse_checks(args.checks)
    if args.candidates:
        s.candidates = args.candidates
    return s


def parse_checks(text: str) -> bool | list[str]:
    """``--checks``: "all", "none", or comma-separated check names."""
    if text == "all":
        return True
    if text == "none":
        return False
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise SystemExit(f"unknown check(s): {', '.join(unknown)}; known: {', '.join(CHECKS)}")
    return names


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/accuracy.py",
        description=__doc__.split("\n\n", 2)[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--qa", type=Path, help="QA folder in the DataBench layout")
    p.add_argument("--limit", type=int, help="only the first N questions (after --ids)")
    p.add_argument("--ids", nargs="+", default=[], help="only these question ids")
    p.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the organisers' baseline prompt (default: yes)",
    )
    p.add_argument("--endpoint", help="OpenAI-compatible base URL (default: the local model)")
    p.add_argument("--model", help="model name at --endpoint")
    p.add_argument("--api-key", help="API key for --endpoint")
    p.add_argument("--lite", action="store_true", help="sample.parquet and sample_answer")
    p.add_argument("--timeout", type=float, default=180.0, help="wall-clock seconds per question")
    p.add_argument(
        "--exec-timeout", type=float, default=30.0, help="seconds one run of code may take"
    )
    p.add_argument("--sandbox", choices=["auto", "docker", "local"], help="default: Ask.sandbox")
    p.add_argument(
        "--checks",
        default="all",
        help="result checks in force: all, none, or names separated by commas "
        f"({', '.join(CHECKS)}); the summary reports each one's effect",
    )
    p.add_argument(
        "--candidates",
        choices=["auto", *MODES],
        help="Ask.candidates for dataask (default: the setting's, auto: a vote on the local "
        "model); 'all' answers every way every time and the summary then also prints what "
        "each way and each vote rule would have scored",
    )
    p.add_argument(
        "--folds",
        choices=["tables"],
        help="also print accuracy per table (leave-one-table-out folds): mean and spread",
    )
    p.add_argument(
        "--replay",
        metavar="RULE",
        help="with --summarize: score dataask as a vote rule would have answered, from the "
        "ways recorded (e.g. 'chat', 'chat>grounded>line scalars')",
    )
    p.add_argument("--out", type=Path, help="per-question JSONL (a .summary.txt goes beside it)")
    p.add_argument("--quiet", action="store_true", help="no per-question progress on stderr")
    p.add_argument(
        "--summarize",
        type=Path,
        nargs="+",
        metavar="JSONL",
        help="ask nothing: re-score earlier --out files (merged) and print their summary",
    )
    return p.parse_args(argv)


def read_outcomes(paths: Sequence[Path]) -> list[Outcome]:
    """Outcomes from earlier JSONL files, re-scored; a later line for the same question wins."""
    latest: dict[tuple[str, str], Outcome] = {}
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                o = Outcome(**json.loads(line))
                o.score()
                latest[(o.system, o.id)] = o
    return list(latest.values())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.summarize:
        done = read_outcomes(args.summarize)
        files = ", ".join(str(p) for p in args.summarize)
        header = f"DataBench accuracy, re-scored from {files}"
        if args.replay:
            done = replay(done, args.replay)
            header += f"\ndataask replayed with the vote rule {args.replay!r}"
        print(summarize(done, header=header + "\n"))
        print("\n" + check_report(done))
        if args.folds:
            print("\n" + fold_report(done))
        ways = candidate_report(done)
        if ways:
            print("\n" + ways)
        return 0
    qa_dir = (args.qa or default_qa_dir()).resolve()
    questions = select(load_questions(qa_dir, lite=args.lite), args.ids, args.limit)
    if not questions:
        raise SystemExit("no questions selected")
    settings = build_settings(args)
    notify: Notify = _stderr
    say: Notify = (lambda _m: None) if args.quiet else _stderr
    reaper = Reaper()
    baseline = BaselineModel(settings, args.timeout, notify) if args.baseline else None
    outcomes: list[Outcome] = []
    out_file: TextIO | None = None
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        out_file = open(args.out, "w", encoding="utf-8")  # noqa: SIM115 - closed in finally
    total = len(questions) * (2 if baseline else 1)
    started = time.perf_counter()

    def record(o: Outcome) -> None:
        outcomes.append(o)
        if out_file is not None:
            out_file.write(json.dumps(asdict(o), ensure_ascii=False) + "\n")
            out_file.flush()
        mark = "ok " if o.ok else ("ERR" if o.error else "no ")
        shown = o.error if o.error and not o.answer.startswith("__CODE") else o.answer
        say(
            f"[{len(outcomes):>3}/{total}] {o.system:<8} {o.dataset} #{o.id:<4} {o.type:<14} "
            f"{mark} {o.seconds:5.1f}s {o.repairs}r  {_short(shown)!r} (gold {_short(o.gold)!r})"
        )

    def fail_all(system: str, qs: list[Question], why: str) -> None:
        for q in qs:
            o = Outcome.start(system, q)
            o.error = why
            record(o)

    interrupted = False
    restore = _stop_on_signals()
    try:
        for dataset, qs in by_dataset(questions).items():
            path = table_path(qa_dir, dataset, lite=args.lite)
            try:
                ours = DataaskRunner(settings, path, dataset, reaper, notify)
            except Exception as exc:
                why = f"the table could not be loaded: {_describe(exc)}"
                notify(f"accuracy: {dataset}: {why}")
                fail_all("dataask", qs, why)
                if baseline:
                    fail_all("baseline", qs, why)
                continue
            frame = ours.frame
            try:
                for q in qs:
                    record(_ask_safely(ours, q, args.timeout))
            finally:
                ours.close()
            if baseline is None:
                continue
            try:
                base = BaselineRunner(baseline, settings, frame, reaper, notify)
            except Exception as exc:
                fail_all("baseline", qs, f"the sandbox could not start: {_describe(exc)}")
                continue
            try:
                for q in qs:
                    record(_ask_safely(base, q, args.timeout))
            finally:
                base.close()
    except KeyboardInterrupt:
        interrupted = True
        notify("accuracy: interrupted; the summary covers the questions answered so far")
    finally:
        restore()
        if out_file is not None:
            out_file.close()
        reaper.finish(timeout=15)

    model = _endpoint_label(settings, baseline)
    header = (
        f"DataBench accuracy: {qa_dir} ({len(questions)} questions, "
        f"{'sample tables (lite)' if args.lite else 'full tables'})\n"
        f"model {model}; sandbox {settings.sandbox}; candidates {settings.candidates}; "
        f"{time.perf_counter() - started:.0f} s; load average {os.getloadavg()[1]:.1f} "
        f"(last 5 min; the machine has {os.cpu_count()} cores)"
        + (f"; baseline via /{baseline.mode}" if baseline and baseline.mode else "")
        + ("; INTERRUPTED" if interrupted else "")
        + "\n"
    )
    text = summarize(outcomes, header=header) if outcomes else header + "no answers"
    if outcomes:
        text += "\n\n" + check_report(outcomes)
        if args.folds:
            text += "\n\n" + fold_report(outcomes)
        ways = candidate_report(outcomes)
        if ways:
            text += "\n\n" + ways
    print(text, flush=True)
    if args.out:
        args.out.with_suffix(".summary.txt").write_text(text + "\n", encoding="utf-8")
    return 130 if interrupted else 0


def _ask_safely(runner: DataaskRunner | BaselineRunner, q: Question, timeout: float) -> Outcome:
    """``runner.ask``, with a failure outside the guarded part (a restart) recorded, not raised."""
    try:
        return runner.ask(q, timeout)
    except Exception as exc:
        out = Outcome.start("dataask" if isinstance(runner, DataaskRunner) else "baseline", q)
        out.error = f"failed: {_describe(exc)}"
        return out


def _stop_on_signals() -> Callable[[], None]:
    """SIGINT and SIGTERM end the run cleanly (sandboxes closed, summary of what was answered).

    A background job started by a non-interactive shell ignores SIGINT; this undoes that too.
    Returns the function that puts the previous handlers back.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def _endpoint_label(settings: Ask, baseline: BaselineModel | None) -> str:
    ep = baseline.client.endpoint if baseline is not None else None
    if ep is not None:
        return f"{ep.model} at {ep.base_url}"
    if settings.llm == "local":
        return "the local model"
    return f"{settings.llm_model or 'default'} at {settings.llm_base_url}"


if __name__ == "__main__":
    sys.exit(main())
