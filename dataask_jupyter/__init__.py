"""dataask: ask questions about CSV/XLS/XLSX files in Jupyter; generated code runs in a sandbox."""

from __future__ import annotations

__version__ = "0.1.0"
__all__: list[str] = []
