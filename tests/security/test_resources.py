"""Resource attacks: processes, memory, time, disk, output, killing things, breaking the server.

Limits in force (``LIMITS``): exec_timeout 2 s, 512 MiB memory, 16 MiB /tmp, 32 processes. Each
test asserts a clear ``Answer.error`` (or the bounded value), that this process and the bystander
process survive (the box checks), and that the next question works.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from dataask_jupyter import sandbox as sandbox_module
from tests.security.conftest import IS_ROOT, LIMITS, Box, known_hole


def test_bounded_fork_bomb(request: pytest.FixtureRequest, box: Box) -> None:
    """Try to hold 150 processes at once; the limit is 32 (children sleep, then exit)."""
    known_hole(request, box.backend, "local-fork-root")
    code = """
import os, time
pids, err = [], None
for i in range(150):
    try:
        pid = os.fork()
    except OSError as e:
        err = type(e).__name__
        break
    if pid == 0:
        try:
            time.sleep(30)
        finally:
            os._exit(0)
    pids.append(pid)
for p in pids:
    os.kill(p, 9)
for p in pids:
    os.waitpid(p, 0)
result = {'forked': len(pids), 'error': err}
"""
    a = box.attack(code, "bounded fork bomb")
    assert a.error is None, a.error
    assert a.value["forked"] < LIMITS["sandbox_pids"], a.value
    box.healthy()


@pytest.mark.slow
def test_fork_bomb(request: pytest.FixtureRequest, box: Box) -> None:
    """The classic: every process forks forever."""
    backend = box.session.sandbox.backend
    if box.backend == "local" and IS_ROOT and not getattr(backend, "cgroups", None):
        pytest.skip(
            "a real fork bomb is not run where nothing bounds it (local backend as root: "
            "RLIMIT_NPROC does not bind uid 0); test_bounded_fork_bomb shows the hole safely"
        )
    known_hole(request, box.backend, "forked-children-speak")
    a = box.attack("import os\nwhile True:\n    os.fork()\nresult = 1", "fork bomb")
    assert a.error is not None
    box.healthy()


def test_fork_then_answer_from_the_child(request: pytest.FixtureRequest, box: Box) -> None:
    """A forked child that returns from the run: it must never answer on the kernel socket."""
    known_hole(request, box.backend, "forked-children-speak")
    code = """
import os
pid = os.fork()
result = 'from the child' if pid == 0 else 'from the parent'
if pid:
    os.waitpid(pid, 0)
"""
    a = box.attack(code, "fork and return twice")
    assert a.error is None and a.value == "from the parent", (a.value, a.error)
    box.healthy()


@pytest.mark.parametrize(
    "variant",
    ["gradual", "one_huge_block", "numpy"],
)
def test_memory_bomb(request: pytest.FixtureRequest, box: Box, variant: str) -> None:
    if variant == "gradual":
        known_hole(request, box.backend, "docker-oom-message")
    code = {
        "gradual": "chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))\nresult = 1",
        "one_huge_block": "result = len(bytearray(64 << 30))",
        "numpy": "result = float(np.ones((200_000, 200_000)).sum())",
    }[variant]
    a = box.attack(code, f"memory bomb {variant}")
    assert a.error is not None
    assert "memory" in a.error.lower(), a.error
    box.healthy()


def test_infinite_loop(box: Box) -> None:
    a = box.attack("while True:\n    pass\nresult = 1", "infinite loop")
    assert a.error is not None and "Ask.exec_timeout" in a.error, a.error
    assert a.seconds < LIMITS["exec_timeout"] + 3
    box.healthy()


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant",
    ["ignore_sigalrm", "cancel_timer", "swallow_timeout", "c_level_regex"],
)
def test_infinite_loop_that_resists_the_alarm(
    box: Box, variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loops the sandbox's own alarm cannot stop: the kernel kills and replaces the sandbox.

    The kernel's grace period past the timeout is cut from 5 s to 1 s to keep the battery fast.
    """
    monkeypatch.setattr(sandbox_module, "_GRACE", 1.0)
    box.settings.exec_timeout = 1.0
    code = {
        "ignore_sigalrm": (
            "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
            "while True:\n    pass\nresult = 1"
        ),
        "cancel_timer": (
            "import signal\nwhile True:\n    signal.setitimer(signal.ITIMER_REAL, 0)\nresult = 1"
        ),
        "swallow_timeout": (
            "while True:\n    try:\n        while True:\n            pass\n"
            "    except BaseException:\n        pass\nresult = 1"
        ),
        "c_level_regex": "import re\nresult = bool(re.match(r'(a+)+$', 'a' * 64 + 'b'))",
    }[variant]
    a = box.attack(code, f"unstoppable loop {variant}")
    assert a.error is not None and "Ask.exec_timeout" in a.error, a.error
    assert a.seconds < 1.0 + 1.0 + 3.0
    box.healthy()


@pytest.mark.parametrize("where", ["/tmp", "/dev/shm", "/", "/run/dataask"])
def test_fill_the_disk(request: pytest.FixtureRequest, box: Box, where: str) -> None:
    """Write 15 MiB files until something stops it (giving up, harmlessly, at 6x the limit)."""
    if where == "/run/dataask":
        known_hole(request, box.backend, "socket-dir-disk")
    if where in ("/", "/dev/shm"):
        known_hole(request, box.backend, "bwrap-root-tmpfs")
    cap = 6 * LIMITS["sandbox_tmpfs_mb"]
    code = f"""
import os
written, err = 0, None
chunk = b'x' * (1 << 20)
try:
    for i in range({cap} // 15 + 1):
        with open(os.path.join({where!r}, f'fill-{{i}}'), 'wb') as f:
            for _ in range(15):
                written += f.write(chunk)
        if written >> 20 >= {cap}:
            break
except OSError as e:
    err = type(e).__name__ + ': ' + str(e)
finally:
    for i in range({cap} // 15 + 1):
        try:
            os.unlink(os.path.join({where!r}, f'fill-{{i}}'))
        except OSError:
            pass
result = {{'written_mb': written >> 20, 'error': err}}
"""
    a = box.attack(code, f"fill {where}")
    assert a.error is None, a.error
    written = a.value["written_mb"]
    # /dev/shm in Docker is its own 64 MiB tmpfs inside the memory cgroup; everything else
    # writable must be the sandbox's small /tmp.
    bound = 64 if where == "/dev/shm" else LIMITS["sandbox_tmpfs_mb"]
    assert written <= bound, f"wrote {written} MiB to {where} (limit {bound} MiB)"
    box.healthy()


def test_fill_the_disk_through_the_log(request: pytest.FixtureRequest, box: Box) -> None:
    """Write 64 MiB straight to file descriptors 1 and 2, past the server's own capture."""
    known_hole(request, box.backend, "docker-log-disk")
    code = """
import os
n = 0
for fd in (1, 2):
    for _ in range(32):
        try:
            n += os.write(fd, b'y' * (1 << 20))
        except OSError:
            break
result = n
"""
    a = box.attack(code, "flood fd 1 and 2")
    assert a.error is None, a.error
    assert _host_log_bytes(box) <= 2 * LIMITS["sandbox_tmpfs_mb"] << 20
    box.healthy()


def _host_log_bytes(box: Box) -> int:
    """Bytes the sandbox's stdout/stderr took on the host's disk."""
    backend = box.session.sandbox.backend
    if box.backend == "docker":
        c = backend.container  # type: ignore[union-attr]
        c.reload()
        path = Path(c.attrs.get("LogPath") or "/nonexistent")
        return path.stat().st_size if path.exists() else 0
    d = box.session.sandbox._dir
    log = d / "server.log" if d else None
    return log.stat().st_size if log and log.exists() else 0


def test_gigantic_stdout(box: Box) -> None:
    code = "for _ in range(200_000):\n    print('z' * 1000)\nresult = 1"
    a = box.attack(code, "print a gigabyte")
    assert a.error is None, a.error
    assert len(a.stdout) < 100_000, len(a.stdout)
    assert "dropped" in a.stdout
    box.healthy()


def test_gigantic_result(box: Box) -> None:
    # RLIMIT_AS (local) counts address space: 512 MiB leaves too little to build 16 MB.
    box.settings.sandbox_memory_mb = 1024
    box.session.sandbox.restart()
    a = box.attack("result = 'r' * (16 << 20)", "return 16 MB")
    assert a.error is not None and "Ask.max_result_bytes" in a.error, a.error
    box.healthy()


def test_kill_the_parent_and_the_kernel(box: Box) -> None:
    """Kill the sandbox's parent, pid 1, everything, and the host pids handed over in the data."""
    box.load(pd.DataFrame({"pid": [os.getpid(), box.bystander.pid, os.getppid()]}), "pids")
    code = """
import os, signal
out = {'ppid': os.getppid()}
targets = [int(p) for p in df['pid']] + [os.getppid(), 1, -1]
for pid in targets:
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):
        try:
            os.kill(pid, sig)
            out[f'{pid}/{sig.name}'] = 'sent'
        except OSError as e:
            out[f'{pid}/{sig.name}'] = 'ERR ' + type(e).__name__
result = out
"""
    a = box.attack(code, "kill the parent", dataset="pids")
    # This process is alive (we are here) and the box checked the bystander. The run's parent is
    # the sandbox server: under bubblewrap (pid 2) SIGKILL ends it and the sandbox is replaced;
    # in Docker it is pid 1, which ignores signals from inside its namespace.
    assert a.error is None or "restarted" in a.error, a.error
    box.healthy()


@pytest.mark.parametrize(
    "variant",
    ["os._exit", "sys.exit", "killpg_self", "segfault", "close_all_fds", "abort", "exec_shell"],
)
def test_the_sandbox_destroys_itself(box: Box, variant: str) -> None:
    """The server dies or loses its socket mid-run: a clear error, then a fresh sandbox.

    (In Docker the server is pid 1, which its own SIGKILL cannot kill: that run just finishes.)
    """
    code = {
        "os._exit": "import os\nos._exit(3)\nresult = 1",
        "sys.exit": "import sys\nsys.exit(0)\nresult = 1",
        "killpg_self": "import os, signal\nos.killpg(0, signal.SIGKILL)\nresult = 1",
        "segfault": "import ctypes\nresult = ctypes.string_at(0)",
        "close_all_fds": "import os\nos.closerange(3, 4096)\nresult = 1",
        "abort": "import os\nos.abort()\nresult = 1",
        "exec_shell": "import os\nos.execv('/bin/sh', ['sh', '-c', 'sleep 30'])\nresult = 1",
    }[variant]
    box.settings.exec_timeout = 1.0
    a = box.attack(code, f"self destruct {variant}")
    if a.error is None:
        assert variant == "killpg_self" and box.backend == "docker", a.value
    else:
        assert "Traceback" not in a.error and "\n" not in a.error, a.error
    box.healthy()


def test_state_persists_into_the_next_answer(request: pytest.FixtureRequest, box: Box) -> None:
    """One answer's code patches pandas so later answers lie: it must not outlive its run."""
    known_hole(request, box.backend, "state-persists")
    code = """
import pandas as pd, builtins
pd.Series.sum = lambda self, *a, **k: 41
builtins.int = lambda *a, **k: 41
result = 'patched'
"""
    a = box.attack(code, "patch pandas")
    assert a.error is None, a.error
    box.healthy()
