"""Short import name for dataask-jupyter: ``%load_ext dataask`` and ``import dataask``.

Names resolve lazily through ``dataask_jupyter`` (``dataask.Session`` imports the session on first
use), so ``import dataask`` and ``%load_ext dataask`` import neither pandas nor openai.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dataask_jupyter
from dataask_jupyter import __all__ as __all__
from dataask_jupyter import __version__ as __version__
from dataask_jupyter import load_ipython_extension as load_ipython_extension
from dataask_jupyter import unload_ipython_extension as unload_ipython_extension

if TYPE_CHECKING:  # type checkers see every public name; at run time they load on first use
    from dataask_jupyter import *  # noqa: F403


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(dataask_jupyter, name)
    raise AttributeError(f"module 'dataask' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
