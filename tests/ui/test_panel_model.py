"""The side panel's TypeScript model (labextension/src/model.ts), tested with vitest.

Runs ``npm test`` in labextension/ (vitest from node_modules, installed by ``scripts/setup``
through the wheel build); skipped where Node or node_modules are missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

EXT = Path(__file__).resolve().parents[2] / "labextension"

pytestmark = [
    pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node and npm"),
    pytest.mark.skipif(
        not (EXT / "node_modules" / ".bin" / "vitest").exists(),
        reason="labextension/node_modules missing (scripts/setup installs it)",
    ),
    pytest.mark.timeout(300),
]


def test_panel_model_vitest() -> None:
    done = subprocess.run(
        ["npm", "test", "--silent", "--", "--reporter=verbose"],
        cwd=EXT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert " passed" in out and " failed" not in out, out[-2000:]
