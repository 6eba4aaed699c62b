"""The sandbox server's network self-denial (seccomp), in a plain process and in real sandboxes.

In force: AF_INET, AF_INET6 and AF_NETLINK sockets fail, AF_UNIX works, io_uring cannot be set
up, children inherit it; the sandbox's ``ready`` greeting lists it among its layers. Checked on
the local (bubblewrap) backend always and on Docker when ``DATAASK_TEST_DOCKER=1``.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
from typing import Any

import pandas as pd
import pytest

import dataask
from dataask_jupyter.backends import docker as docker_backend
from tests.scripted_llm import ScriptedLLM

IMAGE = os.environ.get("DATAASK_SANDBOX_IMAGE", "dataask-sandbox:latest")

# Runs inside the sandbox (as generated code) and in a bare filtered process alike.
PROBE = r"""
import ctypes, errno, os, socket, subprocess, sys
def err(n):
    return errno.errorcode.get(n, str(n))
out = {}
for name in ("AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET", "AF_UNIX"):
    kind = socket.SOCK_RAW if name == "AF_PACKET" else socket.SOCK_DGRAM
    try:
        socket.socket(getattr(socket, name), kind).close()
        out[name] = "ok"
    except OSError as e:
        out[name] = err(e.errno)
try:
    a, b = socket.socketpair()
    a.sendall(b"x")
    out["socketpair"] = "ok" if b.recv(1) == b"x" else "broken"
except OSError as e:
    out["socketpair"] = err(e.errno)
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
ok = libc.syscall(425, 8, params) >= 0  # io_uring_setup(entries, params)
out["io_uring_setup"] = "ok" if ok else err(ctypes.get_errno())
ok = libc.syscall(426, 0, 0, 0, 0, 0, 0) >= 0  # io_uring_enter
out["io_uring_enter"] = "ok" if ok else err(ctypes.get_errno())
try:
    cmd = [sys.executable, "-c", "import socket; socket.socket()"]
    child = subprocess.run(cmd, capture_output=True)
    denied = b"PermissionError" in child.stderr
    out["child_inet"] = "ok" if child.returncode == 0 else ("EACCES" if denied else "failed")
except OSError as e:  # a sandbox may forbid spawning altogether
    out["child_inet"] = "no spawn: " + type(e).__name__
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
out["no_new_privs"] = status["NoNewPrivs"].strip()
out["seccomp"] = status["Seccomp"].strip()
result = out
"""

EXPECTED_DENIED = {
    "AF_INET": "EACCES",
    "AF_INET6": "EACCES",
    "AF_NETLINK": "EACCES",
    "AF_PACKET": "EACCES",
    "io_uring_setup": "ENOSYS",
    "io_uring_enter": "ENOSYS",
}


def _check(out: dict[str, Any]) -> None:
    for key, err in EXPECTED_DENIED.items():
        assert out[key] == err, (key, out)
    assert out["AF_UNIX"] == "ok" and out["socketpair"] == "ok", out
    assert out["child_inet"] in ("EACCES",) or out["child_inet"].startswith("no spawn"), out
    assert out["no_new_privs"] == "1" and out["seccomp"] == "2", out


def test_filter_in_a_plain_process() -> None:
    """Unprivileged or not, the filter loads and denies; without it the same probe succeeds."""
    script = (
        "import json\nfrom dataask_sandbox import netdeny\n"
        "assert netdeny.apply(), netdeny.problem()\n"
        f"{PROBE}\nprint(json.dumps({{'probe': result, 'layers': netdeny.layers()}}))"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    _check(got["probe"])
    assert got["layers"][0].startswith("network self-denial: socket() only for AF_UNIX")
    assert "no-new-privileges" in got["layers"]
    # control: the same probe without the filter opens an AF_INET socket
    bare = subprocess.run(
        [sys.executable, "-c", f"import json\n{PROBE}\nprint(json.dumps(result))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(bare.stdout)["AF_INET"] == "ok"


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x32 is an x86_64 ABI")
def test_a_foreign_syscall_abi_is_killed() -> None:
    """socket() through the x32 ABI (syscall number | 0x40000000) must not slip past the rule."""
    script = (
        "import ctypes\nfrom dataask_sandbox import netdeny\nassert netdeny.apply()\n"
        "ctypes.CDLL(None).syscall(0x40000000 | 41, 2, 1, 0)\nprint('survived')"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == -signal.SIGSYS and "survived" not in r.stdout, (r.returncode, r.stdout)


def test_entrypoint_refuses_sidecar_without_filter(tmp_path: Any) -> None:
    """The sidecar never serves without the self-denial: with libseccomp unloadable it exits 3."""
    script = (
        "import sys, runpy\nsys.modules['pyseccomp'] = None\n"  # import fails like a missing lib
        f"sys.argv = ['dataask_sandbox', '--sidecar', {str(tmp_path)!r}]\n"
        "runpy.run_module('dataask_sandbox', run_name='__main__')"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert "refusing to serve without the network self-denial" in r.stderr


def _backends() -> list[Any]:
    params: list[Any] = ["local"]
    reason = docker_backend.unavailable_reason(IMAGE)
    if os.environ.get("DATAASK_TEST_DOCKER") == "1" or reason is None:
        params.append("docker")
    else:
        params.append(pytest.param("docker", marks=pytest.mark.skip(reason=f"Docker: {reason}")))
    return params


@pytest.mark.parametrize("backend", _backends())
def test_filter_in_a_real_sandbox(
    backend: str, settings_kwargs: dict[str, Any], llm: ScriptedLLM
) -> None:
    s = dataask.Session(
        **{**settings_kwargs, "sandbox": backend, "static_checks": False}, sandbox_image=IMAGE
    )
    try:
        s.load(pd.DataFrame({"x": [1, 2]}), name="t")
        layers = s.sandbox.server_info.get("layers")
        assert layers and layers[0].startswith("network self-denial: socket() only"), layers
        assert "own network namespace with loopback only" in layers
        llm.on("probe the sockets", PROBE)
        a = s.ask("probe the sockets")
        assert a.error is None, a.error
        _check(a.value)
        # the session still answers after the attempts
        llm.on("how many rows", "result = len(df)")
        assert s.ask("how many rows").value == 2
    finally:
        s.close()
