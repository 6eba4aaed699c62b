"""The shared server, kernel side: start or reuse it, and the files that describe it."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dataask_jupyter.local_model.common import (
    _ENV_ALLOW,
    _KEY_ENV,
    _LAST_USED_FILE,
    _RUNTIME_FILE,
    _SERVER_LOCK,
    _SERVER_LOG,
    MODEL_NAME,
    MODEL_PATH_ENV,
    LocalEndpoint,
    LocalModelError,
    Message,
    Progress,
)
from dataask_jupyter.local_model.model_file import (
    _file_lock,
    default_cache_dir,
    ensure_model_file,
)
from dataask_jupyter.processes import pid_alive

# --------------------------------------------------------------------------- bookkeeping


def _run_dir(cache_dir: Path | None) -> Path:
    run = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "run"
    run.mkdir(parents=True, exist_ok=True, mode=0o700)
    return run


def touch_last_used(*, cache_dir: Path | None = None) -> None:
    """Mark the local server as in use now; call before (and after) every request."""
    path = _run_dir(cache_dir) / _LAST_USED_FILE
    path.touch()
    os.utime(path)


def read_runtime_info(*, cache_dir: Path | None = None) -> dict[str, Any] | None:
    """The running server's runtime file (pid, port, model_path, started_at, ...), if any."""
    return _read_json(_run_dir(cache_dir) / _RUNTIME_FILE)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


_children: dict[int, subprocess.Popen[bytes]] = {}


def _pid_alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:  # our own child: reap it rather than mistake a zombie for a server
        return child.poll() is None
    return pid_alive(pid)


def _http_ok(url: str, *, timeout: float = 2.0, api_key: str | None = None) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    request = urllib.request.Request(url)
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with opener.open(request, timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _endpoint(info: dict[str, Any]) -> LocalEndpoint:
    return LocalEndpoint(
        base_url=f"http://127.0.0.1:{int(info['port'])}/v1",
        model=str(info.get("model", MODEL_NAME)),
        pid=int(info["pid"]),
        api_key=str(info.get("api_key", "")),
    )


def _answers(info: dict[str, Any]) -> bool:
    try:
        pid, port = int(info["pid"]), int(info["port"])
    except (KeyError, TypeError, ValueError):
        return False
    return _pid_alive(pid) and _http_ok(f"http://127.0.0.1:{port}/health")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_env(api_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _ENV_ALLOW or k.startswith("LC_")}
    env[_KEY_ENV] = api_key
    # make this package importable in the child even when run from a source checkout
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return env


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _terminate(pid: int, timeout: float = 10.0) -> None:
    """Send SIGTERM to *pid*; SIGKILL it if it is still alive after *timeout* seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        child = _children.get(pid)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
    _children.pop(pid, None)


def ensure_server(
    *,
    idle_timeout: float = 900,
    threads: int | None = None,
    ctx: int = 8192,
    start_timeout: float = 180,
    progress: Message | None = None,
    cache_dir: Path | None = None,
    model_path: Path | None = None,
    server_command: Sequence[str] | None = None,
) -> LocalEndpoint:
    """Return the user's local model server, starting it if none answers.

    One server per user is shared by all kernels (guarded by ``run/server.lock``). *progress*
    receives short messages for a person while the model is assembled and loaded.
    *model_path* skips :func:`ensure_model_file`; *server_command* replaces
    ``python -m dataask_jupyter.local_model serve`` (both for tests).
    """
    say: Message = progress or (lambda _msg: None)
    run = _run_dir(cache_dir)
    runtime = run / _RUNTIME_FILE
    with _file_lock(run / _SERVER_LOCK, timeout=start_timeout + 60, on_wait=say):
        override = os.environ.get(MODEL_PATH_ENV)
        wanted = model_path or (Path(override).expanduser() if override else None)
        info = _read_json(runtime)
        if info is not None and _answers(info):
            if wanted is None or info.get("model_path") == str(wanted):
                touch_last_used(cache_dir=cache_dir)
                return _endpoint(info)
            say("Restarting the local model server with another model")
            _terminate(int(info["pid"]))
        if info is not None:  # stale: its process is gone, or it no longer answers
            with contextlib.suppress(FileNotFoundError):
                runtime.unlink()

        if model_path is None:
            model_path = ensure_model_file(cache_dir=cache_dir, progress=_percent_reporter(say))
        say("Starting the local model server")
        api_key = secrets.token_urlsafe(24)
        argv = [
            *(server_command or [sys.executable, "-m", "dataask_jupyter.local_model", "serve"]),
            "--model", str(model_path),
            "--port", str(_free_port()),
            "--idle-timeout", str(idle_timeout),
            "--ctx", str(ctx),
            "--run-dir", str(run),
        ]  # fmt: skip
        if threads:
            argv += ["--threads", str(threads)]
        touch_last_used(cache_dir=cache_dir)
        log_path = run / _SERVER_LOG
        with open(log_path, "wb") as log:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=run,
                env=_server_env(api_key),
                start_new_session=True,
            )
        _children[child.pid] = child

        started = time.monotonic()
        last_note = started
        while True:
            code = child.poll()
            if code is not None:
                _children.pop(child.pid, None)
                raise LocalModelError(
                    f"The local model server exited with code {code} while starting; "
                    f"see {log_path}:\n{_log_tail(log_path)}"
                )
            info = _read_json(runtime)
            if info is not None and info.get("pid") == child.pid and _answers(info):
                touch_last_used(cache_dir=cache_dir)
                return _endpoint(info)
            now = time.monotonic()
            if now - started > start_timeout:
                _terminate(child.pid)
                raise LocalModelError(
                    f"The local model server did not answer within {start_timeout:.0f} s "
                    f"(start_timeout); see {log_path}"
                )
            if now - last_note >= 5:
                last_note = now
                say(f"Loading the local model ({now - started:.0f} s)")
            time.sleep(0.2)


def _percent_reporter(say: Message) -> Progress:
    last = [-1]

    def report(done: int, total: int) -> None:
        pct = 100 * done // max(total, 1)
        if pct // 5 != last[0]:
            last[0] = pct // 5
            say(f"Assembling the local model: {pct}%")

    return report


def stop_server(*, cache_dir: Path | None = None, timeout: float = 10.0) -> bool:
    """Stop the user's local model server; return whether one was running."""
    run = _run_dir(cache_dir)
    with _file_lock(run / _SERVER_LOCK, timeout=timeout + 60):
        info = _read_json(run / _RUNTIME_FILE)
        with contextlib.suppress(FileNotFoundError):
            (run / _RUNTIME_FILE).unlink()
        if info is None:
            return False
        try:
            pid = int(info["pid"])
        except (KeyError, TypeError, ValueError):
            return False
        if not _pid_alive(pid):
            return False
        _terminate(pid, timeout)
        return True
