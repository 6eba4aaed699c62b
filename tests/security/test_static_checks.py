"""The static AST checks (defence in depth) refuse the obvious attacks before they travel.

The rest of the battery runs with the checks off, because they prove nothing about the sandbox;
this module shows they are on by default and catch the plain forms. The code never reaches the
sandbox: its first line would print a marker, and the stdout stays empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pandas as pd
import pytest

import dataask
from tests.scripted_llm import ScriptedLLM

OBVIOUS = {
    "os.system": "import os\nresult = os.system('touch /tmp/pwned')",
    "subprocess": "import subprocess\nresult = subprocess.run(['id']).returncode",
    "from-import": "from os import system\nresult = system('id')",
    "subclasses": "result = ().__class__.__base__.__subclasses__()",
    "pd.io.common.os": "result = pd.io.common.os.system('id')",
    "getattr-computed": "d = '__'\nresult = getattr((), d + 'class' + d)",
    "getattr-private": "result = getattr(pd, '_libs')",
    "builtins": "result = __builtins__['__import__']('os').system('id')",
    "dunder-import": "result = __import__('os').system('id')",
    "eval": "result = eval(\"__import__('os').system('id')\")",
    "exec": "exec('import os')\nresult = 1",
    "open": "result = open('/etc/shadow').read()",
    "read_csv": "result = pd.read_csv('/etc/passwd')",
    "to_pickle": "df.to_pickle('/tmp/x.pkl')\nresult = 1",
    "ctypes": "import ctypes\nresult = ctypes.CDLL(None).system(b'id')",
    "socket": "import socket\nresult = socket.create_connection(('127.0.0.1', 80))",
    "urllib": "import urllib.request\nresult = urllib.request.urlopen('http://x').read()",
    "pickle": "import pickle\nresult = pickle.loads(b'')",
    "frame-walk": "import sys\nresult = sys._getframe().f_back.f_globals",
    "globals": "result = globals()['__builtins__']",
}


@pytest.fixture(scope="module")
def checked_session(llm_server: ScriptedLLM) -> Iterator[dataask.Session]:
    s = dataask.Session(
        notify=lambda m: None,
        llm_base_url=llm_server.url,
        llm_api_key="test-key-not-secret",
        llm_model="scripted",
        sandbox="local",
        max_repairs=0,
        llm_max_retries=0,
    )
    s.load(pd.DataFrame({"x": [1, 2, 3]}), name="victim")
    yield s
    s.close()


def test_static_checks_are_on_by_default() -> None:
    assert dataask.Session(sandbox="local").settings.static_checks is True


@pytest.mark.parametrize("name", list(OBVIOUS))
def test_obvious_attack_is_refused_before_running(
    checked_session: dataask.Session, llm: ScriptedLLM, name: str
) -> None:
    code = "print('REACHED THE SANDBOX')\n" + OBVIOUS[name]
    llm.on("^" + re.escape(f"static {name}") + "$", code)
    a = checked_session.ask(f"static {name}")
    assert a.error is not None and a.error.startswith("refused before running"), a.error
    assert a.stdout == ""
    assert len(a.attempts) == 1 and a.attempts[0].error == a.error


# Harmless look-alikes: names that resemble file access but return a value. Refusing them sent
# the local model's chart follow-up (`fig.to_json()`) into a repair loop.
LOOK_ALIKES = {
    "figure-to-json": "fig = px.line(df, y='x')\nresult = len(fig.to_json()) > 0",
    "to_csv-text": "result = df.to_csv(index=False).splitlines()[0]",
    "to_json-text": "result = df.to_json(orient='records')",
    "pio-to_json": "import plotly.io as pio\nresult = pio.to_json(px.bar(df, y='x'))[:1]",
}
EXPECTED = {
    "figure-to-json": True,
    "to_csv-text": "x",
    "to_json-text": '[{"x":1},{"x":2},{"x":3}]',
    "pio-to_json": "{",
}
MORE_ATTACKS = {
    "to_csv-path": "df.to_csv('/tmp/dataask-static-x.csv')\nresult = 1",
    "from-pandas-read_csv": "from pandas import read_csv\nresult = read_csv('/etc/passwd')",
    "np-fromfile": "result = np.fromfile('/etc/passwd', dtype='u1')",
    "write_html": "fig = px.line(df, y='x')\nfig.write_html('/tmp/dataask-x.html')\nresult = 1",
    "to_image": "result = px.line(df, y='x').to_image()",
}


@pytest.mark.parametrize("name", list(LOOK_ALIKES))
def test_harmless_look_alike_runs(
    checked_session: dataask.Session, llm: ScriptedLLM, name: str
) -> None:
    llm.on("^" + re.escape(f"alike {name}") + "$", LOOK_ALIKES[name])
    a = checked_session.ask(f"alike {name}")
    assert a.error is None, a.error
    assert a.value == EXPECTED[name]


@pytest.mark.parametrize("name", list(MORE_ATTACKS))
def test_file_and_process_access_is_refused(
    checked_session: dataask.Session, llm: ScriptedLLM, name: str
) -> None:
    llm.on("^" + re.escape(f"static {name}") + "$", "print('REACHED')\n" + MORE_ATTACKS[name])
    a = checked_session.ask(f"static {name}")
    assert a.error is not None and a.error.startswith("refused before running"), a.error
    assert a.stdout == ""
