"""Docker backend: the sandbox server in a hardened container beside the kernel.

One warm container per session, started lazily and reused; labelled with the owning process so
containers orphaned by a crashed kernel are removed at the next start. No network, read-only root,
a small noexec ``/tmp``, memory/CPU/pids limits, all capabilities dropped, no-new-privileges, the
default seccomp profile, an unprivileged user, and an empty environment.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dataask_jupyter.backends import BackendInfo, Limits
from dataask_jupyter.processes import pid_alive

LABEL = "dataask.sandbox"
_HOST = socket.gethostname()


def _client(timeout: int = 10) -> Any:
    import docker

    return docker.from_env(timeout=timeout)


def unavailable_reason(image: str) -> str | None:
    """None when the engine answers and ``image`` exists, else why not (one line)."""
    try:
        import docker
    except ImportError:
        return "the 'docker' Python package is not installed"
    try:
        client = _client(timeout=3)
        client.ping()
    except Exception as exc:
        return f"the Docker engine does not answer ({type(exc).__name__})"
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return (
            f"image {image!r} not found; build it with scripts/build-sandbox-image "
            "or set DATAASK_SANDBOX_IMAGE"
        )
    except Exception as exc:
        return f"cannot inspect image {image!r} ({type(exc).__name__})"
    return None


def remove_orphans(client: Any | None = None) -> int:
    """Remove sandbox containers whose owning process on this host is gone; return how many."""
    client = client or _client()
    removed = 0
    for c in client.containers.list(all=True, filters={"label": LABEL}):
        labels = c.labels or {}
        if labels.get("dataask.host") != _HOST:
            continue
        try:
            pid = int(labels.get("dataask.pid", "0"))
        except ValueError:
            pid = 0
        if pid and pid_alive(pid) and labels.get("dataask.boot") == _boot_id():
            continue
        with contextlib.suppress(Exception):
            c.remove(force=True)
            removed += 1
    return removed


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


class DockerBackend:
    """Run the sandbox server in a container; the kernel talks to it over a bind-mounted socket."""

    name = "docker"

    def __init__(
        self, image: str, limits: Limits, *, notify: Callable[[str], None] | None = None
    ) -> None:
        self.image = image
        self.limits = limits
        self.notify = notify or (lambda msg: None)
        self.container: Any = None
        self._client: Any = None
        self._started = 0.0

    def run_options(self, socket_dir: Path) -> dict[str, Any]:
        """The ``containers.run`` keyword arguments (exposed so tests can check each flag)."""
        mem = f"{self.limits.memory_mb}m"
        mem_bytes = self.limits.memory_mb * 1024 * 1024
        return {
            "command": ["--connect", "/run/dataask/sandbox.sock", "--reap-strays"],
            "detach": True,
            "network_mode": "none",
            "read_only": True,
            "tmpfs": {"/tmp": f"rw,nosuid,nodev,noexec,size={self.limits.tmpfs_mb}m,mode=1777"},
            "mem_limit": mem,
            "memswap_limit": mem,
            "nano_cpus": int(self.limits.cpus * 1e9),
            "pids_limit": self.limits.pids,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "user": "10001:10001",
            "environment": {"HOME": "/tmp", "MPLCONFIGDIR": "/tmp/mpl", "OMP_NUM_THREADS": "1"},
            "volumes": {str(socket_dir): {"bind": "/run/dataask", "mode": "ro"}},
            # stdout/stderr past the server's capture land here, on the host's disk: keep it small
            "log_config": {"type": "json-file", "config": {"max-size": "1m", "max-file": "1"}},
            "ipc_mode": "private",
            "labels": {
                LABEL: "1",
                "dataask.pid": str(os.getpid()),
                "dataask.host": _HOST,
                "dataask.boot": _boot_id(),
            },
            "ulimits": [
                {"Name": "core", "Soft": 0, "Hard": 0},
                {"Name": "nofile", "Soft": 256, "Hard": 256},
                # malloc fails (MemoryError, a clear answer) before the cgroup's OOM kill
                {"Name": "data", "Soft": mem_bytes, "Hard": mem_bytes},
                {
                    "Name": "fsize",
                    "Soft": self.limits.tmpfs_mb * 1024 * 1024,
                    "Hard": self.limits.tmpfs_mb * 1024 * 1024,
                },
            ],
            "stop_signal": "SIGKILL",
        }

    def start(self, socket_dir: Path) -> None:
        import docker

        self._client = self._client or _client()
        with contextlib.suppress(Exception):
            n = remove_orphans(self._client)
            if n:
                self.notify(f"dataask: removed {n} sandbox container(s) left by a crashed kernel")
        self.notify("dataask: starting the sandbox container ...")
        opts = self.run_options(socket_dir)
        opts["ulimits"] = [
            docker.types.Ulimit(name=u["Name"], soft=u["Soft"], hard=u["Hard"])
            for u in opts["ulimits"]
        ]
        try:
            self.container = self._client.containers.run(self.image, **opts)
        except docker.errors.ImageNotFound:
            from dataask_jupyter.errors import SandboxError

            raise SandboxError(
                f"sandbox image {self.image!r} not found; build it with "
                "scripts/build-sandbox-image (Ask.sandbox_image)"
            ) from None
        except docker.errors.DockerException as exc:
            from dataask_jupyter.errors import SandboxError

            raise SandboxError(f"could not start the sandbox container: {exc}") from None
        self._started = time.time()

    def alive(self) -> bool:
        if self.container is None:
            return False
        try:
            self.container.reload()
        except Exception:
            return False
        return bool(self.container.status in ("running", "created"))

    def stop(self) -> None:
        c, self.container = self.container, None
        if c is not None:
            with contextlib.suppress(Exception):
                c.remove(force=True)

    def info(self) -> BackendInfo:
        return BackendInfo(
            backend=self.name,
            isolation=(
                "Docker container: no network, read-only root, noexec /tmp, "
                "all capabilities dropped, no-new-privileges, default seccomp, uid 10001, "
                "memory/CPU/pids limits"
            ),
            ident=(self.container.short_id if self.container is not None else ""),
            details={
                "image": self.image,
                "memory_mb": self.limits.memory_mb,
                "cpus": self.limits.cpus,
                "pids": self.limits.pids,
                "tmpfs_mb": self.limits.tmpfs_mb,
            },
        )
