"""Local process backend: the sandbox server as a separate process with a clean environment.

Where bubblewrap works it runs in fresh namespaces: no network, its own PID space, an unprivileged
user, a read-only view of only the Python installation, a private size-capped ``/tmp``, and none of
the user's home. Without bubblewrap it is only a separate process with resource limits, and says so.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

from dataask_jupyter.backends import BackendInfo, Limits

_SAFE_ENV = ("LANG", "LC_ALL", "TZ")


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
    for p in sys.path:
        if p and os.path.isdir(p) and not p.startswith(("/usr/", "/tmp")):
            roots.add(p)
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


class LocalBackend:
    """Run the sandbox server as a child process, bubblewrap-isolated when possible."""

    name = "local"

    def __init__(self, limits: Limits, *, use_bwrap: bool | None = None) -> None:
        self.limits = limits
        self.use_bwrap = bubblewrap_usable() if use_bwrap is None else use_bwrap
        self.proc: subprocess.Popen[bytes] | None = None

    def _command(self, socket_dir: Path) -> list[str]:
        server = [sys.executable, "-I", "-m", "dataask_sandbox"]
        if not self.use_bwrap:
            return [*server, "--socket", str(socket_dir / "sandbox.sock")]
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
            "/tmp",
            "--bind",
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
        return [*cmd, *server, "--socket", "/run/dataask/sandbox.sock"]

    def _preexec(self) -> None:
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
