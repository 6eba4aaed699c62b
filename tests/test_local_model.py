"""Tests of the embedded local model: assembly from chunks and the shared server's bookkeeping.

Everything here runs without the real model: assembly uses tiny chunk files, and the server
tests run the real ``serve`` loop with a tiny HTTP backend in place of llama.cpp. The one test
that needs the real model is marked ``slow`` and skipped when the model is not assembled.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from dataask_jupyter import local_model as lm
from dataask_jupyter.local_model import model_file, runtime

CHUNKS = [b"GGUF" + bytes(range(256)) * 40, b"middle-chunk" * 1000, b"the end\n"]
DATA = b"".join(CHUNKS)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture(autouse=True)
def _no_model_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(lm.MODEL_PATH_ENV, raising=False)


@pytest.fixture
def chunk_paths(tmp_path: Path) -> list[Path]:
    paths = []
    for i, data in enumerate(CHUNKS, 1):
        p = tmp_path / "chunks" / f"part{i:02d}.bin"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(data)
        paths.append(p)
    return paths


def assemble(cache: Path, chunks: list[Path], **kw: Any) -> Path:
    return lm.ensure_model_file(
        cache_dir=cache, chunks=lambda: chunks, sha256=SHA, size=len(DATA), **kw
    )


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name.endswith((".part", ".tmp")))


# --------------------------------------------------------------------------- assembly


def test_assembles_chunks_in_order_with_marker(tmp_path: Path, chunk_paths: list[Path]) -> None:
    seen: list[tuple[int, int]] = []
    path = assemble(tmp_path / "cache", chunk_paths, progress=lambda d, t: seen.append((d, t)))
    assert path == tmp_path / "cache" / lm.MODEL_FILENAME
    assert path.read_bytes() == DATA
    assert (path.parent / (path.name + ".sha256-ok")).read_text().strip() == SHA
    assert seen and seen[-1] == (len(DATA), len(DATA))
    assert leftovers(path.parent) == []


def test_reuses_assembled_file_without_touching_chunks(
    tmp_path: Path, chunk_paths: list[Path]
) -> None:
    first = assemble(tmp_path, chunk_paths)
    mtime = first.stat().st_mtime_ns

    def no_chunks() -> list[Path]:
        raise AssertionError("chunks must not be read again")

    again = lm.ensure_model_file(cache_dir=tmp_path, chunks=no_chunks, sha256=SHA, size=len(DATA))
    assert again == first and again.stat().st_mtime_ns == mtime


def test_reassembles_when_marker_or_size_is_wrong(tmp_path: Path, chunk_paths: list[Path]) -> None:
    path = assemble(tmp_path, chunk_paths)
    (tmp_path / (path.name + ".sha256-ok")).unlink()
    assert assemble(tmp_path, chunk_paths).read_bytes() == DATA
    path.write_bytes(DATA[:-1])  # truncated: size check fails even with the marker present
    assert assemble(tmp_path, chunk_paths).read_bytes() == DATA


def test_sha_mismatch_leaves_no_file(tmp_path: Path, chunk_paths: list[Path]) -> None:
    chunk_paths[1].write_bytes(b"X" * len(CHUNKS[1]))  # same size, other content
    with pytest.raises(lm.ModelIntegrityError, match="corrupt") as info:
        assemble(tmp_path, chunk_paths)
    assert lm.INSTALL_HINT in str(info.value)
    assert not (tmp_path / lm.MODEL_FILENAME).exists()
    assert not (tmp_path / (lm.MODEL_FILENAME + ".sha256-ok")).exists()
    assert leftovers(tmp_path) == []


def test_chunk_size_mismatch_fails_before_writing(tmp_path: Path, chunk_paths: list[Path]) -> None:
    chunk_paths[2].write_bytes(b"short")
    with pytest.raises(lm.ModelIntegrityError, match="add up to"):
        assemble(tmp_path, chunk_paths)
    assert not (tmp_path / lm.MODEL_FILENAME).exists()


def test_concurrent_callers_assemble_once(tmp_path: Path, chunk_paths: list[Path]) -> None:
    calls: list[int] = []

    def slow_chunks() -> list[Path]:
        calls.append(1)
        time.sleep(0.3)
        return chunk_paths

    results: list[Path] = []

    def run() -> None:
        results.append(
            lm.ensure_model_file(cache_dir=tmp_path, chunks=slow_chunks, sha256=SHA, size=len(DATA))
        )

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(results) == 3 and all(r.read_bytes() == DATA for r in results)


def test_find_chunks_through_importlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_paths: list[Path]
) -> None:
    for n, p in enumerate(chunk_paths, 1):
        pkg = tmp_path / "site" / f"dataask_fakechunk_part{n}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / p.name).write_bytes(p.read_bytes())
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    found = lm.find_model_chunks(package="dataask_fakechunk_part{n}", count=3)
    assert [p.read_bytes() for p in found] == CHUNKS


def test_missing_chunks_name_the_pip_extra(tmp_path: Path) -> None:
    with pytest.raises(lm.ModelNotInstalledError) as info:
        lm.find_model_chunks(package="dataask_no_such_chunk_{n}", count=3)
    assert 'pip install "dataask-jupyter[local]"' in str(info.value)
    assert lm.MODEL_PATH_ENV in str(info.value)

    def missing() -> list[Path]:
        return lm.find_model_chunks(package="dataask_no_such_chunk_{n}", count=3)

    with pytest.raises(lm.ModelNotInstalledError):
        lm.ensure_model_file(cache_dir=tmp_path, chunks=missing)
    assert not (tmp_path / lm.MODEL_FILENAME).exists()


def test_model_path_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "mine.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setenv(lm.MODEL_PATH_ENV, str(model))

    def no_chunks() -> list[Path]:
        raise AssertionError("the override must not look for chunks")

    assert lm.ensure_model_file(cache_dir=tmp_path / "c", chunks=no_chunks) == model
    monkeypatch.setenv(lm.MODEL_PATH_ENV, str(tmp_path / "absent.gguf"))
    with pytest.raises(lm.LocalModelError, match=lm.MODEL_PATH_ENV):
        lm.ensure_model_file(cache_dir=tmp_path / "c", chunks=no_chunks)


def test_default_cache_dir_honours_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert lm.default_cache_dir() == tmp_path / "dataask"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert lm.default_cache_dir() == Path.home() / ".cache" / "dataask"


def test_installed_chunks_have_the_model_size() -> None:
    try:
        paths = lm.find_model_chunks()
    except lm.ModelNotInstalledError:
        pytest.skip("model chunk packages not installed")
    assert len(paths) == lm.N_CHUNKS
    assert sum(p.stat().st_size for p in paths) == lm.MODEL_SIZE


# --------------------------------------------------------------------------- server bookkeeping

# The real serve() loop (runtime file, idle and superseded exits, signals) with a tiny HTTP
# backend in place of llama.cpp.
FAKE_SERVER = textwrap.dedent(
    """
    import json, os, sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from dataask_jupyter import local_model

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/env":
                body = json.dumps(sorted(os.environ)).encode()
            elif self.path in ("/health", "/v1/models"):
                body = b'{"status": "ok"}'
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    def start(model, port, *, ctx, threads, api_key):
        text = open(model).read()
        if "fail" in text:
            raise RuntimeError("fake backend: cannot load " + str(model))
        if "hang" in text:
            time.sleep(3600)
        httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return httpd.shutdown

    sys.exit(local_model._main(sys.argv[1:], start=start))
    """
)


@pytest.fixture
def fake(tmp_path: Path) -> tuple[Path, list[str]]:
    script = tmp_path / "fake_server.py"
    script.write_text(FAKE_SERVER)
    model = tmp_path / "model.gguf"
    model.write_text("ok")
    return model, [sys.executable, str(script), "serve", "--check-interval", "0.1"]


def get(url: str) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as r:
        return bytes(r.read())


def wait_dead(pid: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not runtime._pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def start_fake(cache: Path, fake: tuple[Path, list[str]], **kw: Any) -> lm.LocalEndpoint:
    model, command = fake
    kw.setdefault("start_timeout", 30)
    return lm.ensure_server(cache_dir=cache, model_path=model, server_command=command, **kw)


def test_start_reuse_and_stop(tmp_path: Path, fake: tuple[Path, list[str]]) -> None:
    cache = tmp_path / "cache"
    messages: list[str] = []
    ep = start_fake(cache, fake, progress=messages.append)
    try:
        assert ep.base_url.startswith("http://127.0.0.1:") and ep.base_url.endswith("/v1")
        assert ep.model == lm.MODEL_NAME and ep.api_key
        assert json.loads(get(ep.base_url.removesuffix("/v1") + "/health")) == {"status": "ok"}
        info = lm.read_runtime_info(cache_dir=cache)
        assert info is not None
        assert info["pid"] == ep.pid and f":{info['port']}/" in ep.base_url
        assert info["model_path"] == str(fake[0]) and info["started_at"] <= time.time()
        assert "Starting the local model server" in messages
        assert (cache / "run" / "last-used").exists()

        again = start_fake(cache, fake)
        assert again == ep  # reused, not restarted
    finally:
        assert lm.stop_server(cache_dir=cache)
    assert wait_dead(ep.pid)
    assert lm.read_runtime_info(cache_dir=cache) is None
    assert not lm.stop_server(cache_dir=cache)


def test_server_environment_has_no_secrets(
    tmp_path: Path, fake: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("DATAASK_LLM_API_KEY", "sk-secret")
    monkeypatch.setenv("JPY_SESSION_NAME", "x")
    cache = tmp_path / "cache"
    ep = start_fake(cache, fake)
    try:
        names = json.loads(get(ep.base_url.removesuffix("/v1") + "/env"))
        assert not {"OPENAI_API_KEY", "DATAASK_LLM_API_KEY", "JPY_SESSION_NAME"} & set(names)
        assert "DATAASK_LOCAL_SERVER_KEY" not in names  # popped once read
        assert oct((cache / "run").stat().st_mode & 0o777) == "0o700"
        assert oct((cache / "run" / "server.json").stat().st_mode & 0o777) == "0o600"
    finally:
        lm.stop_server(cache_dir=cache)


def test_stale_runtime_file_is_replaced(tmp_path: Path, fake: tuple[Path, list[str]]) -> None:
    cache = tmp_path / "cache"
    run = cache / "run"
    run.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = {"pid": dead.pid, "port": 1, "model_path": str(fake[0]), "api_key": "old"}
    (run / "server.json").write_text(json.dumps(stale))
    ep = start_fake(cache, fake)
    try:
        assert ep.pid != dead.pid and ep.api_key != "old"
        assert lm.read_runtime_info(cache_dir=cache)["pid"] == ep.pid  # type: ignore[index]
    finally:
        lm.stop_server(cache_dir=cache)


def test_live_pid_that_does_not_answer_is_not_killed(
    tmp_path: Path, fake: tuple[Path, list[str]]
) -> None:
    cache = tmp_path / "cache"
    run = cache / "run"
    run.mkdir(parents=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        port = runtime._free_port()  # nothing listens there
        (run / "server.json").write_text(json.dumps({"pid": bystander.pid, "port": port}))
        ep = start_fake(cache, fake)
        assert ep.pid != bystander.pid
        assert bystander.poll() is None
        lm.stop_server(cache_dir=cache)
    finally:
        bystander.kill()
        bystander.wait()


def test_exits_when_idle_and_stays_while_used(tmp_path: Path, fake: tuple[Path, list[str]]) -> None:
    cache = tmp_path / "cache"
    ep = start_fake(cache, fake, idle_timeout=1.0)
    try:
        for _ in range(15):  # 1.5 s of use, longer than the idle timeout
            lm.touch_last_used(cache_dir=cache)
            time.sleep(0.1)
        assert runtime._pid_alive(ep.pid)
        assert wait_dead(ep.pid, timeout=10)
        assert lm.read_runtime_info(cache_dir=cache) is None
        assert "idle" in (cache / "run" / "server.log").read_text()
    finally:
        lm.stop_server(cache_dir=cache)


def test_exits_when_superseded(tmp_path: Path, fake: tuple[Path, list[str]]) -> None:
    cache = tmp_path / "cache"
    ep = start_fake(cache, fake)
    runtime = cache / "run" / "server.json"
    info = json.loads(runtime.read_text())
    runtime.write_text(json.dumps({**info, "pid": info["pid"] + 1_000_000}))
    try:
        assert wait_dead(ep.pid, timeout=10)
        assert "superseded" in (cache / "run" / "server.log").read_text()
        assert runtime.exists()  # it only removes a runtime file that names itself
    finally:
        runtime.unlink()


def test_server_failing_to_start_reports_its_log(
    tmp_path: Path, fake: tuple[Path, list[str]]
) -> None:
    fake[0].write_text("fail")
    with pytest.raises(lm.LocalModelError, match="exited with code 1") as info:
        start_fake(tmp_path / "cache", fake)
    assert "cannot load" in str(info.value)
    assert lm.read_runtime_info(cache_dir=tmp_path / "cache") is None


def test_start_timeout_kills_the_server(tmp_path: Path, fake: tuple[Path, list[str]]) -> None:
    fake[0].write_text("hang")
    before = set(runtime._children)
    with pytest.raises(lm.LocalModelError, match="start_timeout"):
        start_fake(tmp_path / "cache", fake, start_timeout=1.5)
    assert set(runtime._children) == before  # the hung child was killed and reaped


def test_other_model_restarts_the_server(tmp_path: Path, fake: tuple[Path, list[str]]) -> None:
    cache = tmp_path / "cache"
    first = start_fake(cache, fake)
    other = tmp_path / "other.gguf"
    other.write_text("ok")
    try:
        second = lm.ensure_server(
            cache_dir=cache, model_path=other, server_command=fake[1], start_timeout=30
        )
        assert second.pid != first.pid
        assert wait_dead(first.pid)
    finally:
        lm.stop_server(cache_dir=cache)


def test_model_path_env_change_restarts_the_server(
    tmp_path: Path, fake: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    first = start_fake(cache, fake)
    other = tmp_path / "other.gguf"
    other.write_text("ok")
    monkeypatch.setenv(lm.MODEL_PATH_ENV, str(other))
    try:
        second = lm.ensure_server(cache_dir=cache, server_command=fake[1], start_timeout=30)
        assert second.pid != first.pid
        assert lm.read_runtime_info(cache_dir=cache)["model_path"] == str(other)  # type: ignore[index]
    finally:
        lm.stop_server(cache_dir=cache)


# --------------------------------------------------------------------------- the real model


def _real_model() -> Path | None:
    override = os.environ.get(lm.MODEL_PATH_ENV)
    if override:
        return Path(override) if Path(override).is_file() else None
    path = lm.default_cache_dir() / lm.MODEL_FILENAME
    return path if model_file._is_assembled(path, lm.MODEL_SHA256, lm.MODEL_SIZE) else None


@pytest.mark.slow
def test_real_model_answers_through_openai_client(tmp_path: Path) -> None:
    pytest.importorskip("xllamacpp")
    openai = pytest.importorskip("openai")
    model = _real_model()
    if model is None:
        pytest.skip(
            "the local model is not assembled (python -m dataask_jupyter.local_model assemble)"
        )
    cache = tmp_path / "cache"
    ep = lm.ensure_server(cache_dir=cache, model_path=model, ctx=2048, start_timeout=120)
    try:
        client = openai.OpenAI(base_url=ep.base_url, api_key=ep.api_key, max_retries=0)
        reply = client.chat.completions.create(
            model=ep.model,
            temperature=0,
            max_tokens=24,
            messages=[{"role": "user", "content": "Write pandas code: result = len(df)"}],
        )
        assert reply.choices[0].message.content
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=ep.base_url, api_key="wrong", max_retries=0).models.list()
    finally:
        lm.stop_server(cache_dir=cache)
    assert wait_dead(ep.pid)
