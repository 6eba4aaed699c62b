"""The LLM stage against the scripted server with the real openai client: streaming, faults,
cancel. Every failure is one LLMError sentence."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from dataask_jupyter.config import Ask
from dataask_jupyter.errors import CancelledError, LLMError
from dataask_jupyter.llm import LLMClient
from tests.scripted_llm import ScriptedLLM

MESSAGES = [{"role": "system", "content": "x"}, {"role": "user", "content": "total revenue?"}]


@pytest.fixture
def client(llm: ScriptedLLM, settings_kwargs: dict[str, Any]) -> LLMClient:
    settings = Ask(**{k: v for k, v in settings_kwargs.items() if k != "sandbox"})
    settings.llm_max_retries = 0
    settings.llm_timeout = 3.0
    return LLMClient(settings)


def test_reply_streams_piece_by_piece(llm: ScriptedLLM, client: LLMClient) -> None:
    llm.on("total revenue", 'result = df["revenue"].sum()')
    pieces: list[str] = []
    reply = client.complete(MESSAGES, on_token=pieces.append)
    assert len(pieces) > 3 and "".join(pieces) == reply.text
    assert 'result = df["revenue"].sum()' in reply.text
    assert reply.prompt_tokens > 0 and reply.completion_tokens > 0
    assert llm.requests[-1]["stream"] is True


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (lambda llm: llm.cut_stream(), "cut off"),
        (lambda llm: llm.malformed(), "cut off"),
        (lambda llm: llm.fail(500), "HTTP 500"),
        (lambda llm: llm.fail(429), "rate-limiting"),
        (lambda llm: llm.fail(401), "API key"),
        (lambda llm: llm.delay(6.0), "did not answer within"),
    ],
    ids=["cut", "malformed", "500", "429", "401", "timeout"],
)
def test_faults_are_one_sentence(
    llm: ScriptedLLM, client: LLMClient, fault: Any, words: str
) -> None:
    llm.on("total revenue", "result = 1")
    fault(llm)
    with pytest.raises(LLMError, match=words) as info:
        client.complete(MESSAGES)
    assert "\n" not in str(info.value)
    assert client.complete(MESSAGES).text.strip().startswith("```python")  # the next one works


def test_cancel_stops_a_slow_request_at_once(llm: ScriptedLLM, client: LLMClient) -> None:
    llm.on("total revenue", "result = 1")
    llm.delay(2.5)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(CancelledError):
        client.complete(MESSAGES, cancel=cancel)
    assert time.monotonic() - started < 2.0


def test_unreachable_endpoint_names_the_setting(settings_kwargs: dict[str, Any]) -> None:
    settings = Ask(**{k: v for k, v in settings_kwargs.items() if k != "sandbox"})
    settings.llm_base_url = "http://127.0.0.1:9/v1"
    settings.llm_max_retries = 0
    with pytest.raises(LLMError, match="DATAASK_LLM_BASE_URL"):
        LLMClient(settings).complete(MESSAGES)
