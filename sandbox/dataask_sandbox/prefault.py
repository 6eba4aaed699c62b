"""Page faults taken ahead of time, in the run's process forked while the server is idle.

A run's process is a fork of the server. Whatever memory it writes, it first copies (copy-on-write:
CPython writes reference counts into every object it touches, so merely running pandas code
copies thousands of the server's pages), and every fresh page it allocates is zero-filled on
first touch. In a long-lived process (the kernel, in-process) neither happens twice; in a fresh
child each one is a page fault: about 3,900 of them, a third of the run's CPU, for a groupby on
1,000,000 rows.

So the server learns which of its pages the last runs wrote (the run's ``/proc/PID/pagemap``:
present and exclusively its own), and the next run's process writes those pages while it waits
for its code (``MADV_POPULATE_WRITE``, Linux 5.14+), together with a pre-faulted reserve at the
top of its C heap. The datasets' buffers are never copied ahead of time, and a sandbox near its
memory limit copies less or nothing. Linux and glibc only; anywhere else each step is a no-op.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

PAGE = 4096
HOT_CAP = 64 << 20  # bytes of learned pages copied ahead of time, at most
RESERVE_CAP = 64 << 20  # bytes of C heap faulted in ahead of time, at most
_CHUNK = 4 << 20  # bytes per madvise call: between calls a waiting run is noticed
_MADV_POPULATE_WRITE = 23
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 << 20  # glibc's largest: smaller blocks come from the (pre-faulted) heap
_PRESENT, _EXCLUSIVE = np.uint64(1 << 63), np.uint64(1 << 56)

Ranges = list[tuple[int, int]]


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        try:
            lib = ctypes.CDLL("libc.so.6", use_errno=True)
            lib.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            lib.malloc.argtypes = [ctypes.c_size_t]
            lib.malloc.restype = ctypes.c_void_p
            lib.free.argtypes = [ctypes.c_void_p]
            lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            _LIBC = lib
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC


_LIBC: Any = None


def writable_maps(pid: int | str = "self") -> Ranges:
    """A process's private writable anonymous mappings and heap, as (start, end)."""
    out: Ranges = []
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split()
                perms = parts[1]
                if perms[:2] != "rw" or perms[3] != "p":
                    continue
                if len(parts) > 5 and parts[5] != "[heap]":
                    continue  # files, stacks, vdso: not the objects a run writes
                start, end = (int(x, 16) for x in parts[0].split("-"))
                out.append((start, end))
    except OSError:
        return []
    return out


def heap_end(pid: int | str = "self") -> int:
    """Where a process's C heap ends (0: no heap, or it cannot be read)."""
    end = 0
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                if line.rstrip().endswith("[heap]"):
                    end = max(end, int(line.split("-", 1)[1].split()[0], 16))
    except (OSError, ValueError):
        return 0
    return end


def budget() -> int:
    """Bytes the next run's process may fault in ahead: a quarter of what its memory cgroup has
    left (cgroup v2 or v1, where visible), so a sandbox near its limit spends nothing on it."""
    caps = HOT_CAP + RESERVE_CAP
    for limit_file, usage_file in _CGROUP_FILES:
        try:
            with open(limit_file) as f:
                limit = f.read().strip()
            with open(usage_file) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or int(limit) >= 1 << 60:
            return caps
        return max(0, min(caps, (int(limit) - usage) // 4))
    return caps


_CGROUP_FILES = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
)


def buffer_ranges(frames: Mapping[str, Any]) -> Ranges:
    """The memory of the datasets' columns (NumPy arrays and Arrow buffers), as (start, end)."""
    out: Ranges = []
    for frame in frames.values():
        for _, column in frame.items():
            array = column.array
            chunked = getattr(array, "_pa_array", None)
            parts = [getattr(array, a, None) for a in ("_ndarray", "_data", "_mask", "_codes")]
            with contextlib.suppress(Exception):
                for chunk in chunked.chunks if chunked is not None else ():
                    for buf in chunk.buffers():
                        if buf is not None and buf.size:
                            out.append((buf.address, buf.address + buf.size))
                for part in parts:
                    if isinstance(part, np.ndarray) and part.nbytes:
                        out.append((part.ctypes.data, part.ctypes.data + part.nbytes))
    return out


def written_pages(pid: int, maps: Ranges, skip: Ranges, cap: int = HOT_CAP) -> np.ndarray:
    """Page numbers, within ``maps``, that process ``pid`` holds as its own (written since the
    fork, or allocated fresh), outside ``skip``; at most ``cap`` bytes of them, lowest first."""
    found: list[np.ndarray] = []
    total = 0
    try:
        with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
            for start, end in maps:
                first, count = start // PAGE, (end - start) // PAGE
                pagemap.seek(first * 8)
                entries = np.frombuffer(pagemap.read(count * 8), dtype=np.uint64)
                own = np.flatnonzero((entries & _PRESENT != 0) & (entries & _EXCLUSIVE != 0))
                if not len(own):
                    continue
                pages = own + first
                for s, e in skip:
                    pages = pages[((pages + 1) * PAGE <= s) | (pages * PAGE >= e)]
                found.append(pages[: max(0, (cap - total) // PAGE)])
                total += len(found[-1]) * PAGE
                if total >= cap:
                    break
    except (OSError, ValueError):
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(found).astype(np.int64) if found else np.zeros(0, dtype=np.int64)


def _runs(pages: np.ndarray) -> Iterable[tuple[int, int]]:
    """Consecutive pages as (first page, count), each at most ``_CHUNK`` bytes."""
    if not len(pages):
        return
    breaks = np.flatnonzero(np.diff(pages) != 1)
    starts = np.r_[pages[0], pages[breaks + 1]].tolist()
    ends = (np.r_[pages[breaks], pages[-1]] + 1).tolist()
    step = _CHUNK // PAGE
    for s, e in zip(starts, ends, strict=True):
        for first in range(s, e, step):
            yield first, min(step, e - first)


def populate(pages: np.ndarray, stop: Callable[[], bool]) -> int:
    """Write-fault ``pages`` in (copying the server's, zero-filling fresh ones) until ``stop()``;
    return the bytes faulted in. Pages no longer mapped are skipped."""
    libc = _libc()
    if not libc:
        return 0
    done = 0
    for first, count in _runs(np.unique(pages)):
        if stop():
            break
        if libc.madvise(first * PAGE, count * PAGE, _MADV_POPULATE_WRITE) == 0:
            done += count * PAGE
    return done


def heap_need(grown: int, reserved: int) -> int:
    """How much C heap to fault in for the next run, from how far the last one's heap ``grown``
    past the server's with ``reserved`` bytes faulted in for it: what it grew to when it needed
    more, else three quarters of the reserve (a reserve nobody uses shrinks)."""
    if grown > reserved + _CHUNK:
        return min(grown, RESERVE_CAP)
    return reserved * 3 // 4


def reserve_heap(size: int, stop: Callable[[], bool]) -> int:
    """Keep freed C heap in this process, and allocations below 32 MiB in the heap, and fault
    ``size`` bytes of it in ahead of time (at most ``RESERVE_CAP``), so the run's allocations
    find pages already there. Return the bytes faulted in."""
    libc = _libc()
    if not libc:
        return 0
    libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)  # freed memory stays (the process is short-lived)
    size = min(size, RESERVE_CAP) // _CHUNK * _CHUNK  # rounded down: a reserve never creeps up
    blocks = []
    done = 0
    try:
        while done < size and not stop():
            block = libc.malloc(_CHUNK)
            if not block:
                break
            blocks.append(block)
            if libc.madvise(block & ~(PAGE - 1), _CHUNK, _MADV_POPULATE_WRITE) != 0:
                break  # an old kernel: the heap is kept, but not faulted in
            done += _CHUNK
    finally:
        for block in reversed(blocks):
            libc.free(block)
    return done
