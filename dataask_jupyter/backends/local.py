"""Local process backend: the sandbox server as a separate process with a clean environment.

Where bubblewrap works it runs in fresh namespaces: no network, its own PID space, an unprivileged
user, a read-only view of only the Python installation, a private size-capped ``/tmp``, and none of
the user's home. Without bubblewrap it is only a separate process with resource limits, and says so.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import resource
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from dataask_jupyter.backends import BackendInfo, Limits

_SAFE_ENV = ("LANG", "LC_ALL", "TZ")
_SERVER_IMPORTS = ("pandas", "numpy", "pyarrow", "plotly", "matplotlib", "dateutil", "pytz")


def _python_roots() -> list[str]:
    """Directories the sandbox needs read-only to run this interpreter and import its packages."""
    roots = {
        sys.base_prefix,
        sys.prefix,
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
    }
    import dataask_sandbox

    roots.add(str(Path(dataask_sandbox.__file__).resolve().parent.parent))
    roots.add(str(Path(sys.executable).resolve().parent))
    # Not every sys.path entry: a notebook may have put a home or project directory there.
    # Only where the server's own imports live (they may sit outside site-packages).
    for mod in _SERVER_IMPORTS:
        with contextlib.suppress(ImportError, ValueError):
            spec = importlib.util.find_spec(mod)
            if spec is not None and spec.origin:
                roots.add(str(Path(spec.origin).resolve().parent.parent))
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        roots.add(site.getusersitepackages())
    out: list[str] = []
    for r in sorted({os.path.realpath(r) for r in roots}, key=len):
        if not any(r == o or r.startswith(o + os.sep) for o in out):
            out.append(r)
    return out


def bubblewrap_usable() -> bool:
    """True when ``bwrap`` exists and can create the namespaces we ask for."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False
    try:
        r = subprocess.run(
            [bwrap, "--unshare-all", "--unshare-user", "--ro-bind", "/", "/", "true"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


def _make_cgroups(limits: Limits) -> list[Path]:
    """As root, RLIMIT_NPROC binds nothing: give the sandbox its own pids (and memory) cgroup.

    cgroup v2 (one hierarchy) or v1 (``pids`` and ``memory`` hierarchies); [] when neither is
    writable here -- then ``info()`` says the process count is not limited.
    """
    name = f"dataask-{os.getpid()}-{time.monotonic_ns()}"
    base = Path("/sys/fs/cgroup")
    made: list[Path] = []
    try:
        if (base / "cgroup.controllers").exists():  # v2
            d = base / name
            d.mkdir()
            made.append(d)
            (d / "pids.max").write_text(str(limits.pids))
            with contextlib.suppress(OSError):
                (d / "memory.max").write_text(str(limits.memory_mb * 1024 * 1024))
            return made
        d = base / "pids" / name
        d.mkdir()
        made.append(d)
        (d / "pids.max").write_text(str(limits.pids))
        with contextlib.suppress(OSError):
            m = base / "memory" / name
            m.mkdir()
            made.append(m)
            (m / "memory.limit_in_bytes").write_text(str(limits.memory_mb * 1024 * 1024))
        return made
    except OSError:
        _remove_cgroups(made)
        return []


def _remove_cgroups(dirs: list[Path]) -> None:
    for d in reversed(dirs):
        for _ in range(50):  # the processes may take a moment to leave
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)


class LocalBackend:
    """Run the sandbox server as a child process, bubblewrap-isolated when possible."""

    name = "local"

    def __init__(self, limits: Limits, *, use_bwrap: bool | None = None) -> None:
        self.limits = limits
        self.use_bwrap = bubblewrap_usable() if use_bwrap is None else use_bwrap
        self.proc: subprocess.Popen[bytes] | None = None
        self.cgroups: list[Path] = []

    def _command(self, socket_dir: Path) -> list[str]:
        server = [sys.executable, "-I", "-m", "dataask_sandbox"]
        if not self.use_bwrap:
            return [*server, "--connect", str(socket_dir / "sandbox.sock")]
        cmd = [
            "bwrap",
            "--unshare-all",
            "--unshare-user",
            "--uid",
            "10001",
            "--gid",
            "10001",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--symlink",
            "usr/bin",
            "/bin",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--size",
            str(self.limits.tmpfs_mb * 1024 * 1024),
            "--tmpfs",
            "/dev/shm",
            "--size",
            str(self.limits.tmpfs_mb * 1024 * 1024),
            "--tmpfs",
            "/tmp",
            "--ro-bind",
            str(socket_dir),
            "/run/dataask",
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/bin:/bin",
            "--setenv",
            "HOME",
            "/tmp",
            "--setenv",
            "MPLCONFIGDIR",
            "/tmp/mpl",
            "--chdir",
            "/tmp",
        ]
        for root in _python_roots():
            if not root.startswith("/usr/"):
                cmd += ["--ro-bind", root, root]
        # bubblewrap's scratch root and /dev are unbounded tmpfs: make them read-only last.
        cmd += ["--remount-ro", "/dev", "--remount-ro", "/"]
        return [*cmd, *server, "--connect", "/run/dataask/sandbox.sock", "--reap-strays"]

    def _preexec(self) -> None:
        for d in self.cgroups:  # before exec: the sandbox starts inside its cgroups
            (d / "cgroup.procs").write_text(str(os.getpid()))
        mem = self.limits.memory_mb * 1024 * 1024
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        fsize = self.limits.tmpfs_mb * 1024 * 1024
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if os.getuid() != 0:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NPROC, (self.limits.pids, self.limits.pids))

    def start(self, socket_dir: Path) -> None:
        if os.geteuid() == 0 and not self.cgroups:
            self.cgroups = _make_cgroups(self.limits)
        env = {k: os.environ[k] for k in _SAFE_ENV if k in os.environ}
        env.update(
            {
                "PATH": "/usr/bin:/bin",
                "HOME": str(socket_dir),
                "PYTHONDONTWRITEBYTECODE": "1",
                "MPLCONFIGDIR": str(socket_dir / "mpl"),
                "OMP_NUM_THREADS": "1",
            }
        )
        self.proc = subprocess.Popen(
            self._command(socket_dir),
            env=env,
            cwd=str(socket_dir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(socket_dir / "server.log", "wb"),  # noqa: SIM115 - child owns it
            preexec_fn=self._preexec,
            start_new_session=True,
            close_fds=True,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            proc.kill()
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)
        _remove_cgroups(self.cgroups)
        self.cgroups = []

    def info(self) -> BackendInfo:
        if self.use_bwrap:
            iso = (
                "local process in bubblewrap: no network, own PID/IPC namespaces, uid 10001, "
                "no capabilities, read-only Python only, private /tmp, no home directory"
            )
        else:
            iso = (
                "local process only (bubblewrap unavailable): clean environment and resource "
                "limits, but it can read your files and reach the network; use Docker"
            )
        return BackendInfo(
            backend=self.name,
            isolation=iso,
            ident=str(self.proc.pid) if self.proc else "",
            details={
                "memory_mb": self.limits.memory_mb,
                "tmpfs_mb": self.limits.tmpfs_mb,
                "bubblewrap": self.use_bwrap,
            },
        )
