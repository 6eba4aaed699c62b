"""Execute a notebook headless and print each question with its answer (text/plain outputs).

python scripts/run_notebook.py examples/quickstart.ipynb [--timeout 900] [--save OUT.ipynb]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def text_of(output: nbformat.NotebookNode) -> str:
    if output.get("output_type") == "stream":
        return str(output.get("text", ""))
    if output.get("output_type") == "error":
        return f"{output.get('ename')}: {output.get('evalue')}"
    data = output.get("data", {})
    return str(data.get("text/plain", ""))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("notebook", type=Path)
    p.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    p.add_argument("--save", type=Path, help="write the executed notebook here")
    a = p.parse_args()
    nb = nbformat.read(a.notebook, as_version=4)
    # A headless demo starts from a clean slate: its conversation is kept in a folder of its own
    # (set DATAASK_STATE_DIR to keep it), not restored from an earlier run of the same notebook.
    state = tempfile.TemporaryDirectory(prefix="dataask-state-")
    os.environ.setdefault("DATAASK_STATE_DIR", state.name)
    client = NotebookClient(
        nb,
        timeout=a.timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(a.notebook.parent)}},
    )
    started = time.perf_counter()
    failed = False
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            print(f"\n>>> {cell.source}", flush=True)
            t = time.perf_counter()
            try:
                client.execute_cell(cell, index)
            except CellExecutionError:
                failed = True
            for out in cell.get("outputs", []):
                body = text_of(out).rstrip()
                if body:
                    print(body, flush=True)
            print(f"    ({time.perf_counter() - t:.1f} s)", flush=True)
    if a.save:
        nbformat.write(nb, a.save)
    print(
        f"\nRan {a.notebook} in {time.perf_counter() - started:.0f} s"
        + (" with errors" if failed else ""),
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
