"""The ask loop's repair, recheck, cancel and event logic, with a fake LLM and a fake runner.

No generated code runs here: the fake runner maps each piece of code to a scripted outcome.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from dataask_jupyter import Event, Session
from dataask_jupyter.errors import CancelledError, DataaskError, LLMError, SandboxError
from dataask_jupyter.llm import Completion
from dataask_jupyter.sandbox import RunOutcome

FRAME = pd.DataFrame({"region": ["EU", "US", "EU"], "revenue": [10.0, 20.0, 5.0]})


class FakeLLM:
    """Replies in order; each reply is code (fenced here) or an exception to raise."""

    def __init__(self, *replies: str | BaseException | Callable[[], str]) -> None:
        self.replies = list(replies)
        self.calls: list[list[dict[str, str]]] = []

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        on_token: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        self.calls.append([dict(m) for m in messages])
        reply = self.replies.pop(0) if self.replies else "result = None"
        if callable(reply) and not isinstance(reply, BaseException):
            reply = reply()
        if isinstance(reply, BaseException):
            raise reply
        text = f"```python\n{reply}\n```"
        for i in range(0, len(text), 5):
            if on_token:
                on_token(text[i : i + 5])
        return Completion(text, 100, len(text) // 4, 0.0, "fake")

    def complete_text(
        self,
        prompt: str,
        *,
        max_tokens: int = 128,
        stop: list[str] | None = None,
        cancel: threading.Event | None = None,
    ) -> Completion:
        """The next reply, as the expression a one-line completion writes after ``return``."""
        self.calls.append([{"role": "text", "content": prompt}])
        reply = self.replies.pop(0) if self.replies else "None"
        if isinstance(reply, BaseException):
            raise reply
        text = reply() if callable(reply) else reply
        return Completion(" " + text, 100, len(text) // 4, 0.0, "fake")


class FakeRunner:
    """Maps code to an outcome (or an exception); records what ran."""

    def __init__(self, outcomes: dict[str, RunOutcome | BaseException]) -> None:
        self.outcomes = outcomes
        self.ran: list[str] = []
        self.frames: dict[str, pd.DataFrame] = {}
        self._prev: Any = None
        self.prev_history: list[Any] = []
        self.closed = 0

    @property
    def prev(self) -> Any:
        return self._prev

    def load(self, name: str, frame: pd.DataFrame) -> None:
        self.frames[name] = frame

    def drop(self, name: str) -> None:
        self.frames.pop(name, None)

    def run(
        self, code: str, dataset: str | None, *, cancel: threading.Event | None = None
    ) -> RunOutcome:
        self.ran.append(code)
        out = self.outcomes.get(
            code, RunOutcome(error="NameError: unknown", error_name="NameError")
        )
        if isinstance(out, BaseException):
            raise out
        if out.ok:
            self._prev = out.value
        return out

    def set_prev(self, value: Any) -> None:
        self._prev = value
        self.prev_history.append(value)

    def reset(self) -> None:
        self._prev = None

    def close(self) -> None:
        self.closed += 1

    def info(self) -> dict[str, Any]:
        return {"backend": "fake"}


def ok(value: Any, kind: str = "json") -> RunOutcome:
    return RunOutcome(value=value, kind=kind)


def failed(error: str, name: str = "KeyError") -> RunOutcome:
    return RunOutcome(error=error, error_name=name, traceback="Traceback ...")


def session(llm: FakeLLM, runner: FakeRunner, **settings: Any) -> Session:
    s = Session(llm=llm, runner=runner, **settings)
    s.load(FRAME, name="sales")
    return s


def test_first_try_ok_and_events_in_order() -> None:
    llm = FakeLLM('result = df["revenue"].sum()')
    runner = FakeRunner({'result = df["revenue"].sum()': ok(35.0)})
    events: list[Event] = []
    a = session(llm, runner).ask("What is the total revenue?", on_event=events.append)
    assert a.ok and a.value == 35.0 and a.code == 'result = df["revenue"].sum()'
    assert [t.outcome for t in a.attempts] == ["ok"]
    kinds = [e.kind for e in events]
    assert kinds[0] == "stage" and events[0].text == "writing code"
    assert "token" in kinds and kinds.index("token") < kinds.index("code")
    stages = [e.text for e in events if e.kind == "stage"]
    assert stages == ["writing code", "running in the sandbox", "checking the result"]
    assert events[-1].kind == "answer" and "35.0" in events[-1].text
    assert "".join(e.text for e in events if e.kind == "token").count("revenue") == 1
    assert {e.attempt for e in events if e.kind != "answer"} == {1}


def test_run_failure_is_repaired_with_the_error_and_a_hint() -> None:
    llm = FakeLLM('result = df["Revenue"].sum()', 'result = df["revenue"].sum()')
    runner = FakeRunner(
        {
            'result = df["Revenue"].sum()': failed("KeyError: 'Revenue'"),
            'result = df["revenue"].sum()': ok(35.0),
        }
    )
    events: list[Event] = []
    a = session(llm, runner).ask("What is the total revenue?", on_event=events.append)
    assert a.ok and a.value == 35.0
    assert [t.outcome for t in a.attempts] == ["run_failed", "ok"]
    assert a.attempts[0].error == "KeyError: 'Revenue'"
    repair = llm.calls[1][-1]["content"]
    assert "KeyError: 'Revenue'" in repair and "revenue" in repair  # the hint names the column
    assert any(e.kind == "stage" and e.text.startswith("repairing: KeyError") for e in events)
    assert any(e.kind == "error" and e.attempt == 1 for e in events)


def test_misfit_gets_one_recheck_and_the_first_result_stands_when_the_retry_is_worse() -> None:
    llm = FakeLLM("result = df.revenue > 6", "result = []")
    runner = FakeRunner(
        {
            "result = df.revenue > 6": ok([True, True, False]),
            "result = []": ok([]),
        }
    )
    a = session(llm, runner).ask("Is there any revenue above 6?")
    assert [t.outcome for t in a.attempts] == ["misfit", "ok"]
    assert a.attempts[0].check == "yes_no"
    assert a.ok and a.value == [True, True, False]  # the empty retry did no better
    assert a.code == "result = df.revenue > 6"
    assert runner.prev == [True, True, False]  # the shown answer is the next question's prev


def test_named_checks_can_be_switched_off_one_by_one() -> None:
    llm = FakeLLM("result = df.revenue > 6")
    runner = FakeRunner({"result = df.revenue > 6": ok([True, True, False])})
    a = session(llm, runner, result_checks=["empty", "count"]).ask("Is there any revenue above 6?")
    assert [t.outcome for t in a.attempts] == ["ok"]
    s = session(FakeLLM("result = 1"), FakeRunner({"result = 1": ok(1)}), result_checks=["nope"])
    bad = s.ask("How many?")
    assert bad.error is not None and "unknown result check" in bad.error and "'nope'" in bad.error


def test_a_timeout_is_not_repaired_unless_asked() -> None:
    loop = "while True:\n    pass\nresult = 1"
    runner = FakeRunner({loop: failed("Timeout: the code ran longer than 1 s", "Timeout")})
    a = session(FakeLLM(loop, loop, loop), runner, max_repairs=2).ask("count rows")
    assert not a.ok and "Timeout" in (a.error or "") and len(runner.ran) == 1
    runner2 = FakeRunner({loop: failed("Timeout: too long", "Timeout"), "result = 3": ok(3)})
    s = session(FakeLLM(loop, "result = 3"), runner2, repair_timeouts=True)
    assert s.ask("count rows").value == 3


def test_a_dead_sandbox_ends_the_question_and_the_next_one_works() -> None:
    runner = FakeRunner(
        {"result = 1": SandboxError("the sandbox stopped answering"), "result = 2": ok(2)}
    )
    s = session(FakeLLM("result = 1", "result = 2"), runner)
    a = s.ask("one?")
    assert not a.ok and "stopped answering" in (a.error or "") and len(runner.ran) == 1
    assert a.attempts[0].code == "result = 1"  # the failing code is kept to show
    assert s.ask("two?").value == 2
    assert [t.ok for t in s.history] == [False, True]


def test_an_llm_failure_after_a_misfit_keeps_the_misfit() -> None:
    llm = FakeLLM("result = df.revenue > 6", LLMError("the LLM endpoint failed with HTTP 500"))
    runner = FakeRunner({"result = df.revenue > 6": ok([True, True, False])})
    a = session(llm, runner).ask("Is there any revenue above 6?")
    assert a.ok and a.value == [True, True, False]


def test_cancel_from_another_thread_while_the_llm_writes() -> None:
    started = threading.Event()

    def slow() -> str:
        started.set()
        for _ in range(200):
            if s._cancel.is_set():
                raise CancelledError("cancelled")
            time.sleep(0.01)
        return "result = 1"

    s = session(FakeLLM(slow, "result = 2"), FakeRunner({"result = 2": ok(2)}))
    threading.Thread(target=lambda: (started.wait(5), s.cancel()), daemon=True).start()
    a = s.ask("slow one")
    assert a.cancelled and a.error == "cancelled" and s.history[-1] is a
    b = s.ask("next one")
    assert b.ok and b.value == 2 and not b.cancelled


def test_ctrl_c_during_a_run_is_a_cancelled_answer() -> None:
    runner = FakeRunner({"result = 1": KeyboardInterrupt(), "result = 2": ok(2)})
    s = session(FakeLLM("result = 1", "result = 2"), runner)
    a = s.ask("interrupted")
    assert a.cancelled and not a.ok
    assert s.ask("again").value == 2


def test_the_vote_keeps_the_majority_and_builds_the_next_prev_on_it() -> None:
    llm = FakeLLM(
        'result = df["revenue"].max()',  # chat: 20.0
        'df["revenue"].sum()',  # line: 35.0 (differs)
        'df["revenue"].mean()',  # described: 17.5 (differs again)
        "revenue",  # the columns the question needs
        'result = float(df["revenue"].sum())',  # grounded: 35.0
    )
    runner = FakeRunner(
        {
            'result = df["revenue"].max()': ok(20.0),
            'result = df["revenue"].sum()': ok(35.0),
            'result = df["revenue"].mean()': ok(17.5),
            'result = float(df["revenue"].sum())': ok(35.0),
        }
    )
    s = session(llm, runner, candidates="all")
    a = s.ask("What is the total revenue?")
    assert a.value == 35.0 and a.code == 'result = df["revenue"].sum()'
    assert [c.name for c in a.candidates] == ["chat", "line", "described", "grounded"]
    assert "2 of 4 ways of answering gave this answer" in a.notes
    assert a.repairs == 0  # other ways are not repairs
    assert runner.prev == 35.0
    assert llm.calls[1][0]["content"].endswith("    return")
    assert "# The table df:" in llm.calls[2][0]["content"]
    assert llm.calls[4][-1]["content"].startswith('Columns this question needs: "revenue".')


def test_an_injected_chat_only_client_answers_once_even_when_asked_to_vote() -> None:
    class ChatOnly:
        def __init__(self) -> None:
            self.inner = FakeLLM('result = df["revenue"].sum()')

        def complete(self, messages: list[dict[str, str]], **kw: Any) -> Completion:
            return self.inner.complete(messages, **kw)

    runner = FakeRunner({'result = df["revenue"].sum()': ok(35.0)})
    s = Session(llm=ChatOnly(), runner=runner, candidates="vote")  # type: ignore[arg-type]
    s.load(FRAME, name="sales")
    a = s.ask("What is the total revenue?")
    assert a.value == 35.0 and a.candidates == []


def test_cancel_while_the_other_ways_answer_is_a_cancelled_answer() -> None:
    llm = FakeLLM('result = df["revenue"].sum()', CancelledError("cancelled"), "result = 2")
    runner = FakeRunner({'result = df["revenue"].sum()': ok(35.0), "result = 2": ok(2)})
    s = session(llm, runner, candidates="vote")
    a = s.ask("What is the total revenue?")
    assert a.cancelled and not a.ok and s.history[-1] is a
    assert s.ask("two").value == 2


def test_cancel_when_idle_does_nothing() -> None:
    s = session(FakeLLM("result = 2"), FakeRunner({"result = 2": ok(2)}))
    s.cancel()
    assert s.ask("two").value == 2


def test_a_bug_below_the_session_is_an_answer_error_not_a_crash() -> None:
    runner = FakeRunner({"result = 1": RuntimeError("boom"), "result = 2": ok(2)})
    s = session(FakeLLM("result = 1", "result = 2"), runner)
    a = s.ask("one")
    assert not a.ok and "internal error" in (a.error or "") and "boom" in (a.error or "")
    assert s.ask("two").value == 2


def test_a_broken_event_handler_does_not_cost_the_answer() -> None:
    def handler(event: Event) -> None:
        raise ValueError("view broke")

    s = session(FakeLLM("result = 2"), FakeRunner({"result = 2": ok(2)}))
    assert s.ask("two", on_event=handler).value == 2


def test_questions_from_two_threads_are_serialised_in_order() -> None:
    inside = threading.Event()
    release = threading.Event()

    def first() -> str:
        inside.set()
        release.wait(5)
        return "result = len(df)"

    s = session(
        FakeLLM(first, "result = df.shape[0]"),
        FakeRunner({"result = len(df)": ok(1), "result = df.shape[0]": ok(2)}),
    )
    out: dict[str, Any] = {}
    t = threading.Thread(target=lambda: out.update(a=s.ask("first")))
    t.start()
    inside.wait(5)
    waiting: list[Event] = []
    t2 = threading.Thread(target=lambda: out.update(b=s.ask("second", on_event=waiting.append)))
    t2.start()
    time.sleep(0.2)
    assert waiting and waiting[0].text == "waiting for the question in progress"
    release.set()
    t.join(5)
    t2.join(5)
    assert [a.question for a in s.history] == ["first", "second"]
    assert out["a"].value == 1 and out["b"].value == 2


def test_the_profile_is_computed_once_per_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataask_jupyter import prompt

    calls: list[str] = []
    real = prompt.profile_frame

    def counting(frame: pd.DataFrame, name: str, **kw: Any) -> str:
        calls.append(name)
        return real(frame, name, **kw)

    monkeypatch.setattr(prompt, "profile_frame", counting)
    s = session(
        FakeLLM("result = 1", "result = 1", "result = 1"), FakeRunner({"result = 1": ok(1)})
    )
    s.ask("a")
    s.ask("b")
    assert calls == ["sales"]
    s.load(FRAME.head(2), name="sales")  # replaced: described again
    s.ask("c")
    assert calls == ["sales", "sales"]


def test_prompt_preview_is_what_the_next_question_sends() -> None:
    llm = FakeLLM("result = 1")
    s = session(llm, FakeRunner({"result = 1": ok(1)}))
    preview = s.prompt_preview("How many rows?")
    s.ask("How many rows?")
    assert preview == llm.calls[0]


def test_send_samples_off_keeps_cell_values_out_of_the_prompt() -> None:
    frame = pd.DataFrame({"customer": ["Zebulon Q", "Ysolde R"], "amount": [123456.5, 98765.25]})
    s = Session(llm=FakeLLM(), runner=FakeRunner({}), send_samples=False)
    s.load(frame, name="private")
    text = "\n".join(m["content"] for m in s.prompt_preview("q"))
    assert "customer" in text and "amount" in text
    assert "Zebulon" not in text and "123456" not in text and "98765" not in text
    s.settings.send_samples = True
    assert "Zebulon" in "\n".join(m["content"] for m in s.prompt_preview("q"))


def test_empty_question_and_unknown_dataset_are_dataask_errors() -> None:
    s = session(FakeLLM(), FakeRunner({}))
    with pytest.raises(DataaskError):
        s.ask("   ")
    with pytest.raises(DataaskError, match="no dataset named"):
        s.ask("q", dataset="nope")


def test_a_follow_up_repeats_the_earlier_messages_byte_for_byte() -> None:
    """The server's prompt cache serves everything up to the new question."""
    llm = FakeLLM("result = len(df)", "result = df.revenue.sum()")
    runner = FakeRunner({"result = len(df)": ok(3), "result = df.revenue.sum()": ok(35.0)})
    s = session(llm, runner)
    s.ask("How many rows are there?")
    s.ask("What is the total revenue?")
    first, second = llm.calls
    assert second[: len(first)] == first
