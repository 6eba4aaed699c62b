"""dataask: ask questions about CSV/XLS/XLSX files in Jupyter; generated code runs in a sandbox."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if (
    TYPE_CHECKING
):  # imported lazily: `python -m dataask_jupyter.local_model` must not pay for pandas
    from dataask_jupyter.config import Ask
    from dataask_jupyter.errors import (
        CancelledError,
        CodeExtractionError,
        CorruptFileError,
        DataaskError,
        DatasetNotFoundError,
        EmptyFileError,
        EncryptedFileError,
        ExportError,
        FileTooLargeError,
        LLMError,
        LoadError,
        SandboxError,
        SandboxTimeoutError,
        SheetNotFoundError,
        UnsupportedFormatError,
    )
    from dataask_jupyter.events import Event
    from dataask_jupyter.session import Answer, Attempt, Dataset, Session

__version__ = "0.1.0"
__all__ = [
    "Answer",
    "Ask",
    "Attempt",
    "CancelledError",
    "CodeExtractionError",
    "CorruptFileError",
    "DataaskError",
    "Dataset",
    "DatasetNotFoundError",
    "EmptyFileError",
    "EncryptedFileError",
    "Event",
    "ExportError",
    "FileTooLargeError",
    "LLMError",
    "LoadError",
    "SandboxError",
    "SandboxTimeoutError",
    "Session",
    "SheetNotFoundError",
    "UnsupportedFormatError",
    "load_ipython_extension",
    "unload_ipython_extension",
]

_LAZY = {
    "Ask": "dataask_jupyter.config",
    "Answer": "dataask_jupyter.session",
    "Attempt": "dataask_jupyter.session",
    "Dataset": "dataask_jupyter.session",
    "Event": "dataask_jupyter.events",
    "Session": "dataask_jupyter.session",
}
_magics: Any = None
_unregister_panel: Any = None


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in __all__ and name.endswith("Error"):
        return getattr(importlib.import_module("dataask_jupyter.errors"), name)
    raise AttributeError(f"module 'dataask_jupyter' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext dataask``: register ``%ask``/``%%ask``, the ``Ask`` settings and the input
    transformer that keeps one-line questions ending with "?" away from IPython's help syntax.

    Imports neither pandas, openai nor the session: they load with the first command or question.
    """
    global _magics
    from dataask_jupyter.config import Ask
    from dataask_jupyter.magics import AskMagics, ask_line_transform

    settings = next((c for c in ipython.configurables if type(c).__name__ == "Ask"), None)
    if settings is None:
        settings = Ask(parent=ipython)
        ipython.configurables.append(settings)
    _magics = AskMagics(ipython, settings)
    ipython.register_magics(_magics)
    cleanup = ipython.input_transformers_cleanup
    if ask_line_transform not in cleanup:
        cleanup.append(ask_line_transform)
    global _unregister_panel
    from dataask_jupyter.panel import register

    _unregister_panel = register(ipython, lambda: _magics.session)  # the side panel's comm


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext dataask``: stop the sandbox, remove the magics and the input transformer."""
    global _magics, _unregister_panel
    from dataask_jupyter.magics import ask_line_transform

    if _unregister_panel is not None:
        _unregister_panel()
        _unregister_panel = None
    cleanup = ipython.input_transformers_cleanup
    while ask_line_transform in cleanup:
        cleanup.remove(ask_line_transform)
    if _magics is not None:
        if _magics._session is not None:
            _magics._session.close()
        ipython.magics_manager.magics["line"].pop("ask", None)
        ipython.magics_manager.magics["cell"].pop("ask", None)
        _magics = None
