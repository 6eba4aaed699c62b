"""Page faults taken ahead of time: which pages a run wrote, and faulting them in a fresh fork."""

from __future__ import annotations

import ctypes
import os
import resource
import socket
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dataask_sandbox import prefault, protocol
from dataask_sandbox.codec import decode
from dataask_sandbox.server import Server

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux /proc and madvise")
PAGE = prefault.PAGE


def _buffer(pages: int) -> tuple[np.ndarray, int]:
    """A private, resident buffer (shared copy-on-write with a child after fork): the array
    and the address of its first whole page."""
    array = np.ones((pages + 1) * PAGE, dtype=np.uint8)
    address = -(-array.ctypes.data // PAGE) * PAGE
    return array, address


def _in_child(work: object) -> tuple[int, socket.socket]:
    """Fork a child that runs ``work()``, says so, and waits (so its pagemap can be read)."""
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        try:
            ours.close()
            work()  # type: ignore[operator]
            theirs.send(b"k")
            theirs.recv(1)
        finally:
            os._exit(0)
    theirs.close()
    assert ours.recv(1) == b"k"
    return pid, ours


def _end(pid: int, link: socket.socket) -> None:
    link.close()
    os.waitpid(pid, 0)


def _own(pid: int, address: int, pages: int) -> np.ndarray:
    """Which of ``pages`` pages from ``address`` process ``pid`` holds as its own."""
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        f.seek(address // PAGE * 8)
        entries = np.frombuffer(f.read(pages * 8), dtype=np.uint64)
    return (entries & np.uint64(1 << 63) != 0) & (entries & np.uint64(1 << 56) != 0)


def test_written_pages_are_the_ones_the_child_wrote_outside_skipped_ranges() -> None:
    buf, address = _buffer(16)

    def write() -> None:
        for page in (2, 3, 9):
            buf[address - buf.ctypes.data + page * PAGE] = 7

    pid, link = _in_child(write)
    try:
        maps = prefault.writable_maps()
        first = address // PAGE
        found = set(prefault.written_pages(pid, maps, skip=[]).tolist())
        assert {first + 2, first + 3, first + 9} <= found
        assert not {first, first + 1, first + 8} & found  # read or untouched: still shared
        skip = [(address + 9 * PAGE, address + 10 * PAGE)]
        found = set(prefault.written_pages(pid, maps, skip=skip).tolist())
        assert first + 2 in found and first + 9 not in found
        capped = prefault.written_pages(pid, maps, skip=[], cap=2 * PAGE)
        assert len(capped) == 2
    finally:
        _end(pid, link)
    assert len(prefault.written_pages(pid, maps, skip=[])) == 0  # gone: nothing, no error


def test_populate_copies_the_pages_in_a_fresh_fork_and_stops_when_asked() -> None:
    buf, address = _buffer(8)
    pages = np.arange(8, dtype=np.int64) + address // PAGE
    result: dict[str, int] = {}

    def fault_in() -> None:
        result["done"] = prefault.populate(pages[:4], stop=lambda: False)
        result["stopped"] = prefault.populate(pages[4:], stop=lambda: True)

    pid, link = _in_child(fault_in)
    try:
        own = _own(pid, address, 8)
    finally:
        _end(pid, link)
    if not own[:4].all():  # MADV_POPULATE_WRITE needs Linux 5.14
        pytest.skip("this kernel cannot populate pages ahead of time")
    assert not own[4:].any()  # asked to stop: not copied
    assert (buf == 1).all()  # the parent's memory is its own still


def test_the_heap_reserve_sizes_itself_from_what_runs_needed() -> None:
    assert prefault.heap_need(grown=40 << 20, reserved=0) == 40 << 20  # it needed more
    assert prefault.heap_need(grown=500 << 20, reserved=0) == prefault.RESERVE_CAP
    assert prefault.heap_need(grown=20 << 20, reserved=20 << 20) == 15 << 20  # unused: shrinks
    assert prefault.heap_need(grown=0, reserved=0) == 0

    def faults_to_fill(block: int, reserve: int) -> tuple[int, int]:
        """In a fresh child: (bytes reserved, page faults to fill a new ``block``-byte array)."""
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            try:
                libc = ctypes.CDLL("libc.so.6")
                libc.malloc.restype = ctypes.c_void_p
                libc.malloc_trim(0)  # free heap back to the system
                done = prefault.reserve_heap(reserve, stop=lambda: False)
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                ctypes.memset(libc.malloc(ctypes.c_size_t(block)), 1, block)
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
                theirs.send(f"{done} {faults}".encode())
            finally:
                os._exit(0)
        done, faults = (int(x) for x in ours.recv(100).split())
        os.waitpid(pid, 0)
        return done, faults

    done, faults = faults_to_fill(8 << 20, reserve=10 << 20)
    if not done:
        pytest.skip("no glibc heap to reserve here")
    assert done == 8 << 20  # whole 4 MiB blocks, rounded down
    _, cold = faults_to_fill(8 << 20, reserve=0)
    assert cold > 1000  # 2,048 pages, each faulted in on first touch
    assert faults < cold // 4  # the reserve had them faulted in already


def test_the_server_learns_the_pages_runs_wrote_and_each_run_stays_isolated() -> None:
    server = Server()
    kernel, sock = socket.socketpair()
    frame = pd.DataFrame({"k": np.arange(200_000) % 7, "v": np.arange(200_000) * 1.0})
    server.frames["t"] = frame
    total = frame["v"].sum()
    try:
        for code in (
            "df['v'] = -1.0; df.loc[:, 'k'] = 0; result = df.groupby('k')['v'].sum()",
            "result = df.groupby('k')['v'].sum()",
            "result = df.groupby('k')['v'].sum()",
        ):
            server.fork_spare(sock)  # as the server does while idle
            protocol.send(kernel, {"type": "exec", "code": code, "dataset": "t", "timeout": 30})
            assert server.handle(sock, *protocol.recv(sock, 1 << 30))
            replies = []
            while (msg := protocol.recv(kernel, 1 << 30))[0]["type"] != "end":
                replies.append(msg)
            value = next(decode(h, p) for h, p in replies if h["type"] == "result")
            if "-1.0" in code:
                assert value.tolist() == [-200_000.0]
            else:  # the first run's changes ended with its process
                assert len(value) == 7 and value.sum() == total
        assert len(server.hot_pages()) > 0  # learned from the runs, for the next one
        assert (frame["v"] >= 0).all() and frame["k"].max() == 6
    finally:
        server.clean_up_run()
        server.drop_spare()
        kernel.close()
        sock.close()


def test_a_sandbox_near_its_memory_limit_faults_in_less(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit, usage = tmp_path / "limit", tmp_path / "usage"
    monkeypatch.setattr(prefault, "_CGROUP_FILES", ((str(limit), str(usage)),))
    caps = prefault.HOT_CAP + prefault.RESERVE_CAP
    assert prefault.budget() == caps  # no cgroup to read: the caps alone
    limit.write_text("max\n")
    usage.write_text("1000\n")
    assert prefault.budget() == caps
    limit.write_text(str(2 << 30))
    usage.write_text(str((2 << 30) - (100 << 20)))  # 100 MiB left
    assert prefault.budget() == 25 << 20
    usage.write_text(str(3 << 30))  # over (v1 counts the page cache too)
    assert prefault.budget() == 0
