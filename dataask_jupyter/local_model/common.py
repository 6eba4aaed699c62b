"""What every part of the local model shares: names, sizes, paths and errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dataask_jupyter.errors import LLMError

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
