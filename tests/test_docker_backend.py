"""The Docker backend with the real engine: flags in force, orphans, faults, fallback."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from typing import Any

import pandas as pd
import pytest

import dataask
from dataask_jupyter.backends import docker as docker_backend
from dataask_jupyter.errors import SandboxError
from tests.scripted_llm import ScriptedLLM

IMAGE = os.environ.get("DATAASK_SANDBOX_IMAGE", "dataask-sandbox:latest")
_REASON = docker_backend.unavailable_reason(IMAGE)
needs_docker = pytest.mark.skipif(_REASON is not None, reason=f"Docker: {_REASON}")


@pytest.fixture
def docker_session(settings_kwargs: dict[str, Any]) -> Any:
    s = dataask.Session(
        **{**settings_kwargs, "sandbox": "docker"}, sandbox_pids=48, sandbox_memory_mb=768
    )
    s.load(
        pd.DataFrame({"region": ["Europe", "Asia", "Europe"], "revenue": [1.0, 2.0, 3.5]}), name="t"
    )
    yield s
    s.close()


@needs_docker
def test_container_flags(docker_session: dataask.Session) -> None:
    backend = docker_session.sandbox.backend
    assert isinstance(backend, docker_backend.DockerBackend)
    attrs = backend.container.attrs
    host = attrs["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert any(o.startswith("no-new-privileges") for o in host["SecurityOpt"])
    assert host["PidsLimit"] == 48
    assert host["Memory"] == 768 * 1024 * 1024
    assert host["Privileged"] is False
    assert "/tmp" in host["Tmpfs"] and "noexec" in host["Tmpfs"]["/tmp"]
    assert attrs["Config"]["User"] == "10001:10001"
    env = " ".join(attrs["Config"]["Env"])
    assert "test-key-not-secret" not in env and "API_KEY" not in env
    info = docker_session.sandbox_info()
    assert info["backend"] == "docker" and "no network" in info["isolation"]
    assert info["id"] == backend.container.short_id


@needs_docker
def test_answers_and_container_is_reused(docker_session: dataask.Session, llm: ScriptedLLM) -> None:
    llm.on("europe", "result = float(df[df.region == 'Europe'].revenue.sum())")
    backend = docker_session.sandbox.backend
    assert backend is not None
    first = backend.container.id
    for _ in range(3):
        assert docker_session.ask("europe revenue").value == 4.5
    assert docker_session.sandbox.backend is not None
    assert docker_session.sandbox.backend.container.id == first


@needs_docker
def test_killed_from_outside_mid_question(
    docker_session: dataask.Session, llm: ScriptedLLM
) -> None:
    docker_session.settings.max_repairs = 0
    llm.on("slow", "import time\ntime.sleep(20)\nresult = 1")
    llm.on("count", "result = len(df)")
    backend = docker_session.sandbox.backend
    assert backend is not None
    cid = backend.container.id
    killer = threading.Timer(
        1.5, lambda: subprocess.run(["docker", "kill", cid], capture_output=True, check=False)
    )
    killer.start()
    started = time.monotonic()
    a = docker_session.ask("slow one")
    assert time.monotonic() - started < 15
    assert a.error is not None and "restarted" in a.error
    b = docker_session.ask("count rows")
    assert b.value == 3  # a new container, datasets re-sent
    assert docker_session.sandbox.restarts == 1


@needs_docker
def test_orphans_of_dead_kernels_are_removed() -> None:
    import docker

    client = docker.from_env()
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = client.containers.run(
        IMAGE,
        command=["--socket", "/tmp/x.sock"],
        detach=True,
        network_mode="none",
        labels={
            docker_backend.LABEL: "1",
            "dataask.pid": str(dead.pid),
            "dataask.host": docker_backend._HOST,
            "dataask.boot": docker_backend._boot_id(),
        },
    )
    try:
        assert docker_backend.remove_orphans(client) >= 1
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(orphan.id)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            orphan.remove(force=True)


@needs_docker
def test_closing_the_session_removes_the_container(settings_kwargs: dict[str, Any]) -> None:
    import docker

    s = dataask.Session(**{**settings_kwargs, "sandbox": "docker"})
    s.load(pd.DataFrame({"a": [1]}), name="t")
    assert s.sandbox.backend is not None
    cid = s.sandbox.backend.container.id
    s.close()
    with pytest.raises(docker.errors.NotFound):
        docker.from_env().containers.get(cid)


def test_engine_down_is_a_clear_message_not_a_hang(
    settings_kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    started = time.monotonic()
    reason = docker_backend.unavailable_reason(IMAGE)
    assert reason is not None and "does not answer" in reason
    s = dataask.Session(**{**settings_kwargs, "sandbox": "docker"})
    with pytest.raises(SandboxError, match=r"Docker sandbox unavailable.*Ask.sandbox='local'"):
        s.load(pd.DataFrame({"a": [1]}), name="t")
    assert time.monotonic() - started < 10
    notes: list[str] = []
    auto = dataask.Session(**{**settings_kwargs, "sandbox": "auto"}, notify=notes.append)
    auto.load(pd.DataFrame({"a": [1]}), name="t")
    assert auto.sandbox_info()["backend"] == "local"
    assert any("Docker sandbox unavailable" in n for n in notes)
    auto.close()
