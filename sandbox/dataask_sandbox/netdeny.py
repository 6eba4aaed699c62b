"""The sandbox server denies itself the network before any generated code runs.

A seccomp filter (libseccomp through ``pyseccomp``; loaded unprivileged, libseccomp sets
no-new-privs first) makes ``socket()`` fail with EACCES for every address family but AF_UNIX and
makes the io_uring calls fail with ENOSYS (io_uring operations are not seen by seccomp, so the
ring itself must not exist). Calls through a foreign syscall ABI (x32 or i386 on x86_64)
kill the caller. The filter is inherited by every process the server forks and cannot be removed.

This matters most for a sidecar (Kubernetes), which shares the user pod's network namespace; in
a Docker container or under bubblewrap it is a second wall behind the empty network namespace.

:func:`layers` describes the isolation in force for ``%ask sandbox``, read from the kernel's own
view of this process (``/proc/self/status``), not from what was asked for.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from typing import Any

_IO_URING = ("io_uring_setup", "io_uring_enter", "io_uring_register")
# Where ctypes.util.find_library cannot look (no ldconfig in a bubblewrap view of /usr).
_SONAMES = {"seccomp": "libseccomp.so.2", "c": "libc.so.6"}

_state: dict[str, str | None] = {"netdeny": None, "problem": "not applied"}


def _import_pyseccomp() -> Any:
    import ctypes.util

    original = ctypes.util.find_library

    def find(name: str) -> str | None:
        return original(name) or _SONAMES.get(name)

    ctypes.util.find_library = find
    try:
        import pyseccomp

        return pyseccomp
    finally:
        ctypes.util.find_library = original


def apply() -> bool:
    """Load the filter into this process; False (and :func:`problem` says why) if it cannot."""
    if _state["netdeny"]:
        return True
    try:
        sc = _import_pyseccomp()
        f = sc.SyscallFilter(defaction=sc.ALLOW)
        f.add_rule(sc.ERRNO(errno.EACCES), "socket", sc.Arg(0, sc.NE, socket.AF_UNIX))
        for name in _IO_URING:
            f.add_rule(sc.ERRNO(errno.ENOSYS), name)
        f.load()
    except Exception as exc:  # ImportError, OSError from libseccomp, a kernel without seccomp
        _state["problem"] = f"{type(exc).__name__}: {exc}".strip()
        return False
    _state["netdeny"] = "socket() only for AF_UNIX, io_uring blocked (seccomp)"
    _state["problem"] = None
    return True


def problem() -> str | None:
    """Why :func:`apply` did not load the filter (None once it has)."""
    return _state["problem"]


def _status() -> dict[str, str]:
    out: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def _interfaces() -> list[str] | None:
    """Network interfaces this process sees (from /proc: no socket needed), None if unknown."""
    try:
        with open("/proc/net/dev") as fh:
            lines = fh.readlines()[2:]
    except OSError:
        return None
    return sorted(line.split(":", 1)[0].strip() for line in lines if ":" in line)


def layers() -> list[str]:
    """One line per isolation layer in force in this process, as the kernel reports it."""
    st = _status()
    out: list[str] = []
    if _state["netdeny"]:
        out.append(f"network self-denial: {_state['netdeny']}")
    else:
        out.append(f"network self-denial NOT in force ({_state['problem']})")
    filters = st.get("Seccomp_filters")
    if st.get("Seccomp") == "2":
        out.append(f"seccomp filter mode ({filters or '?'} filter(s) stacked)")
    if st.get("NoNewPrivs") == "1":
        out.append("no-new-privileges")
    if st.get("CapEff", "").strip("0") == "" and "CapEff" in st:
        out.append("no effective capabilities")
    ifaces = _interfaces()
    if ifaces is not None:
        up = [i for i in ifaces if i != "lo"]
        out.append(
            "own network namespace with loopback only"
            if not up
            else f"network interfaces visible: {', '.join(up)}"
        )
    uid = os.getuid()
    out.append(f"uid {uid}" + (" (root in its namespace)" if uid == 0 else ""))
    return out
