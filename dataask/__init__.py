"""Short import name for dataask-jupyter: ``%load_ext dataask`` and ``import dataask``."""

from __future__ import annotations

from dataask_jupyter import *  # noqa: F403
from dataask_jupyter import __all__, __version__, load_ipython_extension, unload_ipython_extension  # noqa: F401  # noqa: F401
