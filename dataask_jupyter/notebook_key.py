"""The key of the notebook this kernel serves: what its stored conversation is filed under.

In order: VS Code's ``__vsc_ipynb_file__``, ipykernel's ``__session__`` and jupyter-server's
``JPY_SESSION_NAME`` (the notebook's path, set for kernels the server starts for a notebook);
then ``script:<path>`` for a Python script, else ``ipython:<working directory>`` (plain IPython,
nbclient and other headless runs). The same notebook gets the same key after a kernel restart.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["notebook_key"]

# JupyterLab once started sessions under a temporary UUID "path" before the real one was known:
# such a name is not stable across restarts, so it is not used as a key.
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_INTERACTIVE_MAINS = ("ipykernel_launcher", "ipython", "jupyter", "ipykernel")


def _notebook_path(raw: str, cwd: str) -> str | None:
    """An absolute path for ``raw`` where it can be told, the path as given otherwise."""
    raw = raw.strip()
    if not raw or _UUID.match(os.path.basename(raw)):
        return None
    if os.path.isabs(raw):
        return os.path.normpath(raw)
    # jupyter-server may give the path relative to its root; the kernel runs in the notebook's
    # directory, so when that directory ends with the path's directories the absolute path is
    # the working directory plus the file name.
    parent = [p for p in os.path.normpath(os.path.dirname(raw)).split(os.sep) if p not in ("", ".")]
    tail = [p for p in os.path.normpath(cwd).split(os.sep) if p]
    if not parent or tail[-len(parent) :] == parent:
        return os.path.join(os.path.normpath(cwd), os.path.basename(raw))
    return os.path.normpath(raw)


def _main_script() -> str | None:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not isinstance(path, str) or not path:
        return None
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    parent = os.path.basename(os.path.dirname(path)).lower()
    if stem.startswith(_INTERACTIVE_MAINS) or parent.startswith(_INTERACTIVE_MAINS):
        return None
    return os.path.abspath(path)


def notebook_key(
    user_ns: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> str:
    """The key of this kernel's notebook (see the module docstring for the order of sources).

    ``user_ns`` is the IPython user namespace (``get_ipython().user_ns``); ``environ`` and
    ``cwd`` default to this process's.
    """
    env = os.environ if environ is None else environ
    here = os.getcwd() if cwd is None else cwd
    ns = user_ns or {}
    for candidate in (
        ns.get("__vsc_ipynb_file__"),
        ns.get("__session__"),
        env.get("JPY_SESSION_NAME"),
    ):
        if isinstance(candidate, str):
            path = _notebook_path(candidate, here)
            if path:
                return f"notebook:{path}"
    if user_ns is None:
        script = _main_script()
        if script:
            return f"script:{script}"
    return f"ipython:{os.path.normpath(here)}"
