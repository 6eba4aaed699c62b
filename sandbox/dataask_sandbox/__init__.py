"""The dataask sandbox server: holds DataFrames and runs generated code outside the kernel."""

from __future__ import annotations

__version__ = "0.1.0"
