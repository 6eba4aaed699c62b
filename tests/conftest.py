from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.scripted_llm import ScriptedLLM

# Tests never talk to a real endpoint, and never see the developer's keys.
for _var in (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "DATAASK_LLM_API_KEY",
    "DATAASK_LLM_BASE_URL",
    "DATAASK_LLM_MODEL",
    "DATAASK_LLM",
):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def llm_server() -> Iterator[ScriptedLLM]:
    server = ScriptedLLM().start()
    yield server
    server.stop()


@pytest.fixture
def llm(llm_server: ScriptedLLM) -> Iterator[ScriptedLLM]:
    llm_server.clear()
    yield llm_server
    llm_server.clear()


@pytest.fixture
def settings_kwargs(llm: ScriptedLLM) -> dict[str, object]:
    return {
        "llm_base_url": llm.url,
        "llm_api_key": "test-key-not-secret",
        "llm_model": "scripted",
        "sandbox": os.environ.get("DATAASK_TEST_SANDBOX", "local"),
        "llm_max_retries": 2,
        "llm_timeout": 10.0,
    }
