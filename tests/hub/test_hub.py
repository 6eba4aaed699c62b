"""A real JupyterHub on loopback with two users, each with their own kernel and sandbox.

Through the Hub's REST API and the kernels' websockets (as JupyterLab does): start both servers,
upload a file, ``%load_ext dataask``, ``%ask load``, ``%%ask`` against the scripted LLM; then
code in one user's sandbox tries to read the other user's dataset, upload and sandbox socket.
The LLM endpoint reaches the kernels the way an administrator sets it: ``c.Spawner.environment``.
Sandbox backend: Docker when ``DATAASK_TEST_DOCKER=1`` (then each user's is a different
container), else local (bubblewrap).
"""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hub.hubctl import KernelClient, LocalHub, proxy_command
from tests.scripted_llm import ScriptedLLM

pytest.importorskip("jupyterhub")
if proxy_command() is None:
    pytest.skip(
        "configurable-http-proxy missing (scripts/setup test installs it)", allow_module_level=True
    )

USERS = ("alice", "bob")
BACKEND = "docker" if os.environ.get("DATAASK_TEST_DOCKER") == "1" else "local"
IMAGE = os.environ.get("DATAASK_SANDBOX_IMAGE", "dataask-sandbox:latest")
CANARY = {u: f"{u.upper()}-CANARY-{secrets.token_hex(6)}" for u in USERS}

pytestmark = pytest.mark.timeout(600)


def _csv(user: str, n: int) -> str:
    rows = [f"p{i},{10 * (i + 1)},{CANARY[user] if i == 0 else 'x'}" for i in range(n)]
    return "product,revenue,note\n" + "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, llm_server: ScriptedLLM) -> Iterator[LocalHub]:
    h = LocalHub(
        tmp_path_factory.mktemp("hub"),
        list(USERS),
        environment={
            # how an administrator gives every user the LLM endpoint (docs/deploy.md)
            "DATAASK_LLM_BASE_URL": llm_server.url,
            "DATAASK_LLM_API_KEY": "hub-wide-key-not-secret",
            "DATAASK_LLM_MODEL": "scripted",
            "DATAASK_SANDBOX": BACKEND,
            "DATAASK_SANDBOX_IMAGE": IMAGE,
        },
    )
    h.start()
    try:
        for user in USERS:
            (h.home(user) / "sales.csv").write_text(_csv(user, 3 if user == "alice" else 4))
        h.start_servers(list(USERS))
        yield h
    finally:
        h.stop()


@pytest.fixture(scope="module")
def kernels(hub: LocalHub) -> dict[str, KernelClient]:
    out = {}
    for user in USERS:
        hub.upload(user, "uploaded.csv", _csv(user, 2))
        k = hub.new_kernel(user)
        # static checks off: the sandbox must hold on its own (as in tests/security/)
        r = k.execute("%load_ext dataask\n%config Ask.static_checks = False")
        assert r.error is None, (r.error, r.stderr)
        out[user] = k
    return out


def _run(k: KernelClient, code: str) -> str:
    r = k.execute(code)
    assert r.error is None, (k.user, r.error, r.stdout, r.stderr)
    return r.stdout


def _sandbox_info(k: KernelClient) -> dict[str, Any]:
    """``%ask sandbox`` read back: ``key: value`` lines; a list as ``- item`` lines below."""
    info: dict[str, Any] = {}
    key = ""
    for line in _run(k, "%ask sandbox").splitlines():
        item = re.match(r"^\s+- (.*)$", line)
        if item and key:
            info.setdefault(key, []).append(item.group(1))
            continue
        m = re.match(r"^\s*(\w+):\s?(.*)$", line)
        if m:
            key, value = m.groups()
            if value:
                info[key] = json.loads(value) if value[:1] in "[{" else value
    return info


def test_each_user_asks_about_their_own_data(
    kernels: dict[str, KernelClient], llm_server: ScriptedLLM
) -> None:
    llm_server.on("total revenue", "result = int(df['revenue'].sum())")
    asked = len(llm_server.requests)
    for user, k in kernels.items():
        out = _run(k, "%ask load sales.csv --name sales\n%ask load uploaded.csv --name up")
        assert "sales" in out and "up" in out, out
        _run(k, "%%ask --dataset sales -o total\nWhat is the total revenue?")
        n = 3 if user == "alice" else 4
        assert _run(k, "print(total)").strip() == str(sum(10 * (i + 1) for i in range(n)))
    # endpoint and model came from the Hub's spawner environment; no user configured anything
    sent = llm_server.requests[asked:]
    assert len(sent) >= len(USERS) and {r.get("model") for r in sent} == {"scripted"}


def test_each_user_has_their_own_sandbox(kernels: dict[str, KernelClient]) -> None:
    infos = {u: _sandbox_info(k) for u, k in kernels.items()}
    for info in infos.values():
        assert info["backend"] == BACKEND, info
        assert info["datasets"] == ["sales", "up"], info
        if "layers" in info:  # the sandbox's own report of what is in force
            assert info["layers"][0].startswith("network self-denial: socket() only"), info
    ids = {info["id"] for info in infos.values()}
    assert len(ids) == len(USERS), infos
    if BACKEND == "docker":
        import docker

        client = docker.from_env()
        mounts = []
        for info in infos.values():
            c = client.containers.get(info["id"])
            assert c.attrs["HostConfig"]["NetworkMode"] == "none"
            mounts.append({m["Source"] for m in c.attrs["Mounts"]})
            assert not any("docker.sock" in m for m in mounts[-1])
        assert not (mounts[0] & mounts[1]), mounts  # nothing shared between the two


ATTACK = """
import glob, json, os, socket
out = {"read": {}, "connect": {}, "seen": sorted(glob.glob('/tmp/*') + glob.glob('/run/dataask/*'))}
for p in %(files)r:
    try:
        out["read"][p] = open(p).read(200)
    except Exception as e:
        out["read"][p] = "ERR " + type(e).__name__
for p in %(sockets)r + glob.glob('/run/dataask/*.sock'):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.settimeout(1)
        s.connect(p)
        out["connect"][p] = "CONNECTED"
    except Exception as e:
        out["connect"][p] = "ERR " + type(e).__name__
    finally:
        s.close()
result = json.dumps(out)
"""


@pytest.mark.parametrize(("attacker", "victim"), [("alice", "bob"), ("bob", "alice")])
def test_sandbox_cannot_reach_the_other_user(
    hub: LocalHub,
    kernels: dict[str, KernelClient],
    llm_server: ScriptedLLM,
    attacker: str,
    victim: str,
) -> None:
    home = hub.home(victim)
    files = [str(home / "sales.csv"), str(home / "uploaded.csv")]
    # every kernel socket directory on this machine right now (the victim's among them)
    sockets = sorted(glob.glob("/tmp/dataask-sandbox-*/sandbox.sock"))
    assert sockets, "no kernel sockets found on the host"
    question = f"{attacker} peeks at {victim}"
    llm_server.on(question, ATTACK % {"files": files, "sockets": sockets})
    k = kernels[attacker]
    shown = _run(k, f"%%ask --dataset sales -o leak\n{question}")
    printed = _run(k, "import json; print(json.dumps(leak))")
    assert printed.strip() != "null", shown
    out: dict[str, Any] = json.loads(json.loads(printed))
    assert set(out["read"]) == set(files)
    assert all(v.startswith("ERR") for v in out["read"].values()), out["read"]
    assert all(v.startswith("ERR") for v in out["connect"].values()), out["connect"]
    text = json.dumps(out)
    assert CANARY[victim] not in text and str(home) not in "".join(out["seen"])
    # the attacker's own question still works afterwards; the victim's data is untouched
    _run(k, "%%ask --dataset sales -o total\nWhat is the total revenue?")
    assert _run(kernels[victim], "print(total)").strip() == str(
        sum(10 * (i + 1) for i in range(3 if victim == "alice" else 4))
    )
    assert Path(files[0]).read_text().count(CANARY[victim]) == 1
