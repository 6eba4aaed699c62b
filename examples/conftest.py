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

from tests.scripted_llm import load_rules  # noqa: E402

_llm = load_rules(HERE / "scripted_rules.json").start()
os.environ["DATAASK_LLM_BASE_URL"] = _llm.url
os.environ["DATAASK_LLM_API_KEY"] = "scripted-not-secret"
os.environ["DATAASK_LLM_MODEL"] = "scripted"
os.environ.setdefault("DATAASK_SANDBOX", "local")
os.environ.pop("DATAASK_LLM", None)
os.environ.pop("OPENAI_API_KEY", None)
os.environ.pop("OPENAI_BASE_URL", None)
