"""DockerSpawner hooks: a per-user dataask sandbox container beside each notebook container.

``pre_spawn_hook`` starts ``dataask-sandbox-<user>`` from the sandbox image (no network,
read-only root, every capability dropped, no-new-privileges, non-root, memory/CPU/pids limits)
with the per-user named volume ``dataask-socket-<user>`` mounted read-only at ``/run/dataask``,
and mounts the same volume read-write in the notebook container, whose kernels then use the
sandbox as a sidecar (``DATAASK_SANDBOX=sidecar``). ``post_stop_hook`` removes both. Only the
Hub talks to the Docker engine: no Docker socket enters either container.

Use it from ``jupyterhub_config.py`` (see ``jupyterhub_config.py`` beside this file)::

    from dataask_hooks import SandboxSettings, install
    install(c, SandboxSettings(image="dataask-sandbox:0.1.0"))
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SOCKET_DIR = "/run/dataask"
LABEL = "dataask.sidecar"
_SAFE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


@dataclass(frozen=True)
class SandboxSettings:
    """What every user's sandbox container gets."""

    image: str = "dataask-sandbox:latest"
    memory_mb: int = 2048
    cpus: float = 1.0
    pids: int = 64
    tmpfs_mb: int = 64


def _safe(name: str) -> str:
    """A Docker-name-safe, collision-free form of a name: other than [a-z0-9] becomes -xx."""
    return "".join(ch if ch in _SAFE_CHARS else f"-{ord(ch):02x}" for ch in name)


def names(spawner: Any) -> tuple[str, str]:
    """(sandbox container name, socket volume name) for this spawner's user and server."""
    base = getattr(spawner, "escaped_name", None) or _safe(spawner.user.name)
    server = getattr(spawner, "name", "") or ""
    if server:
        base = f"{base}--{_safe(server)}"
    return f"dataask-sandbox-{base}", f"dataask-socket-{base}"


def run_options(container: str, volume: str, settings: SandboxSettings) -> dict[str, Any]:
    """The ``containers.run`` keyword arguments for one user's sandbox (tests check each flag)."""
    mem = settings.memory_mb * 1024 * 1024
    return {
        "name": container,
        "command": ["--sidecar", SOCKET_DIR],
        "detach": True,
        "network_mode": "none",
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,noexec,size={settings.tmpfs_mb}m,mode=1777"},
        "mem_limit": mem,
        "memswap_limit": mem,
        "nano_cpus": int(settings.cpus * 1e9),
        "pids_limit": settings.pids,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "user": "10001:10001",
        "environment": {"HOME": "/tmp", "MPLCONFIGDIR": "/tmp/mpl", "OMP_NUM_THREADS": "1"},
        "volumes": {volume: {"bind": SOCKET_DIR, "mode": "ro"}},
        "ipc_mode": "private",
        "log_config": {"type": "json-file", "config": {"max-size": "1m", "max-file": "1"}},
        "labels": {LABEL: container},
        "restart_policy": {"Name": "on-failure", "MaximumRetryCount": 3},
    }


def start_sandbox(client: Any, container: str, volume: str, settings: SandboxSettings) -> Any:
    """(Re)create the user's sandbox container on a fresh socket volume; returns the container."""
    stop_sandbox(client, container, volume)
    client.volumes.create(volume, labels={LABEL: container})
    return client.containers.run(settings.image, **run_options(container, volume, settings))


def stop_sandbox(client: Any, container: str, volume: str) -> None:
    """Remove the user's sandbox container and its socket volume (missing ones are fine)."""
    import docker

    with contextlib.suppress(docker.errors.NotFound):
        client.containers.get(container).remove(force=True)
    with contextlib.suppress(docker.errors.NotFound):
        client.volumes.get(volume).remove(force=True)


def make_hooks(
    settings: SandboxSettings, client_factory: Callable[[], Any] | None = None
) -> tuple[Callable[[Any], None], Callable[[Any], None]]:
    """The (pre_spawn_hook, post_stop_hook) pair for ``c.DockerSpawner``."""

    def client() -> Any:
        if client_factory is not None:
            return client_factory()
        import docker

        return docker.from_env()

    def pre_spawn_hook(spawner: Any) -> None:
        container, volume = names(spawner)
        start_sandbox(client(), container, volume, settings)
        spawner.volumes = {**spawner.volumes, volume: {"bind": SOCKET_DIR, "mode": "rw"}}
        spawner.environment = {
            **spawner.environment,
            "DATAASK_SANDBOX": "sidecar",
            "DATAASK_SANDBOX_SOCKET_DIR": SOCKET_DIR,
        }

    def post_stop_hook(spawner: Any) -> None:
        container, volume = names(spawner)
        stop_sandbox(client(), container, volume)

    return pre_spawn_hook, post_stop_hook


def install(c: Any, settings: SandboxSettings | None = None) -> None:
    """Set both hooks on ``c.DockerSpawner`` in a ``jupyterhub_config.py``."""
    pre, post = make_hooks(settings or SandboxSettings())
    c.DockerSpawner.pre_spawn_hook = pre
    c.DockerSpawner.post_stop_hook = post
