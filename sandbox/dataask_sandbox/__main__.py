"""Entry point: deny this process the network (seccomp), then serve.

``python -m dataask_sandbox --connect PATH | --socket PATH`` serves one kernel (see
:mod:`dataask_sandbox.server`); ``--sidecar DIR`` serves every kernel that listens under ``DIR``
(see :mod:`dataask_sandbox.sidecar`) and refuses to start without the network self-denial, since a
sidecar shares its pod's network. ``--require-netdeny`` makes the other modes refuse as well.
"""

from __future__ import annotations

import sys

from dataask_sandbox import netdeny


def run(argv: list[str]) -> int:
    args = [a for a in argv if a != "--require-netdeny"]
    sidecar = args[:1] == ["--sidecar"]
    if not netdeny.apply() and (sidecar or len(args) != len(argv)):
        print(
            f"dataask_sandbox: refusing to serve without the network self-denial: "
            f"{netdeny.problem()}",
            file=sys.stderr,
            flush=True,
        )
        return 3
    if sidecar:
        if len(args) != 2:
            print("usage: python -m dataask_sandbox --sidecar DIR", file=sys.stderr)
            return 2
        from dataask_sandbox.sidecar import watch

        return watch(args[1])
    from dataask_sandbox.server import main

    return main(args)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
