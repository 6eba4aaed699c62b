"""For ``pytest --nbval examples/``: answers come from a scripted LLM server, not a real model.

The server (tests/scripted_llm.py) answers each question with the code in scripted_rules.json,
so CI needs no API key and no model; the sandbox, the widgets and the exports all run for real.
It starts when pytest imports this file, before nbval starts the notebooks' kernels, which
inherit the environment set here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import tempfile  # noqa: E402

import pytest  # noqa: E402

from tests.scripted_llm import load_rules  # noqa: E402

_llm = load_rules(HERE / "scripted_rules.json").start()
os.environ["DATAASK_LLM_BASE_URL"] = _llm.url
os.environ["DATAASK_LLM_API_KEY"] = "scripted-not-secret"
os.environ["DATAASK_LLM_MODEL"] = "scripted"
os.environ.setdefault("DATAASK_SANDBOX", "local")
os.environ.pop("DATAASK_LLM", None)
os.environ.pop("OPENAI_API_KEY", None)
os.environ.pop("OPENAI_BASE_URL", None)


_notebook: list[object] = [None]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Each notebook's kernel keeps its conversation in a fresh folder (set before nbval starts
    the kernel), so no notebook restores another's conversation."""
    if item.parent is not _notebook[0]:
        _notebook[0] = item.parent
        os.environ["DATAASK_STATE_DIR"] = tempfile.mkdtemp(prefix="dataask-state-")
