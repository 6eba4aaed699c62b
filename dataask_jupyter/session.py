"""``Session``: the one place where a question becomes an answer.

The magics, the upload widget, the side panel and the benchmarks all call it; none re-implements
a step. A session holds the datasets, the conversation (bounded) and one sandbox. ``ask`` is a
short loop: build the prompt, stream the LLM's reply, take it through the steps of
:mod:`dataask_jupyter.attempts`, and send a failure or a misfit back for a bounded number of
better tries. Questions are serialised; ``cancel()`` or Ctrl-C stops the one in progress.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dataask_jupyter import attempts, candidates, checks, prompt, readers, results
from dataask_jupyter.answer import Answer, Attempt, Dataset
from dataask_jupyter.attempts import LLM, Misfit, Ok, RunFailed, Runner, Task
from dataask_jupyter.config import Ask
from dataask_jupyter.errors import (
    CancelledError,
    DataaskError,
    DatasetNotFoundError,
    FileTooLargeError,
)
from dataask_jupyter.events import Event, EventHandler, EventKind
from dataask_jupyter.llm import Completion
from dataask_jupyter.store import ConversationStore, DatasetRecord, TurnRecord
from dataask_jupyter.vote import Candidate

__all__ = ["Answer", "Attempt", "Dataset", "Session"]

CANCELLED = "cancelled"
_RESTORED_VALUES = 20  # turns whose values come back after a restart (the rest: summaries)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class _Events:
    """Hands events to the caller's ``on_event``; a handler that raises never breaks a question."""

    def __init__(self, handler: EventHandler | None) -> None:
        self.handler = handler
        self.attempt = 0

    def __call__(self, kind: EventKind, text: str) -> None:
        if self.handler is None:
            return
        try:
            self.handler(Event(kind, text, self.attempt))
        except Exception:  # a broken progress view must not cost the answer
            self.handler = None


@dataclass
class _Best:
    """The result an answer will show: the accepted one, or a misfit kept in case no try fits."""

    outcome: Ok | Misfit
    checked: bool = True  # False: a repair's result, accepted without the result checks

    @property
    def value(self) -> Any:
        return self.outcome.run.value


class Session:
    """Datasets, conversation and sandbox for one user (one per kernel in notebooks).

    ``Session(exec_timeout=30, llm_model="...")`` overrides any ``Ask`` setting; pass ``config``
    to share a live ``Ask`` instance (the magics do, so ``%config Ask.x`` takes effect). ``llm``
    (an object with ``complete``) and ``runner`` replace the LLM client and the sandbox (tests pass
    fakes, the way httpx takes a transport); ``llm="local"`` is the ``Ask.llm`` setting.
    ``store`` keeps the conversation across restarts (the magics pass one).
    """

    def __init__(
        self,
        config: Ask | None = None,
        *,
        notify: Callable[[str], None] | None = None,
        llm: LLM | str | None = None,
        runner: Runner | None = None,
        store: ConversationStore | None = None,
        **overrides: Any,
    ) -> None:
        if isinstance(llm, str):  # the Ask.llm setting ("local"), not a client
            overrides["llm"], llm = llm, None
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
        self._profiles = prompt.Profiles()
        self._lock = threading.RLock()
        self._cancel = threading.Event()
        self._busy = False
        self._upload_dir: Path | None = None
        if llm is None:
            from dataask_jupyter.llm import LLMClient

            llm = LLMClient(self.settings, notify=lambda m: self.notify(m))
        self.llm: LLM = llm
        if runner is None:
            from dataask_jupyter.sandbox import Sandbox

            runner = Sandbox(self.settings, notify=lambda m: self.notify(m))
        self.sandbox: Runner = runner
        self._finalizer = weakref.finalize(self, _close_runner, runner)
        self.store = store
        self.pending: dict[str, DatasetRecord] = {}  # restored datasets, reloaded when needed
        self._store_failed = False
        if store is not None:
            self._restore(store)

    # --- what is kept across kernel restarts -----------------------------------------------
    def _restore(self, store: ConversationStore) -> None:
        """Bring back the stored conversation; datasets are reloaded from their files lazily."""
        try:
            # the values of the last few turns are decoded; older ones keep their summaries
            turns = store.turns(limit=max(1, self.settings.max_history), values=_RESTORED_VALUES)
            records = store.datasets()
        except DataaskError as exc:
            self.notify(f"dataask: the stored conversation could not be read ({exc})")
            return
        self.history = [Answer(**t.answer_fields()) for t in turns]
        self._turns = max((t.number for t in turns), default=0)
        self.pending = {r.name: r for r in records}
        self.active = next((r.name for r in records if r.active), None) or (
            records[-1].name if records else None
        )
        if self.history and self.history[-1].ok:
            with contextlib.suppress(DataaskError):
                self.sandbox.set_prev(self.history[-1].value)

    def _save(self, what: str, write: Callable[[ConversationStore], None]) -> None:
        """Write to the store; a failure is one notice (the session goes on in memory)."""
        if self.store is None:
            return
        try:
            write(self.store)
            self._store_failed = False
        except DataaskError as exc:
            if not self._store_failed:
                self.notify(f"dataask: could not save {what} ({exc}); it is kept in memory")
            self._store_failed = True

    def _save_dataset(self, ds: Dataset) -> None:
        self._save(
            "the dataset",
            lambda st: st.put_dataset(
                DatasetRecord.from_dataset(ds, active=ds.name == self.active)
            ),
        )

    def _reload_pending(self, needed: str | None) -> None:
        """Read again the datasets of an earlier kernel, at the first need. A file that is gone
        is an error when its dataset is the one needed, a notice otherwise."""
        active = self.active
        failures: dict[str, DataaskError] = {}
        for name, rec in list(self.pending.items()):
            del self.pending[name]
            try:
                changed = rec.reload_check()
                ds = self.load(**rec.load_args())
            except DataaskError as exc:
                failures[name] = exc
                self._forget_dataset(name)
                continue
            ds.notes.insert(0, changed or f"reloaded from {rec.source} after a kernel restart")
            if changed:
                self.notify(f'dataask: dataset "{name}": {changed}')
        self.active = active if active in self.datasets else next(reversed(self.datasets), None)
        if self.active is not None:
            self._save_dataset(self.datasets[self.active])
        want = needed or active
        if want in failures:
            raise failures.pop(want)
        for failure in failures.values():
            self.notify(f"dataask: {failure}")

    def _forget_dataset(self, name: str) -> None:
        self._save("", lambda st: st.drop_dataset(name))

    def forget(self) -> None:
        """Delete everything stored for this notebook (conversation, datasets, uploads) and
        start a new conversation; datasets loaded now stay loaded until the kernel ends."""
        with self._lock:
            self._save("", lambda st: st.forget())
            self.pending.clear()
            self.history.clear()
            self.sandbox.reset()

    def upload(
        self, filename: str, data: bytes, *, name: str | None = None, sheet: str | int | None = None
    ) -> Dataset:
        """Load an uploaded file (its bytes): kept in the upload store (so it survives a kernel
        restart) or, without a store, in a private temporary folder."""
        cap = self.settings.max_upload_bytes
        if len(data) > cap:
            raise FileTooLargeError(
                f"{Path(filename).name} is {len(data) / 1e6:,.1f} MB, over the "
                f"{cap / 1e6:,.0f} MB upload limit (Ask.max_upload_bytes)"
            )
        if self.store is not None:
            path = self.store.keep_upload(filename, data)
        else:
            if self._upload_dir is None:
                self._upload_dir = Path(tempfile.mkdtemp(prefix="dataask-upload-"))
                weakref.finalize(self, shutil.rmtree, self._upload_dir, True)
            path = self._upload_dir / (Path(filename).name or "upload")
            path.write_bytes(data)
        return self.load(path, name=name or _name_from_path(Path(filename)), sheet=sheet)

    # --- datasets -------------------------------------------------------------------------
    def load(
        self,
        source: str | os.PathLike[str] | pd.DataFrame,
        name: str | None = None,
        sheet: str | int | None = None,
        header_row: int | None = None,
        range: str | None = None,
    ) -> Dataset:
        """Read a CSV/XLS/XLSX/ODS/parquet file (or take a DataFrame); make it the active dataset.

        ``header_row`` (1-based, as Excel numbers rows) and ``range`` ("A5:E9") override the
        reader's layout detection; every decision the reader takes is listed in ``notes``.
        """
        options = {k: v for k, v in (("header_row", header_row), ("range", range)) if v is not None}
        res = readers.read_table(
            source,
            sheet=sheet,
            max_bytes=self.settings.max_file_bytes,
            max_uncompressed_bytes=self.settings.max_uncompressed_bytes,
            header_row=header_row,
            range=range,
        )
        if isinstance(source, pd.DataFrame):
            label, default = "a DataFrame", "df"
        else:
            label, default = str(source), _name_from_path(Path(source))
        ds = Dataset(
            name=_clean_name(name or default),
            source=label,
            format=res.format,
            frame=res.frame,
            sheet=res.sheet,
            sheets=list(res.sheets),
            notes=list(res.notes),
            encoding=res.encoding,
            delimiter=res.delimiter,
            engine=res.engine,
            options=options,
            hidden_sheets=dict(res.hidden_sheets),
            range=res.range,
            header_row=res.header_row,
        )
        with self._lock:
            self.sandbox.load(ds.name, ds.frame)
            self._profiles.forget(ds.name)
            self.pending.pop(ds.name, None)
            self.datasets[ds.name] = ds
            self.active = ds.name
            self._save_dataset(ds)
        return ds

    def use(self, name: str) -> Dataset:
        """Make ``name`` the active dataset."""
        with self._lock:
            ds = self._dataset(name)
            self.active = ds.name
            self._save_dataset(ds)
            return ds

    def drop(self, name: str) -> None:
        """Forget dataset ``name`` (here and in the sandbox)."""
        with self._lock:
            if name in self.pending:
                del self.pending[name]
                self._forget_dataset(name)
                return
            self._dataset(name)
            del self.datasets[name]
            self._profiles.forget(name)
            self.sandbox.drop(name)
            self._forget_dataset(name)
            if self.active == name:
                self.active = next(reversed(self.datasets), None) if self.datasets else None

    def _dataset(self, name: str | None) -> Dataset:
        if self.pending and (name is None or name not in self.datasets):
            self._reload_pending(name)
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
    def ask(
        self,
        question: str,
        dataset: str | None = None,
        *,
        on_event: EventHandler | None = None,
    ) -> Answer:
        """Answer ``question`` about the active dataset (or ``dataset``), repairing on errors.

        ``on_event`` gets a :class:`dataask.Event` at each stage, for each streamed piece of the
        reply, for the code about to run, for each failed try and for the answer. Failures of the
        LLM, the code or the sandbox, and cancellation, come back as ``Answer.error``; the session
        and its history go on. Questions from several threads are answered one at a time.
        """
        question = question.strip()
        if not question:
            raise DataaskError("the question is empty")
        events = _Events(on_event)
        with self._serialised(events):
            ds = self._dataset(dataset)
            self._turns += 1
            answer = Answer(question=question, dataset=ds.name, number=self._turns)
            started = time.perf_counter()
            self._cancel.clear()
            try:
                self._answer(answer, ds, events)
            except (CancelledError, KeyboardInterrupt):
                answer.cancelled, answer.error = True, CANCELLED
            except DataaskError as exc:
                answer.error = str(exc)
            except Exception as exc:  # a bug of ours must not cost the session
                answer.error = f"internal error ({type(exc).__name__}: {exc}); please report it"
            answer.seconds = time.perf_counter() - started
            self._remember(answer)
        events("answer", answer.summary)
        return answer

    def cancel(self) -> None:
        """Stop the question in progress (from any thread); a no-op when none is."""
        if self._busy:
            self._cancel.set()

    @contextmanager
    def _serialised(self, events: _Events) -> Iterator[None]:
        if not self._lock.acquire(blocking=False):
            events("stage", "waiting for the question in progress")
            self._lock.acquire()
        self._busy = True
        try:
            yield
        finally:
            self._busy = False
            self._lock.release()

    def _answer(self, answer: Answer, ds: Dataset, events: _Events) -> None:
        s = self.settings
        started = time.perf_counter()
        task = Task(
            question=answer.question,
            dataset=ds.name,
            frame=ds.frame,
            expectation=checks.expect(answer.question),
            checks=checks.enabled_checks(s.result_checks),
            static_checks=s.static_checks,
        )
        messages = self._messages(ds, task)
        asked = list(messages)  # as first sent (the repairs append to `messages`)
        prev = self.sandbox.prev  # what every try at this question builds on
        best: _Best | None = None
        why = ""
        for number in range(1, 2 + max(0, s.max_repairs)):
            events.attempt = number
            events("stage", "writing code" if number == 1 else f"repairing: {why}")
            tried = Attempt(code="")
            try:
                reply = self.llm.complete(
                    messages, on_token=lambda t: events("token", t), cancel=self._cancel
                )
                answer.attempts.append(tried)
                tried.reply = reply.text
                _count(answer, reply)
                recheck = best is None and number <= s.max_repairs
                outcome = attempts.attempt(
                    reply.text,
                    task,
                    self.sandbox,
                    recheck=recheck,
                    emit=events,
                    cancel=self._cancel,
                )
            except CancelledError:
                raise
            except DataaskError as exc:  # the LLM or the sandbox failed: no better try follows
                tried.error = answer.error = str(exc)
                events("error", answer.error)
                break
            tried.code, tried.outcome, tried.error = outcome.code, outcome.name, outcome.error
            if isinstance(outcome, Ok | Misfit):
                tried.value = outcome.run.value
            answer.code = outcome.code or answer.code
            if isinstance(outcome, Ok):
                if best is None or not _no_better(outcome.run.value, best.value):
                    best = _Best(outcome, checked=recheck)
                break
            events("error", outcome.error)
            answer.error = outcome.error
            if isinstance(outcome, Misfit):
                tried.check = outcome.check
                best = best or _Best(outcome)
                self.sandbox.set_prev(prev)  # the next try builds on the same `prev`
            if isinstance(outcome, RunFailed):
                answer.stdout = outcome.run.stdout
                if outcome.fatal or (outcome.timed_out and not s.repair_timeouts):
                    break
            why = _first_line(outcome.error)
            messages += outcome.follow_up(reply.text)
        if best is not None:
            chosen = best.outcome
            answer.value, answer.kind = chosen.run.value, chosen.run.kind
            answer.code, answer.notes, answer.stdout = chosen.code, chosen.notes, chosen.run.stdout
            answer.error = None
            if isinstance(chosen, Misfit):
                self.sandbox.set_prev(chosen.run.value)
        mode = self._candidates_mode()
        first = _as_candidate(answer, best)
        if mode != "single" and best is not None and not best.checked:
            # a repair's result was accepted unchecked; the vote needs to know if it fits
            found = attempts.misfit(task, first.value, first.code)
            first.misfit = found.check if found is not None else None
        first.seconds = time.perf_counter() - started
        if mode != "single" and candidates.votes_on(first, task.question):
            self._vote(answer, first, mode, task, asked, prev, events)

    def _candidates_mode(self) -> str:
        """``Ask.candidates``, with "auto" settled: a vote on the embedded local model."""
        mode = self.settings.candidates
        if not hasattr(self.llm, "complete_text"):  # an injected client with chat only
            return "single"
        if mode != "auto":
            return mode
        endpoint = getattr(self.llm, "endpoint", None)
        return "vote" if endpoint is not None and getattr(endpoint, "local", False) else "single"

    def _vote(
        self,
        answer: Answer,
        first: Candidate,
        mode: str,
        task: Task,
        asked: list[dict[str, str]],
        prev: Any,
        events: _Events,
    ) -> None:
        """Answer the question other ways too and keep what most ways agree on (their events
        keep the attempt number: they are not repairs)."""
        tally, answer.candidates = candidates.second_opinions(
            first,
            mode=mode,
            task=task,
            messages=asked,
            llm=self.llm,
            runner=self.sandbox,
            prev=prev,
            prev_summary=None if prev is None else results.summarize(prev),
            table=self._described(self.datasets[task.dataset]),
            emit=events,
            count=lambda reply: _count(answer, reply),
            cancel=self._cancel,
        )
        chosen = tally.chosen
        if chosen.error is not None:
            self.sandbox.set_prev(prev if first.error is not None else first.value)
            return
        answer.value, answer.kind, answer.code = chosen.value, chosen.kind, chosen.code
        answer.notes, answer.stdout, answer.error = list(chosen.notes), chosen.stdout, None
        if tally.voters > 1 and tally.agree < tally.voters:
            answer.notes.append(
                f"{tally.agree} of {len(answer.candidates)} ways of answering gave this answer"
            )
        self.sandbox.set_prev(chosen.value)

    def _described(self, ds: Dataset) -> str:
        """The dataset's description as the chat prompt carries it (cached by ``Profiles``)."""
        s = self.settings
        return self._profiles.describe(
            ds.frame,
            ds.name,
            ds.notes,
            brief=False,
            max_columns=s.profile_max_columns,
            max_chars=s.profile_max_chars,
            values=s.send_samples,
        )

    def _messages(self, ds: Dataset, task: Task) -> list[dict[str, str]]:
        s = self.settings
        hints = bool(task.checks)
        with_code = [t for t in self.history if t.code]
        past = [  # only the turns the prompt carries: summaries cost time per turn
            prompt.PastTurn(
                t.question, t.code, t.summary, checks.expect(t.question).hint() if hints else None
            )
            for t in (with_code[-s.history_turns :] if s.history_turns > 0 else [])
        ]
        return prompt.build_messages(
            {n: d.frame for n, d in self.datasets.items()},
            ds.name,
            task.question,
            past,
            history_turns=s.history_turns,
            max_columns=s.profile_max_columns,
            max_chars=s.profile_max_chars,
            hint=task.expectation.hint() if task.checks else None,
            notes={n: d.notes for n, d in self.datasets.items()},
            values=s.send_samples,
            profiles=self._profiles,
        )

    def prompt_preview(
        self, question: str = "<your question>", dataset: str | None = None
    ) -> list[dict[str, str]]:
        """Exactly the messages the next question would send to the LLM (nothing is sent)."""
        with self._lock:
            ds = self._dataset(dataset)
            task = Task(
                question=question.strip() or "<your question>",
                dataset=ds.name,
                frame=ds.frame,
                expectation=checks.expect(question),
                checks=checks.enabled_checks(self.settings.result_checks),
            )
            return self._messages(ds, task)

    def _remember(self, answer: Answer) -> None:
        self._save("the question", lambda st: st.add_turn(TurnRecord.from_answer(answer)))
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
        """Export the value of ``turn`` (default: the last answer) to ``path`` (.csv, .json,
        .xlsx, .png), or the whole conversation as plain pandas code (.ipynb, .py) that runs
        without dataask or any LLM."""
        if Path(path).suffix.lower() in (".ipynb", ".py"):
            from dataask_jupyter import reproduce

            with self._lock:
                turns = [TurnRecord.from_answer(a) for a in self.history]
                records = [
                    DatasetRecord.from_dataset(d, active=n == self.active)
                    for n, d in self.datasets.items()
                ] + list(self.pending.values())
                frames = {n: d.frame for n, d in self.datasets.items()}
            return reproduce.write_conversation(path, turns, records, frames=frames)
        options.setdefault("formula_guard", self.settings.formula_guard)
        return self.turn(turn).export(path, **options)

    def reset(self) -> None:
        """Start a new conversation (datasets stay loaded)."""
        with self._lock:
            self._save("", lambda st: st.new_conversation())
            self.history.clear()
            self.sandbox.reset()

    def sandbox_info(self) -> dict[str, Any]:
        return self.sandbox.info()

    def close(self) -> None:
        """Stop the sandbox (and the PNG renderer); the session can be used again (both start
        lazily)."""
        _close_runner(self.sandbox)
        if "dataask_jupyter.export" in sys.modules:  # a renderer runs only if PNGs were made
            with contextlib.suppress(Exception):
                sys.modules["dataask_jupyter.export"].close_png_renderer()
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_runner(runner: Runner) -> None:
    with contextlib.suppress(Exception):  # closing never raises past the API
        runner.close()


def _count(answer: Answer, reply: Completion) -> None:
    """Add one LLM reply's tokens and time to ``answer``."""
    answer.prompt_tokens += reply.prompt_tokens
    answer.completion_tokens += reply.completion_tokens
    answer.llm_seconds += reply.seconds
    if reply.cached_tokens is not None:
        answer.cached_tokens = (answer.cached_tokens or 0) + reply.cached_tokens
    if answer.first_token_seconds is None:
        answer.first_token_seconds = reply.first_token_seconds


def _as_candidate(answer: Answer, best: _Best | None) -> Candidate:
    """The chat answer (after its repairs) as the first candidate of a vote."""
    if best is None:
        return Candidate("chat", code=answer.code, error=answer.error or "no answer")
    chosen = best.outcome
    return Candidate(
        "chat",
        code=chosen.code,
        value=chosen.run.value,
        kind=chosen.run.kind,
        stdout=chosen.run.stdout,
        notes=list(chosen.notes),
        misfit=chosen.check if isinstance(chosen, Misfit) else None,
    )


def _no_better(value: Any, first: Any) -> bool:
    """A retry after a misfit that came back empty when the first result was not."""
    return checks.is_missing(value) and not checks.is_missing(first)


def _first_line(text: str | None, limit: int = 120) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else "it failed"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _name_from_path(path: Path) -> str:
    return path.stem or "data"


def _clean_name(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name.strip())
    if not cleaned or cleaned[0].isdigit():
        cleaned = "d_" + cleaned
    return cleaned
