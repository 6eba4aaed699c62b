from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

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


@pytest.fixture(autouse=True)
def _state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test keeps conversations in a folder of its own (never the developer's)."""
    monkeypatch.setenv("DATAASK_STATE_DIR", str(tmp_path_factory.mktemp("state")))


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


@pytest.fixture
def ip(settings_kwargs: dict[str, Any]) -> Iterator[InteractiveShell]:
    """A real IPython shell with ``%load_ext dataask`` and the test settings applied."""
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "dataask")
    for key, value in settings_kwargs.items():
        shell.run_line_magic("config", f"Ask.{key} = {value!r}")
    yield shell
    shell.run_line_magic("unload_ext", "dataask")
    InteractiveShell.clear_instance()
