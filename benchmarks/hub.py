"""Many users on one machine: a real JupyterHub, one kernel and one warm sandbox per user.

    python benchmarks/hub.py [--users 1 5 20] [--sandbox local|docker] [--big-rows 1000000]

For each user count N: a JupyterHub on loopback (dummy authenticator, local spawner, the
scripted LLM), N servers started at once through the REST API, in each a kernel with
``%load_ext dataask`` and ``%ask load`` of a 10,000-row CSV (the sandbox starts here), then one
question per user asked one user at a time ("first question") and then by all users at once.
Printed: spawn time, load (sandbox start) time, first-question latency, simultaneous-question
latency, and memory per user split into server / kernel / sandbox (PSS, which shares libraries
fairly between processes; for Docker the container's memory use from the engine), plus what
failed first. With ``--big-rows`` the one-user run also loads a 1,000,000-row dataset and
reports the memory of kernel and sandbox holding it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.hub.hubctl import KernelClient, LocalHub  # noqa: E402
from tests.scripted_llm import ScriptedLLM  # noqa: E402

IMAGE = os.environ.get("DATAASK_SANDBOX_IMAGE", "dataask-sandbox:latest")
MB = 1024 * 1024


def _frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "order_id": np.arange(rows),
            "region": rng.choice(["Europe", "Asia", "Americas", "Africa"], rows),
            "product": rng.choice([f"p{i:03d}" for i in range(200)], rows),
            "date": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 730, rows), "D"),
            "quantity": rng.integers(1, 20, rows),
            "revenue": rng.gamma(2.0, 50.0, rows).round(2),
        }
    )


# --- memory of a user's processes -------------------------------------------------------------
def _procs() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, cmdline) for every process."""
    out: dict[int, tuple[int, str]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{d}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            out[int(d)] = (ppid, cmd)
    return out


def _pss(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def _user_of(pid: int) -> str | None:
    with contextlib.suppress(OSError):
        for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            if item.startswith(b"JUPYTERHUB_USER="):
                return item.split(b"=", 1)[1].decode()
    return None


def user_memory(users: list[str]) -> dict[str, dict[str, int]]:
    """Per user: bytes of PSS for the single-user server, its kernels and their sandboxes."""
    procs = _procs()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    out = {u: {"server": 0, "kernel": 0, "sandbox": 0} for u in users}
    kernels: dict[str, list[int]] = {u: [] for u in users}
    for pid, (_, cmd) in procs.items():
        if "jupyterhub-singleuser" not in cmd:
            continue
        user = _user_of(pid)
        if user not in out:
            continue
        out[user]["server"] += _pss(pid)
        stack = list(children.get(pid, []))
        while stack:
            p = stack.pop()
            stack.extend(children.get(p, []))
            pcmd = procs.get(p, (0, ""))[1]
            role = "kernel" if "ipykernel" in pcmd else "sandbox"
            out[user][role] += _pss(p)
            if role == "kernel":
                kernels[user].append(p)
    with contextlib.suppress(Exception):
        import docker

        client = docker.from_env()
        for c in client.containers.list(filters={"label": "dataask.sandbox"}):
            pid = int(c.labels.get("dataask.pid", "0"))
            for user, pids in kernels.items():
                if pid in pids:
                    s = c.stats(stream=False)["memory_stats"]
                    st = s.get("stats", {})
                    cache = st.get("total_inactive_file", st.get("inactive_file", 0))
                    out[user]["sandbox"] += int(s.get("usage", 0)) - int(cache)
    return out


# --- one run ----------------------------------------------------------------------------------
def _timed(k: KernelClient, code: str, timeout: float = 300.0) -> float:
    t = time.perf_counter()
    r = k.execute(code, timeout=timeout)
    if r.error:
        raise RuntimeError(f"{k.user}: {r.error}")
    return time.perf_counter() - t


def _stats(xs: list[float]) -> str:
    if not xs:
        return "-"
    return f"median {statistics.median(xs):6.2f} s, max {max(xs):6.2f} s"


def _mb(n: float) -> str:
    return f"{n / MB:7.0f} MB"


def run(n: int, args: argparse.Namespace, llm: ScriptedLLM, work: Path) -> dict[str, Any]:
    users = [f"user{i:02d}" for i in range(1, n + 1)]
    hub = LocalHub(
        work / f"hub{n}",
        users,
        environment={
            "DATAASK_LLM_BASE_URL": llm.url,
            "DATAASK_LLM_API_KEY": "bench",
            "DATAASK_LLM_MODEL": "scripted",
            "DATAASK_SANDBOX": args.sandbox,
            "DATAASK_SANDBOX_IMAGE": IMAGE,
        },
        spawn_timeout=int(args.spawn_timeout),
    )
    res: dict[str, Any] = {"n": n, "spawn": 0.0, "load": [], "first": [], "together": []}
    res["broke"] = None
    kernels: dict[str, KernelClient] = {}
    hub.start()
    try:
        small = _frame(10_000).to_csv(index=False)
        for u in users:
            (hub.home(u) / "sales.csv").write_text(small)
        t = time.perf_counter()
        late = hub.start_servers(users, timeout=args.spawn_timeout, strict=False)
        res["spawn"] = time.perf_counter() - t
        if late:
            res["broke"] = f"{len(late)} of {n} servers not ready after {args.spawn_timeout:g} s"
        for u in [u for u in users if u not in late]:
            try:
                k = hub.new_kernel(u)
                _timed(k, "%load_ext dataask")
                kernels[u] = k
            except Exception as exc:
                res["broke"] = res["broke"] or f"kernel of {u}: {exc}"[:300]
        idle = user_memory(list(kernels))
        res["idle_kernel"] = statistics.median(m["kernel"] for m in idle.values()) if idle else 0
        res["server"] = statistics.median(m["server"] for m in idle.values()) if idle else 0
        for u, k in kernels.items():
            try:
                res["load"].append(_timed(k, "%ask load sales.csv --name sales"))
                res["first"].append(_timed(k, "%%ask\nWhat is the total revenue by region?"))
            except Exception as exc:
                res["broke"] = res["broke"] or f"question of {u}: {exc}"[:300]
                break
        warm = user_memory(list(kernels))
        res["memory"] = warm

        def ask(k: KernelClient, out: list[float]) -> None:
            with contextlib.suppress(Exception):
                out.append(_timed(k, "%%ask\nWhich product sold the most units?"))

        threads = [
            threading.Thread(target=ask, args=(k, res["together"])) for k in kernels.values()
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if len(res["together"]) < len(kernels) and not res["broke"]:
            res["broke"] = f"{len(kernels) - len(res['together'])} simultaneous question(s) failed"
        if n == 1 and args.big_rows and kernels:
            u, k = next(iter(kernels.items()))
            _frame(args.big_rows, seed=1).to_csv(hub.home(u) / "big.csv", index=False)
            res["big_load"] = _timed(k, "%ask load big.csv --name big", timeout=600)
            res["big_first"] = _timed(k, "%%ask --dataset big\nTotal revenue by region?")
            res["big_memory"] = user_memory([u])[u]
            res["big_rows"] = args.big_rows
    finally:
        hub.stop()
    return res


def report(res: dict[str, Any], sandbox: str) -> None:
    n, mem = res["n"], res.get("memory", {})
    print(f"\n== {n} user(s), {sandbox} sandbox: {len(mem)} kernel(s) with a warm sandbox")
    print(f"  spawn all at once     {res['spawn']:6.1f} s")
    print(f"  %ask load (cold box)  {_stats(res['load'])}")
    print(f"  first question        {_stats(res['first'])}")
    print(f"  all users at once     {_stats(res['together'])}  ({len(res['together'])} answered)")
    if mem:
        per = [sum(m.values()) for m in mem.values()]
        for role in ("server", "kernel", "sandbox"):
            role_mb = _mb(statistics.median(m[role] for m in mem.values()))
            print(f"  {role:<8} per user     {role_mb}")
        print(f"  total per user        {_mb(statistics.median(per))}  (all users {_mb(sum(per))})")
        print(f"  idle kernel (no box)  {_mb(res['idle_kernel'])}")
    if "big_memory" in res:
        bm = res["big_memory"]
        print(f"  {res.get('big_rows', 0):,}-row dataset: load {res['big_load']:.1f} s, ", end="")
        print(f"question {res['big_first']:.2f} s")
        print(f"      kernel {_mb(bm['kernel'])}, sandbox {_mb(bm['sandbox'])}, ", end="")
        print(f"server {_mb(bm['server'])}")
    print(f"  broke first           {res['broke'] or 'nothing'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--users", type=int, nargs="+", default=[1, 5, 20])
    ap.add_argument("--sandbox", choices=["local", "docker"], default="local")
    ap.add_argument("--big-rows", type=int, default=1_000_000)
    ap.add_argument("--spawn-timeout", type=float, default=300.0)
    args = ap.parse_args()
    llm = ScriptedLLM().start()
    llm.on("total revenue by region", "result = df.groupby('region')['revenue'].sum()")
    llm.on("sold the most units", "result = df.groupby('product')['quantity'].sum().idxmax()")
    with open("/proc/meminfo") as fh:
        avail = next(int(x.split()[1]) * 1024 for x in fh if x.startswith("MemAvailable"))
    print(f"machine: {os.cpu_count()} cores, {avail / MB:,.0f} MB available at start")
    try:
        with tempfile.TemporaryDirectory(prefix="dataask-hubbench-") as tmp:
            for n in args.users:
                report(run(n, args, llm, Path(tmp)), args.sandbox)
    finally:
        llm.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
