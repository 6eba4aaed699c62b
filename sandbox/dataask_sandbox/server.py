"""The sandbox server: keeps DataFrames in memory and runs generated code on request.

It dials the kernel's Unix socket (or, with ``--socket``, listens and serves one connection at a
time) and speaks :mod:`dataask_sandbox.protocol`. It trusts nothing it is sent to be harmless; its
isolation comes from where it runs (container or bubblewrap), not from itself.

Each run happens in a child process that ends with the run (what the code does to its process,
its state and its forged messages end with it). The child is forked ahead of time, while the
server is idle, and waits for its code; it is replaced after every run and whenever the datasets
or ``prev`` change, so the fork's cost (copying the page tables of the frames) is not on the path
of a question. While it waits it also takes the page faults the last runs took
(:mod:`dataask_sandbox.prefault`), so the run itself mostly does not.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import io
import os
import select
import signal
import socket
import sys
import time
import traceback
import types
from collections import deque
from typing import Any, cast

from dataask_sandbox import __version__, netdeny, prefault, protocol

_ANSWER_FILE = "<answer>"


class KernelGone(Exception):
    """The kernel closed its connection, or broke the protocol, while a run was in progress."""


class ExecutionTimeout(BaseException):
    """Raised in the run when its time is up (BaseException: ``except Exception`` can't eat it)."""


class _CappedText(io.TextIOBase):
    """A text sink that keeps the first ``cap`` characters and counts the rest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        room = self.cap - self.size
        if room > 0:
            self.parts.append(s[:room])
            self.size += min(room, len(s))
        self.dropped += max(0, len(s) - max(room, 0))
        return len(s)

    def text(self) -> str:
        out = "".join(self.parts)
        if self.dropped:
            out += f"\n[... {self.dropped:,} more characters of output dropped]"
        return out


class _LazyModule(types.ModuleType):
    """Imports the named module on first attribute access (so ``px`` costs nothing unused)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_target"] = name

    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self.__dict__["_target"])
        return getattr(module, attr)


def _on_alarm(signum: int, frame: Any) -> None:
    raise ExecutionTimeout()


def _short_traceback(exc: BaseException) -> str:
    """The frames of the generated code only, then the exception line."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == _ANSWER_FILE]
    lines = [f"line {f.lineno}: {(f.line or '').strip()}" for f in frames[-3:]]
    lines.append("".join(traceback.format_exception_only(type(exc), exc)).strip())
    return "\n".join(lines)


class Server:
    """State of one sandbox: datasets by name, the previous answer, and the request handlers."""

    def __init__(
        self,
        max_output: int = 64 * 1024,
        reap_strays: bool = False,
        inherited: tuple[socket.socket, ...] = (),
    ) -> None:
        import numpy as np
        import pandas as pd

        if int(pd.__version__.split(".")[0]) < 3:
            pd.set_option("mode.copy_on_write", True)
        self.pd = pd
        self.np = np
        self.frames: dict[str, Any] = {}
        self.prev_msg: tuple[dict[str, Any], bytes] | None = None  # the last answer, encoded
        self.max_output = max_output
        self.reap_strays = reap_strays  # only in a PID namespace of our own (kill(-1) below)
        self.inherited = inherited  # sockets a run's process must not keep (the listener)
        self.spare: tuple[int, socket.socket] | None = None  # (pid, link) of the next run's child
        self.finished: tuple[int, socket.socket] | None = None  # the last run's, to clean up
        self.spare_maps: prefault.Ranges = []  # the server's writable memory when it forked
        self.finished_maps: prefault.Ranges = []
        self.written: deque[Any] = deque(maxlen=2)  # pages the last runs wrote (numpy arrays)
        self.heap_needs: deque[int] = deque(maxlen=2)  # C heap the last runs grew into (bytes)
        self.reserved = 0  # C heap the spare faults in ahead (bytes)
        self.finished_reserved = 0
        self.prev_value: Any = _NOT_YET  # `prev` decoded (only ever in a run's process)
        signal.signal(signal.SIGALRM, _on_alarm)
        _warm_up(pd)

    # --- requests -------------------------------------------------------------------------
    def handle(self, sock: socket.socket, header: dict[str, Any], payload: bytes) -> bool:
        """Serve one request; return False when the server should stop."""
        kind = header["type"]
        if kind == "cancel":  # no run in progress (a run's cancel is read by _relay): no reply
            return True
        if kind == "ping":
            protocol.send(sock, {"type": "pong", "datasets": sorted(self.frames)})
        elif kind == "load":
            from dataask_sandbox.codec import frame_from_ipc

            self.frames[str(header["name"])] = frame_from_ipc(payload)
            self.written.clear()  # the server's memory was laid out anew
            self.heap_needs.clear()
            self.drop_spare()
            protocol.send(sock, {"type": "ok"})
        elif kind == "drop":
            self.frames.pop(str(header["name"]), None)
            self.written.clear()
            self.heap_needs.clear()
            self.drop_spare()
            protocol.send(sock, {"type": "ok"})
        elif kind == "reset":
            self.prev_msg = None
            self.drop_spare()
            protocol.send(sock, {"type": "ok"})
        elif kind == "set_prev":
            self.prev_msg = ({"kind": header.get("kind"), "name": header.get("name")}, payload)
            self.drop_spare()
            protocol.send(sock, {"type": "ok"})
        elif kind == "exec":
            self._exec(sock, header)
        elif kind == "shutdown":
            protocol.send(sock, {"type": "ok"})
            protocol.send(sock, {"type": "end"})
            return False
        else:
            self._send_error(sock, "ProtocolError", f"unknown request type {str(kind)[:100]!r}")
        protocol.send(sock, {"type": "end"})
        # after `end`: the kernel has its answer while this runs; with the next request already
        # waiting, the run's pages are not looked at (that would delay it)
        self.clean_up_run(learn=not select.select([sock], [], [], 0)[0])
        return True

    # --- the run's process ----------------------------------------------------------------
    def fork_spare(self, kernel: socket.socket) -> None:
        """Fork the next run's process now; it waits on its own link for the code to run."""
        if self.spare is not None:
            return
        ours, theirs = socket.socketpair()
        _trim_heap()  # the child's allocations then get fresh pages, not copies of the parent's
        room = prefault.budget()
        hot = self.hot_pages()[: room // prefault.PAGE]
        reserve = min(max(self.heap_needs, default=0), room - len(hot) * prefault.PAGE)
        maps = prefault.writable_maps()
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            raise
        if pid == 0:  # the child: wait for the code, run it, report, never return into the server
            try:
                ours.close()
                kernel.close()
                for s in self.inherited:
                    s.close()
                for sig in _IGNORED_SIGNALS:
                    signal.signal(sig, signal.SIG_DFL)
                if self.prev_msg is not None and len(self.prev_msg[1]) <= _PREDECODE_BYTES:
                    self.decode_prev()  # while idle: a follow-up finds it ready

                def asked() -> bool:  # the code has come: stop preparing
                    return bool(select.select([theirs], [], [], 0)[0])

                prefault.populate(hot, stop=asked)  # while idle: the copies the last runs made
                prefault.reserve_heap(reserve, stop=asked)  # and the C heap they grew into
                try:
                    header, _ = protocol.recv(theirs, 0)
                except (OSError, protocol.ProtocolError):  # the server dropped this spare
                    os._exit(0)
                self._run(theirs, header)
                protocol.send(theirs, {"type": "done"})
                # stay until the server has read which pages the run wrote (it then kills us)
                select.select([theirs], [], [], _LINGER)
            finally:
                os._exit(0)
        theirs.close()
        self.spare = (pid, ours)
        self.spare_maps = maps
        self.reserved = reserve

    def hot_pages(self) -> Any:
        """The pages the last runs wrote, for the next run's process to fault in ahead."""
        import numpy as np

        if not self.written:
            return np.zeros(0, dtype=np.int64)
        pages = np.unique(np.concatenate(list(self.written)))
        return pages[: prefault.HOT_CAP // prefault.PAGE]

    def drop_spare(self) -> None:
        """End the waiting child (it saw the datasets and ``prev`` as they were)."""
        spare, self.spare = self.spare, None
        if spare is not None:
            _end_child(*spare)

    def clean_up_run(self, learn: bool = False) -> None:
        """End the last run's process and whatever it left running; with ``learn``, first note
        which pages it wrote, for the next run's process to fault in while idle."""
        finished, self.finished = self.finished, None
        if finished is not None and learn:
            skip = prefault.buffer_ranges(self.frames)
            pages = prefault.written_pages(finished[0], self.finished_maps, skip)
            grown = prefault.heap_end(finished[0]) - prefault.heap_end()
            if len(pages):
                self.written.append(pages)
                self.heap_needs.append(prefault.heap_need(grown, self.finished_reserved))
        if finished is not None:
            _end_child(*finished)
            if self.reap_strays:
                _reap_strays()

    def _decode_value(self, header: dict[str, Any], payload: bytes) -> Any:
        """``prev`` as the kernel sent it, decoded by the codec both sides share."""
        from dataask_sandbox.codec import decode

        return decode(header, payload)

    def _exec(self, sock: socket.socket, header: dict[str, Any]) -> None:
        """Hand the code to the waiting child (forked now if there is none) and relay its replies.

        Whatever the code does to its process (patching pandas, forging frames, forking,
        exhausting memory) ends with the child; the server relays only well-formed replies.
        """
        request: protocol.ExecRequest = {
            "type": "exec",
            "code": str(header.get("code", "")),
            "dataset": None if header.get("dataset") is None else str(header["dataset"]),
            "timeout": float(header.get("timeout", 60)),
            "max_result_bytes": int(header.get("max_result_bytes", 256 * 1024 * 1024)),
        }
        try:
            self.fork_spare(sock)
        except OSError as exc:
            self._send_error(sock, "Crash", f"the sandbox could not start the run's process: {exc}")
            return
        assert self.spare is not None
        pid, link = self.finished = self.spare
        self.finished_maps, self.finished_reserved = self.spare_maps, self.reserved
        self.spare = None
        try:
            protocol.send(link, request)
        except OSError:
            self._send_error(sock, "Crash", _exit_reason(pid))
            return
        self._relay(link, sock, pid, request["timeout"], request["max_result_bytes"])

    def _relay(
        self, child: socket.socket, sock: socket.socket, pid: int, timeout: float, max_bytes: int
    ) -> None:
        """Forward the child's replies to the kernel, re-built field by field and capped.

        Meanwhile watch the kernel's connection: ``cancel`` ends the run, a closed connection
        ends it and the server (:class:`KernelGone`).
        """
        deadline = time.monotonic() + timeout + 2.0  # the child's own alarm fires at `timeout`
        answered = False
        stdout_room = self.max_output + 200  # the child caps its own; a forged flood stops here
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                ready, _, _ = select.select([child, sock], [], [], remaining)
                if sock in ready:
                    self._watch_kernel(sock, pid)
                    self._send_error(sock, "Cancelled", "the run was cancelled")
                    return
                if not ready:
                    continue
                child.settimeout(remaining)
                h, payload = protocol.recv(child, max_bytes, discard_oversize=True)
            except protocol.PayloadTooLarge as exc:
                self._send_error(
                    sock,
                    "ResultTooLarge",
                    f"the result is {exc.size:,} bytes, over "
                    f"the cap of {exc.cap:,} (Ask.max_result_bytes)",
                )
                return
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                self._send_error(sock, "Timeout", f"the code ran longer than {timeout:g} s")
                return
            except protocol.ProtocolError:  # the child is gone without a word
                if not answered:
                    self._send_error(sock, "Crash", _exit_reason(pid))
                return
            kind = h.get("type")
            if kind == "done":
                return
            if kind == "stdout" and not answered and stdout_room > 0:
                text = str(h.get("text", ""))[:stdout_room]
                stdout_room -= len(text)
                protocol.send(sock, {"type": "stdout", "text": text})
            elif kind == "error" and not answered:
                answered = True
                self._send_error(
                    sock,
                    str(h.get("ename", "Error"))[:100],
                    str(h.get("evalue", ""))[:2000],
                    str(h.get("traceback", ""))[:4000],
                )
            elif kind == "result" and not answered:
                answered = True
                meta = {k: h[k] for k in protocol.RESULT_KEYS if k in h and _plain(h[k])}
                # plain values only, so not necessarily of the declared types: the kernel checks
                result = cast(protocol.Result, {**meta, "type": "result"})
                protocol.send(sock, result, payload)
                self.prev_msg = (meta, payload)

    def _watch_kernel(self, sock: socket.socket, pid: int) -> None:
        """The kernel spoke mid-run: only ``cancel`` may; either way the run's process ends."""
        os.kill(pid, signal.SIGKILL)
        try:
            header, _ = protocol.recv(sock, 0)
        except (OSError, protocol.ProtocolError):
            raise KernelGone() from None
        if header["type"] != "cancel":
            raise KernelGone()  # out of step with the protocol: drop the connection

    def _send_error(self, sock: socket.socket, ename: str, evalue: str, tb: str = "") -> None:
        protocol.send(sock, {"type": "error", "ename": ename, "evalue": evalue, "traceback": tb})

    def _prev(self, code: Any) -> Any:
        """The previous answer as a value, given only when the code refers to ``prev``."""
        if self.prev_msg is None or "prev" not in _names(code):
            return None
        if self.prev_value is _NOT_YET:
            self.decode_prev()
        return self.prev_value

    def decode_prev(self) -> None:
        """Decode ``prev`` (in a run's process: each run gets its own copy)."""
        try:
            self.prev_value = None if self.prev_msg is None else self._decode_value(*self.prev_msg)
        except Exception:
            self.prev_value = None

    def _run(self, sock: socket.socket, header: dict[str, Any]) -> None:
        """Run the code here (in the child) and report stdout, then a result or an error."""
        from dataask_sandbox.codec import TooLarge, encode_result

        code = str(header["code"])
        timeout = float(header.get("timeout", 60))
        max_bytes = int(header.get("max_result_bytes", 256 * 1024 * 1024))
        active = header.get("dataset")
        pd = self.pd
        frames = {k: v.copy(deep=False) for k, v in self.frames.items()}
        ns: dict[str, Any] = {
            "__name__": "__answer__",
            "pd": pd,
            "np": self.np,
            "px": _LazyModule("plotly.express"),
            "go": _LazyModule("plotly.graph_objects"),
            "df": frames.get(active) if active else None,
            "dfs": frames,
            "prev": None,
        }
        out = _CappedText(self.max_output)
        started = time.perf_counter()
        owner = os.getpid()
        try:
            compiled = compile(code, _ANSWER_FILE, "exec")
            ns["prev"] = self._prev(compiled)
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                    exec(compiled, ns)
            finally:
                if os.getpid() != owner:  # a process the code forked: it never speaks for us
                    os._exit(0)
                signal.setitimer(signal.ITIMER_REAL, 0)
        except ExecutionTimeout:
            self._error(sock, out, "Timeout", f"the code ran longer than {timeout:g} s", "")
            return
        except MemoryError:
            self._error(sock, out, "MemoryError", "the code ran out of memory", "")
            return
        except SyntaxError as exc:
            self._error(sock, out, "SyntaxError", f"{exc.msg} (line {exc.lineno})", "")
            return
        except BaseException as exc:  # the generated code may raise anything, SystemExit included
            self._error(sock, out, type(exc).__name__, str(exc)[:2000], _short_traceback(exc))
            return
        elapsed = time.perf_counter() - started
        if "result" not in ns:
            self._error(
                sock, out, "NoResult", "the code did not assign a variable named `result`", ""
            )
            return
        value = ns["result"]
        try:
            meta, payload = encode_result(value, max_bytes=max_bytes)
        except TooLarge as exc:
            self._error(sock, out, "ResultTooLarge", str(exc), "")
            return
        except Exception as exc:
            self._error(
                sock,
                out,
                "ResultError",
                f"the result ({type(value).__name__}) could not be sent: {exc}"[:2000],
                "",
            )
            return
        if out.size or out.dropped:
            protocol.send(sock, {"type": "stdout", "text": out.text()})
        result = cast(protocol.Result, {**meta, "type": "result", "seconds": round(elapsed, 6)})
        protocol.send(sock, result, payload)

    def _error(
        self, sock: socket.socket, out: _CappedText, ename: str, evalue: str, tb: str
    ) -> None:
        if out.size or out.dropped:
            protocol.send(sock, {"type": "stdout", "text": out.text()})
        protocol.send(sock, {"type": "error", "ename": ename, "evalue": evalue, "traceback": tb})


def _warm_up(pd: Any) -> None:
    """Encode and decode one small value of each kind once, here in the server: what Python and
    pandas set up on first use (caches, lazy imports) every run's process then inherits."""
    from dataask_sandbox.codec import decode, encode_result

    index = pd.Index(["a", "b"], name="key")
    for value in (
        pd.Series([1.5, 2.0], index=index, name="x"),
        pd.DataFrame({"n": [1, 2], "s": ["x", "y"], "t": pd.to_datetime(["2024-01-01"] * 2)}),
        3,
        2.5,
        "text",
        [1, "a"],
    ):
        with contextlib.suppress(Exception):
            decode(*encode_result(value, max_bytes=1 << 20))


def _end_child(pid: int, link: socket.socket) -> None:
    link.close()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _trim_heap() -> None:
    """Return the parent's free heap to the system (glibc only; a no-op elsewhere)."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
        except OSError:
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC: Any = None
_NOT_YET = object()
_PREDECODE_BYTES = 16 * 1024 * 1024  # a larger `prev` is decoded only by a run that reads it
_LINGER = 30.0  # seconds a finished run's process waits for the server to end it
_IGNORED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def _plain(v: Any) -> bool:
    return v is None or (isinstance(v, (str, int, float, bool)) and len(str(v)) < 300)


def _names(code: Any) -> set[str]:
    """Every global name a code object (or one nested in it) refers to."""
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _names(const)
    return names


def _exit_reason(pid: int) -> str:
    """Why the child ended, read without reaping it (the caller reaps)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    except ChildProcessError:
        info = None
    if info is None:
        return "the run ended without an answer"
    if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED):
        if info.si_status == signal.SIGKILL:
            return (
                "the run was killed (signal 9), most likely for using too much memory "
                "(Ask.sandbox_memory_mb)"
            )
        return f"the run was killed by signal {info.si_status}"
    return f"the run ended its process (exit status {info.si_status}) without an answer"


def _reap_strays() -> None:
    """Kill every other process in our PID namespace (what the code left running) and reap them.

    Only where the server is the first process of its own PID namespace (pid 1 in a container,
    2 under bubblewrap's init): anywhere else ``kill(-1)`` would reach the user's processes.
    """
    me = os.getpid()
    if me > 2:
        return
    for _ in range(200):
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGKILL)  # everyone but ourselves and the namespace's init
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        others = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]
        if not others:
            return
        time.sleep(0.005)


def _serve_connection(server: Server, conn: socket.socket, max_payload: int) -> bool:
    """Greet and serve one kernel connection; False when the kernel asked to shut down.

    While idle (no request waiting) the next run's process is forked ahead of time.
    """
    ready: protocol.Ready = {
        "type": "ready",
        "protocol": protocol.PROTOCOL_VERSION,
        "version": __version__,
        "pid": os.getpid(),
        "python": sys.version.split()[0],
        "pandas": server.pd.__version__,
        "layers": netdeny.layers(),
    }
    protocol.send(conn, ready)
    try:
        while True:
            if server.spare is None and not select.select([conn], [], [], 0)[0]:
                with contextlib.suppress(OSError):  # e.g. at the pids limit: forked at exec
                    server.fork_spare(conn)
            try:
                header, payload = protocol.recv(conn, max_payload)
            except protocol.ProtocolError:
                return True
            try:
                if not server.handle(conn, header, payload):
                    return False
            except (BrokenPipeError, ConnectionResetError, KernelGone):
                return True
    finally:
        server.clean_up_run()
        server.drop_spare()


def serve(
    path: str,
    *,
    max_payload: int,
    max_output: int,
    connect: bool = False,
    reap_strays: bool = False,
) -> None:
    """Serve the kernel on the Unix socket ``path``: listen there (one connection at a time,
    until shutdown), or with ``connect`` dial the kernel's socket and serve that one connection
    (then the directory can be mounted read-only)."""
    if connect:
        server = Server(max_output=max_output, reap_strays=reap_strays)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(path)
            _serve_connection(server, conn, max_payload)
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o666)
    listener.listen(1)
    server = Server(max_output=max_output, reap_strays=reap_strays, inherited=(listener,))
    while True:
        conn, _ = listener.accept()
        with conn:
            if not _serve_connection(server, conn, max_payload):
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dataask_sandbox", description=__doc__)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", help="Unix socket path to listen on")
    where.add_argument("--connect", help="the kernel's Unix socket to connect to")
    parser.add_argument(
        "--reap-strays",
        action="store_true",
        help="after each run kill every other process (only in a PID namespace of its own)",
    )
    parser.add_argument(
        "--max-payload",
        type=int,
        default=4 * 1024**3,
        help="largest request payload accepted (bytes)",
    )
    parser.add_argument(
        "--max-output", type=int, default=64 * 1024, help="characters of stdout/stderr kept per run"
    )
    args = parser.parse_args(argv)
    # The code runs in children of this process and may signal it: only SIGKILL (the kernel's
    # way to stop a sandbox) ends the server; SIGKILL to pid 1 of a container is ignored too.
    for sig in _IGNORED_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    serve(
        args.connect or args.socket,
        max_payload=args.max_payload,
        max_output=args.max_output,
        connect=bool(args.connect),
        reap_strays=args.reap_strays,
    )
    return 0
