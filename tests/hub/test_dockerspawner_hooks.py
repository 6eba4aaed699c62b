"""deploy/dockerspawner's hooks against the real Docker engine, on a real ``DockerSpawner``.

``pre_spawn_hook`` must start the user's sandbox container (no network, read-only, no
capabilities, limits, no Docker socket) on a fresh per-user volume and hand the same volume to
the notebook container; a stand-in notebook container (uid 1000, gid 100, like the Jupyter Docker
Stacks images) then listens there as a kernel does and is served by the sidecar.
``post_stop_hook`` removes container and volume.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dataask_jupyter.backends import docker as docker_backend

ROOT = Path(__file__).resolve().parent.parent.parent
IMAGE = os.environ.get("DATAASK_SANDBOX_IMAGE", "dataask-sandbox:latest")
_REASON = docker_backend.unavailable_reason(IMAGE)
pytestmark = pytest.mark.skipif(
    _REASON is not None and os.environ.get("DATAASK_TEST_DOCKER") != "1",
    reason=f"Docker: {_REASON}",
)
dockerspawner = pytest.importorskip("dockerspawner")


def _hooks() -> ModuleType:
    path = ROOT / "deploy" / "dockerspawner" / "dataask_hooks.py"
    spec = importlib.util.spec_from_file_location("dataask_hooks", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["dataask_hooks"] = mod
    spec.loader.exec_module(mod)
    return mod


class _User:
    """The part of JupyterHub's User a spawner reads before it starts anything."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.id = 7
        self.url = f"/user/{name}/"


# A kernel's side of the sidecar handshake, run in the stand-in notebook container.
KERNEL = r"""
import json, os, socket, tempfile
from dataask_sandbox import protocol
d = tempfile.mkdtemp(prefix="dataask-sandbox-", dir="/run/dataask")
os.chmod(d, 0o755)
path = os.path.join(d, "sandbox.sock")
lst = socket.socket(socket.AF_UNIX); lst.bind(path); os.chmod(path, 0o666); lst.listen(1)
lst.settimeout(30)
conn, _ = lst.accept()
conn.settimeout(30)
ready, _ = protocol.recv(conn, 1 << 20)
code = "import socket\ntry:\n    socket.socket(); r = 'open'\n"
code += "except OSError as e:\n    r = type(e).__name__\nresult = r"
req = {"type": "exec", "code": code, "dataset": None, "timeout": 20, "max_result_bytes": 1 << 20}
protocol.send(conn, req)
replies = []
while True:
    h, p = protocol.recv(conn, 1 << 20)
    if h["type"] == "end":
        break
    replies.append({"header": h, "payload": p.decode(errors="replace")})
protocol.send(conn, {"type": "shutdown"})
print(json.dumps({"uid": os.getuid(), "gids": os.getgroups(), "ready": ready, "replies": replies}))
"""


def test_hooks_start_a_locked_down_sidecar_and_remove_it() -> None:
    import docker

    hooks = _hooks()
    client = docker.from_env()
    settings = hooks.SandboxSettings(image=IMAGE, memory_mb=512, pids=48, tmpfs_mb=16)
    pre, post = hooks.make_hooks(settings)
    spawner = dockerspawner.DockerSpawner(user=_User("Ann.Lee"), image="unused")
    container_name, volume_name = hooks.names(spawner)
    assert container_name.startswith("dataask-sandbox-") and "." not in container_name
    try:
        pre(spawner)
        c = client.containers.get(container_name)
        host = c.attrs["HostConfig"]
        assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"] and host["Privileged"] is False
        assert any(o.startswith("no-new-privileges") for o in host["SecurityOpt"])
        assert host["Memory"] == 512 * 1024 * 1024 and host["PidsLimit"] == 48
        assert c.attrs["Config"]["User"] == "10001:10001"
        mounts = c.attrs["Mounts"]
        assert [
            (m["Name"], m["Destination"], m["RW"]) for m in mounts if m["Type"] == "volume"
        ] == [(volume_name, "/run/dataask", False)]
        assert not any("docker.sock" in str(m.get("Source", "")) for m in mounts)
        # what the notebook container gets: the same volume, read-write, and the backend choice
        assert spawner.volumes[volume_name] == {"bind": "/run/dataask", "mode": "rw"}
        assert spawner.environment["DATAASK_SANDBOX"] == "sidecar"
        # a stand-in notebook container (jovyan's uid/gid) is served through the fresh volume
        out = client.containers.run(
            IMAGE,
            entrypoint=["/opt/sandbox/bin/python", "-I", "-c", KERNEL],
            command=[],
            user="1000:100",
            network_mode="none",
            volumes={volume_name: {"bind": "/run/dataask", "mode": "rw"}},
            remove=True,
            stdout=True,
            stderr=True,
        )
        got: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        assert got["ready"]["type"] == "ready"
        assert got["ready"]["layers"][0].startswith("network self-denial: socket() only")
        result = [r for r in got["replies"] if r["header"]["type"] == "result"]
        assert result and "PermissionError" in result[0]["payload"], got["replies"]
    finally:
        post(spawner)
    names = {c.name for c in client.containers.list(all=True)}
    assert container_name not in names
    assert volume_name not in {v.name for v in client.volumes.list()}
