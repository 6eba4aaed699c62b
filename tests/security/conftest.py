"""The escape battery's harness: one session per backend, host sentinels, loopback listeners.

Every attack arrives the way a real one does: as the code the (scripted) LLM returns, asked through
``dataask.Session.ask``. Static checks are off (``static_checks=False``): the sandbox must hold on
its own. After every attack :meth:`Box.attack` checks the invariants that must always hold --
the API key and the host sentinels appear nowhere in what came back, no file appeared (or changed)
on the host, the loopback listeners saw nothing, the bystander process lives -- and each test then
checks its own concrete consequence and that the next question still works.

Backends: ``local`` (bubblewrap) always, ``docker`` when ``DATAASK_TEST_DOCKER=1`` (then it must
work) or when the engine answers and the image exists; otherwise the docker params are skipped.

Known holes are listed in :data:`HOLES`; a test hit by one is marked ``xfail(strict=True)`` for
that backend, so fixing the hole turns the test into an XPASS failure until the mark is removed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import secrets
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import dataask
import dataask_jupyter
from dataask_jupyter.session import Answer
from tests.scripted_llm import ScriptedLLM

IMAGE = os.environ.get("DATAASK_SANDBOX_IMAGE") or "dataask-sandbox:latest"
IS_ROOT = os.geteuid() == 0

#: Small limits so resource attacks end fast.
LIMITS: dict[str, Any] = {
    "exec_timeout": 2.0,
    "sandbox_memory_mb": 512,
    "sandbox_tmpfs_mb": 16,
    "sandbox_pids": 32,
    "max_result_bytes": 8 << 20,
}
BASE_SETTINGS: dict[str, Any] = {
    **LIMITS,
    "static_checks": False,  # the sandbox must hold on its own
    "max_repairs": 0,
    "llm_model": "scripted",
    "llm_max_retries": 0,
    "llm_timeout": 10.0,
    "transport_timeout": 10.0,
    "start_timeout": 60.0,
}

#: The victim dataset every session holds; the health check sums ``x``.
VICTIM = pd.DataFrame({"x": [1, 2, 3], "city": ["Oslo", "Lima", "Pune"]})
HEALTHY_VALUE = 1006

#: Holes found by this battery, by name: (backends affected, reason). Tests mark themselves
#: ``xfail(strict=True)`` with these; remove an entry once the hole is fixed.
# Holes found by this battery and fixed since: socket-dir-disk, bwrap-root-tmpfs, docker-log-disk,
# local-fork-root, forked-children-speak, docker-oom-message, kernel-stdout-unbounded,
# kernel-decode-crash, syspath-bound, state-persists (each run now happens in a forked child
# that holds no socket). Tests still name them; only open holes are listed here.
HOLES: dict[str, tuple[frozenset[str], str]] = {}


def known_hole(request: pytest.FixtureRequest, backend: str, *names: str) -> None:
    """Mark the running test ``xfail(strict=True)`` when ``backend`` has one of these holes."""
    hit = [HOLES[n][1] for n in names if n in HOLES and backend in HOLES[n][0]]
    if hit:
        request.applymarker(pytest.mark.xfail(strict=True, reason="; ".join(hit)))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "security: the sandbox escape battery (tests/security)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.security)


# --------------------------------------------------------------------------------------------
# backends


@functools.cache
def docker_skip_reason() -> str | None:
    """None when the docker params should run; else why they are skipped."""
    if os.environ.get("DATAASK_TEST_DOCKER") == "1":
        return None  # required: if it does not work, the tests fail
    from dataask_jupyter.backends.docker import unavailable_reason

    reason = unavailable_reason(IMAGE)
    if reason is None:
        return None
    return f"Docker sandbox unavailable ({reason}); DATAASK_TEST_DOCKER=1 requires it"


@functools.cache
def local_skip_reason() -> str | None:
    from dataask_jupyter.backends.local import bubblewrap_usable

    if bubblewrap_usable():
        return None
    return (
        "bubblewrap cannot create namespaces here; without it the local backend is only a "
        "separate process and says so (not a security boundary)"
    )


@pytest.fixture(
    scope="package",
    params=["local", pytest.param("docker", marks=pytest.mark.docker)],
)
def backend(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    reason = docker_skip_reason() if name == "docker" else local_skip_reason()
    if reason:
        pytest.skip(reason)
    return name


# --------------------------------------------------------------------------------------------
# secrets and host sentinels


@pytest.fixture(scope="package")
def secret() -> Iterator[str]:
    """A secret-looking API key, in the settings and in this process's environment."""
    key = "sk-test-SECRET-" + secrets.token_hex(20)
    mp = pytest.MonkeyPatch()
    for var in ("OPENAI_API_KEY", "DATAASK_LLM_API_KEY"):
        mp.setenv(var, key)
    mp.setenv("DATAASK_TEST_SECRET_TOKEN", key)
    yield key
    mp.undo()


@dataclass
class Host:
    """Sentinels on the host that no attack may read, create or change."""

    token: str
    tmp: Path  # a host directory attacks try to write into
    home_dir: Path  # a directory in the user's real home
    home_secret: Path
    connection_file: Path  # a fake kernel connection file in the Jupyter runtime dir
    syspath_dir: Path  # a directory in the home, put on sys.path by one test
    forbidden: list[str] = field(default_factory=list)  # strings no answer may contain
    targets: list[Path] = field(default_factory=list)  # paths that must never exist
    watched: dict[Path, tuple[int, int]] = field(default_factory=dict)  # files never changed

    def target(self, name: str) -> Path:
        """A host path attack code tries to create (recorded so every test checks it)."""
        p = self.tmp / f"pwned-{name}"
        if p not in self.targets:
            self.targets.append(p)
        return p

    def planted(self, paths: list[str], marker: str) -> list[str]:
        """Which of the sandbox-side ``paths`` exist on the host holding ``marker`` (removed)."""
        found = []
        for p in map(Path, paths):
            try:
                if p.is_file() and marker in p.read_text(errors="replace"):
                    found.append(str(p))
                    p.unlink()
            except OSError:
                continue
        return found

    def check(self) -> None:
        made = [str(p) for p in self.targets if p.exists() or p.is_symlink()]
        assert not made, f"attack created files on the host: {made}"
        changed = [str(p) for p, st in self.watched.items() if _stat(p) != st]
        assert not changed, f"attack changed files on the host: {changed}"


def _stat(p: Path) -> tuple[int, int]:
    try:
        st = p.stat()
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


def _runtime_dir() -> Path:
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        return Path(jupyter_runtime_dir())
    except ImportError:
        return Path.home() / ".local" / "share" / "jupyter" / "runtime"


@pytest.fixture(scope="package")
def host(tmp_path_factory: pytest.TempPathFactory, secret: str) -> Iterator[Host]:
    token = secrets.token_hex(8)
    tmp = tmp_path_factory.mktemp("security-host")
    home = Path.home()
    home_dir = home / f".dataask-security-{token}"
    home_dir.mkdir()
    home_secret = home_dir / "id_rsa"
    home_secret.write_text(f"HOME-SENTINEL-{token}\n")
    syspath_dir = home_dir / "project"
    syspath_dir.mkdir()
    (syspath_dir / "notes.txt").write_text(f"SYSPATH-SENTINEL-{token}\n")
    runtime = _runtime_dir()
    made_runtime = not runtime.exists()
    runtime.mkdir(parents=True, exist_ok=True)
    conn = runtime / f"kernel-dataask-security-{token}.json"
    conn.write_text(
        json.dumps(
            {
                "shell_port": 50001,
                "iopub_port": 50002,
                "ip": "127.0.0.1",
                "transport": "tcp",
                "signature_scheme": "hmac-sha256",
                "key": f"CONNFILE-SENTINEL-{token}",
            }
        )
    )
    h = Host(
        token=token,
        tmp=tmp,
        home_dir=home_dir,
        home_secret=home_secret,
        connection_file=conn,
        syspath_dir=syspath_dir,
    )
    h.forbidden = [
        secret,
        f"HOME-SENTINEL-{token}",
        f"CONNFILE-SENTINEL-{token}",
        f"SYSPATH-SENTINEL-{token}",
    ]
    pkg = Path(dataask_jupyter.__file__).resolve().parent
    purelib = Path(sysconfig.get_paths()["purelib"])
    h.targets += [
        home / f"pwned-{token}",
        home_dir / "pwned",
        pkg / f"pwned_{token}.py",
        purelib / f"pwned-{token}.pth",
        Path(sys.prefix) / f"pwned-{token}",
        runtime / f"pwned-{token}.json",
    ]
    for p in (
        pkg / "__init__.py",
        Path(sysconfig.get_paths()["stdlib"]) / "site.py",
        home_secret,
        conn,
        home / ".bashrc",
    ):
        h.watched[p] = _stat(p)
    yield h
    for p in h.targets:  # clean up after a hole, so one failure does not poison the host
        with contextlib.suppress(OSError):
            p.unlink()
    shutil.rmtree(home_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        conn.unlink()
    if made_runtime:
        with contextlib.suppress(OSError):
            runtime.rmdir()


# --------------------------------------------------------------------------------------------
# network listeners


def _iface_ipv4(name: str) -> str | None:
    import fcntl

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
    except OSError:
        return None
    finally:
        s.close()
    return socket.inet_ntoa(packed[20:24])


class Listeners:
    """TCP and UDP listeners on loopback (and the Docker bridge, if any) recording every contact.

    One port number for TCP and UDP on every address; an abstract Unix socket too; and, when this
    process may bind it, UDP/TCP port 53 on 127.0.0.1 to catch the system resolver.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, str, bytes]] = []
        self.lock = threading.Lock()
        self.sel = selectors.DefaultSelector()
        self.socks: list[socket.socket] = []
        self.addrs: list[str] = ["127.0.0.1"]
        gw = _iface_ipv4("docker0")
        if gw:
            self.addrs.append(gw)
        self.port = self._pick_port()
        for addr in self.addrs:
            self._bind(socket.AF_INET, addr, self.port)
        self.v6 = False
        with contextlib.suppress(OSError):
            self._bind(socket.AF_INET6, "::1", self.port)
            self.v6 = True
        self.dns53 = False
        with contextlib.suppress(OSError):
            self._bind(socket.AF_INET, "127.0.0.1", 53, tcp=False)
            self.dns53 = True
        self.abstract = f"dataask-security-{secrets.token_hex(6)}"
        a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        a.bind("\0" + self.abstract)
        a.listen(16)
        a.setblocking(False)
        self._add(a, "unix-abstract")
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _pick_port(self) -> int:
        for _ in range(50):
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                t.bind(("127.0.0.1", 0))
                port = int(t.getsockname()[1])
                u.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
            finally:
                t.close()
                u.close()
        raise RuntimeError("no free port for the listeners")

    def _bind(self, family: int, addr: str, port: int, tcp: bool = True) -> None:
        kinds = [socket.SOCK_STREAM, socket.SOCK_DGRAM] if tcp else [socket.SOCK_DGRAM]
        made = []
        try:
            for kind in kinds:
                s = socket.socket(family, kind)
                made.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((addr, port))
                if kind == socket.SOCK_STREAM:
                    s.listen(16)
        except OSError:
            for s in made:
                s.close()
            raise
        for s in made:
            s.setblocking(False)
            proto = "tcp" if s.type == socket.SOCK_STREAM else "udp"
            self._add(s, f"{proto} {addr}:{port}")

    def _add(self, s: socket.socket, label: str) -> None:
        self.socks.append(s)
        self.sel.register(s, selectors.EVENT_READ, label)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for key, _ in self.sel.select(timeout=0.1):
                s: socket.socket = key.fileobj  # type: ignore[assignment]
                label = str(key.data)
                try:
                    if s.type == socket.SOCK_STREAM:
                        conn, _peer = s.accept()
                        conn.settimeout(0.2)
                        data = b""
                        with contextlib.suppress(OSError):
                            data = conn.recv(4096)
                        conn.close()
                    else:
                        data, _peer = s.recvfrom(65536)
                except OSError:
                    continue
                with self.lock:
                    self.events.append((label, str(_peer), data))

    def reset(self) -> None:
        with self.lock:
            self.events.clear()

    def check(self) -> None:
        time.sleep(0.05)
        with self.lock:
            events = list(self.events)
        assert not events, f"the sandbox reached a listener on the host: {events[:5]}"

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=2)
        for s in self.socks:
            s.close()
        self.sel.close()


@pytest.fixture(scope="package")
def listeners() -> Iterator[Listeners]:
    lst = Listeners()
    yield lst
    lst.close()


# --------------------------------------------------------------------------------------------
# the session


def everything_text(value: Any) -> str:
    """All the text a value carries (every cell, name and index label), for leak checks."""
    if isinstance(value, pd.DataFrame):
        return "\n".join(
            [
                value.to_csv(),
                repr(list(value.columns)),
                repr(list(value.index.names)),
                repr(value.attrs),
            ]
        )
    if isinstance(value, pd.Series):
        return "\n".join([value.to_csv(), repr(value.name), repr(value.attrs)])
    if isinstance(value, dict):
        return "\n".join(everything_text(k) + "\n" + everything_text(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return "\n".join(everything_text(v) for v in value)
    if hasattr(value, "to_plotly_json"):
        return json.dumps(value.to_plotly_json(), default=str)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace") + repr(value)
    return f"{value!s}\n{value!r}"


def answer_text(a: Answer) -> str:
    """Everything an answer returns to the user or the notebook."""
    parts = [
        everything_text(a.value),
        a.stdout,
        a.error or "",
        a.code,
        repr(a),
        *(x for at in a.attempts for x in (at.code, at.error or "", at.reply)),
        *a.notes,
    ]
    bundle = a._repr_mimebundle_()
    parts += [v if isinstance(v, str) else json.dumps(v, default=str) for v in bundle.values()]
    return "\n".join(parts)


@dataclass
class Box:
    """One backend's session, the scripted LLM and the host, for one test."""

    session: dataask.Session
    llm: ScriptedLLM
    backend: str
    secret: str
    host: Host
    listeners: Listeners
    notes: list[str]
    bystander: subprocess.Popen[bytes]
    n: int = 0

    @property
    def settings(self) -> Any:
        return self.session.settings

    def attack(self, code: str, label: str = "attack", dataset: str | None = None) -> Answer:
        """Ask a question the LLM answers with ``code``; check the invariants; return the answer."""
        self.n += 1
        question = f"{label} #{self.n}"
        self.llm.on("^" + re.escape(question) + "$", code)
        before = len(self.llm.requests)
        answer = self.session.ask(question, dataset=dataset)
        calls = len(self.llm.requests) - before
        assert calls == len(answer.attempts), "something besides dataask called the LLM endpoint"
        self.check(answer)
        return answer

    def check(self, answer: Answer | None = None) -> None:
        """The invariants every attack must leave intact."""
        texts = [answer_text(answer)] if answer is not None else []
        texts += self.notes
        texts.append(json.dumps(self.llm.requests))  # what reached the LLM: no key, no sentinel
        texts.append(json.dumps(self.session.sandbox_info(), default=str))
        blob = "\n".join(texts)
        leaked = [s for s in self.host.forbidden if s in blob]
        assert not leaked, f"secret or host sentinel came back: {[s[:24] for s in leaked]}"
        self.host.check()
        self.listeners.check()
        assert self.bystander.poll() is None, "the bystander process on the host was killed"

    def healthy(self) -> None:
        """The next question works, in the same backend, with the datasets still there."""
        self.llm.on("^health check$", "result = int(dfs['victim']['x'].sum()) + 1000")
        a = self.session.ask("health check", dataset="victim")
        assert a.error is None, f"the next question failed: {a.error}"
        assert a.value == HEALTHY_VALUE
        backend = self.session.sandbox.backend
        assert backend is not None and backend.name == self.backend
        self.check(a)

    def load(self, frame: pd.DataFrame, name: str) -> None:
        self.session.load(frame, name=name)


def base_settings(url: str, key: str, backend: str) -> dict[str, Any]:
    return {**BASE_SETTINGS, "llm_base_url": url, "llm_api_key": key, "sandbox": backend}


@pytest.fixture(scope="package")
def shared_session(
    backend: str, llm_server: ScriptedLLM, secret: str
) -> Iterator[tuple[dataask.Session, list[str]]]:
    """One session per backend, reused by every test (its sandbox is restarted for each)."""
    notes: list[str] = []
    s = dataask.Session(notify=notes.append, **base_settings(llm_server.url, secret, backend))
    s.load(VICTIM, name="victim")
    yield s, notes
    s.close()


@pytest.fixture(scope="package")
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A process on the host that no attack may kill (its pid is handed to the attacks)."""
    p = subprocess.Popen(["sleep", "3600"])
    yield p
    p.kill()
    p.wait()


@pytest.fixture
def box(
    shared_session: tuple[dataask.Session, list[str]],
    llm: ScriptedLLM,
    backend: str,
    secret: str,
    host: Host,
    listeners: Listeners,
    bystander: subprocess.Popen[bytes],
) -> Box:
    s, notes = shared_session
    for k, v in BASE_SETTINGS.items():
        setattr(s.settings, k, v)
    for name in list(s.datasets):
        if name != "victim":
            s.drop(name)
    s.use("victim")
    s.sandbox.restart()  # a fresh sandbox per attack: no attack sees another's leftovers
    s.reset()
    notes.clear()
    listeners.reset()
    return Box(
        session=s,
        llm=llm,
        backend=backend,
        secret=secret,
        host=host,
        listeners=listeners,
        notes=notes,
        bystander=bystander,
    )


@pytest.fixture
def fresh_session(
    llm: ScriptedLLM, backend: str, secret: str
) -> Iterator[tuple[dataask.Session, list[str]]]:
    """A session of its own, for tests that change what the backend is started with."""
    notes: list[str] = []
    s = dataask.Session(notify=notes.append, **base_settings(llm.url, secret, backend))
    yield s, notes
    s.close()
