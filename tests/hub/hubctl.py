"""A real JupyterHub on loopback for tests and benchmarks, driven through its REST API.

:class:`LocalHub` writes a ``jupyterhub_config.py`` (dummy authenticator, the simple local
spawner with per-user home directories, ``configurable-http-proxy`` from ``.venv/node``, a
service token), starts ``jupyterhub`` and the users' servers; :class:`KernelClient` runs code in a
user's kernel through ``/user/<name>/api/kernels`` and its websocket, like JupyterLab does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
SCOPES = ["admin:users", "admin:servers", "access:servers", "tokens", "list:users", "read:users"]


def proxy_command() -> str | None:
    """configurable-http-proxy as scripts/setup installs it (or from PATH)."""
    local = ROOT / ".venv" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists() and shutil.which("node"):
        return str(local)
    return shutil.which("configurable-http-proxy")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalHub:
    """One JupyterHub process and its users' single-user servers, all on 127.0.0.1."""

    workdir: Path
    users: list[str]
    environment: dict[str, str] = field(default_factory=dict)  # what every user server gets
    args: list[str] = field(default_factory=list)  # and on its command line
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = field(default_factory=free_port)
    spawn_timeout: int = 120  # the Hub's Spawner.start_timeout and http_timeout (seconds)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def home(self, user: str) -> Path:
        return self.workdir / "home" / user

    def config(self) -> str:
        chp = proxy_command()
        if chp is None:
            raise RuntimeError("configurable-http-proxy not found; run scripts/setup test")
        singleuser = str(Path(sys.executable).parent / "jupyterhub-singleuser")
        args = [*self.args, *(["--allow-root"] if os.geteuid() == 0 else [])]
        env = {**self.environment, "PYTHONDONTWRITEBYTECODE": "1"}
        return "\n".join(
            [
                "c = get_config()  # noqa",
                "c.JupyterHub.ip = '127.0.0.1'",
                f"c.JupyterHub.port = {self.port}",
                "c.JupyterHub.hub_ip = '127.0.0.1'",
                f"c.JupyterHub.hub_port = {free_port()}",
                f"c.ConfigurableHTTPProxy.command = [{chp!r}]",
                f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{free_port()}'",
                f"c.ConfigurableHTTPProxy.pid_file = {str(self.workdir / 'proxy.pid')!r}",
                f"c.JupyterHub.db_url = 'sqlite:///{self.workdir / 'hub.sqlite'}'",
                f"c.JupyterHub.cookie_secret_file = {str(self.workdir / 'cookie_secret')!r}",
                "c.JupyterHub.authenticator_class = 'dummy'",
                f"c.Authenticator.allowed_users = {set(self.users)!r}",
                "c.JupyterHub.spawner_class = 'simple'",
                f"c.SimpleLocalProcessSpawner.home_dir_template = "
                f"{str(self.workdir / 'home' / '{username}')!r}",
                f"c.Spawner.cmd = [{singleuser!r}]",
                f"c.Spawner.args = {args!r}",
                f"c.Spawner.environment = {env!r}",
                f"c.Spawner.start_timeout = {self.spawn_timeout}",
                f"c.Spawner.http_timeout = {self.spawn_timeout}",
                "c.JupyterHub.cleanup_servers = True",
                "c.JupyterHub.services = [{'name': 'dataask-test', "
                f"'api_token': {self.token!r}}}]",
                "c.JupyterHub.load_roles = [{'name': 'dataask-test', "
                f"'scopes': {SCOPES!r}, 'services': ['dataask-test']}}]",
                "",
            ]
        )

    def start(self, timeout: float = 90.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for user in self.users:
            self.home(user).mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "jupyterhub_config.py"
        cfg.write_text(self.config())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAASK_", "OPENAI_"))}
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(cfg)],
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=open(self.workdir / "hub.log", "wb"),  # noqa: SIM115 - the child owns it
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited:\n{self.log()[-3000:]}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                self.api("GET", "/hub/api/")
                return
            time.sleep(0.3)
        raise RuntimeError(f"jupyterhub did not answer in {timeout:g} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return (self.workdir / "hub.log").read_text(errors="replace")

    def api(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None) -> Any:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read()
        return json.loads(text) if text else None

    def start_servers(
        self, users: list[str], timeout: float = 240.0, *, strict: bool = True
    ) -> list[str]:
        """Create the users if needed and start their servers at once; wait until all are ready.

        Returns the users whose servers were not ready in time (raises instead when ``strict``).
        """

        def request(user: str) -> None:  # the Hub answers a start after up to 10 s: in parallel
            with contextlib.suppress(urllib.error.HTTPError):
                self.api("POST", f"/hub/api/users/{user}")
            self.api("POST", f"/hub/api/users/{user}/server")

        with ThreadPoolExecutor(max_workers=min(len(users), 32) or 1) as pool:
            list(pool.map(request, users))
        waiting = set(users)
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            for user in sorted(waiting):
                model = self.api("GET", f"/hub/api/users/{user}")
                server = (model.get("servers") or {}).get("")
                if server and server.get("ready"):
                    waiting.discard(user)
            time.sleep(0.5)
        if waiting and strict:
            raise RuntimeError(f"servers not ready: {sorted(waiting)}:\n{self.log()[-3000:]}")
        return sorted(waiting)

    def stop_server(self, user: str) -> None:
        with contextlib.suppress(urllib.error.HTTPError, OSError):
            self.api("DELETE", f"/hub/api/users/{user}/server")

    def upload(self, user: str, name: str, text: str) -> None:
        """Upload a file into the user's home the way JupyterLab does (contents API)."""
        body = {"type": "file", "format": "text", "content": text}
        self.api("PUT", f"/user/{user}/api/contents/{name}", body)

    def new_kernel(self, user: str) -> KernelClient:
        model = self.api("POST", f"/user/{user}/api/kernels", {"name": "python3"})
        return KernelClient(self, user, model["id"])

    def stop(self) -> None:
        if self.proc is None:
            return
        for user in self.users:
            self.stop_server(user)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


@dataclass
class Reply:
    """What one execute request produced."""

    stdout: str = ""
    stderr: str = ""
    results: list[str] = field(default_factory=list)  # text/plain of results and displays
    error: str | None = None


@dataclass
class KernelClient:
    """Run code in a user's kernel over the Jupyter websocket (JSON messages, protocol 5.3)."""

    hub: LocalHub
    user: str
    kernel_id: str
    session: str = field(default_factory=lambda: uuid.uuid4().hex)

    def execute(self, code: str, timeout: float = 120.0) -> Reply:
        return asyncio.run(self._execute(code, timeout))

    async def _execute(self, code: str, timeout: float) -> Reply:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        url = (
            self.hub.url.replace("http", "ws", 1)
            + f"/user/{self.user}/api/kernels/{self.kernel_id}/channels?session_id={self.session}"
        )
        ws = await websocket_connect(
            HTTPRequest(url, headers={"Authorization": f"token {self.hub.token}"}),
            max_message_size=64 << 20,
        )
        msg_id = uuid.uuid4().hex
        ws.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": self.user,
                        "session": self.session,
                        "msg_type": "execute_request",
                        "version": "5.3",
                        "date": datetime.now(timezone.utc).isoformat(),
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        out = Reply()
        idle = replied = False
        deadline = time.monotonic() + timeout
        try:
            while not (idle and replied):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no reply to {code[:60]!r} within {timeout:g} s")
                raw = await asyncio.wait_for(ws.read_message(), left)
                if raw is None:
                    raise ConnectionError("the kernel websocket closed")
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    if content["name"] == "stdout":
                        out.stdout += content["text"]
                    else:
                        out.stderr += content["text"]
                elif kind in ("execute_result", "display_data"):
                    out.results.append(str(content.get("data", {}).get("text/plain", "")))
                elif kind == "error":
                    out.error = f"{content['ename']}: {content['evalue']}"
                elif kind == "status" and content["execution_state"] == "idle":
                    idle = True
                elif kind == "execute_reply":
                    replied = True
        finally:
            ws.close()
        return out
