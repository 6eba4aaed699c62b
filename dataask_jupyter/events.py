"""Progress events: what ``Session.ask`` reports while it works (``on_event`` callbacks)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

EventKind = Literal["stage", "token", "code", "error", "answer"]


@dataclass(frozen=True)
class Event:
    """One step of a question's progress.

    ``kind``: "stage" (what the session is doing now, e.g. "writing code", "running in the sandbox",
    "checking the result", "repairing: <why>"), "token" (a piece of the LLM's reply as it streams),
    "code" (the code about to run), "error" (an attempt failed; ``text`` says why) and "answer"
    (the answer is ready; ``text`` is its one-line summary). ``attempt`` counts from 1.
    """

    kind: EventKind
    text: str
    attempt: int = 0


EventHandler = Callable[[Event], None]
