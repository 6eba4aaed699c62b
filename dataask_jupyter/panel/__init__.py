"""The JupyterLab side panel's kernel side: a comm target serving the kernel's ``Session``.

``register(ipython, get_session)`` (called by ``%load_ext dataask``) registers the comm target
``"dataask"`` and a ``post_run_cell`` hook that tells open panels about questions asked in
cells; it returns the function that undoes both. Nothing heavy is imported until a panel opens
its comm. It is a view on top of ``Session``: every step is a call on the session (see
``hub.PanelHub``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataask_jupyter.panel.hub import PanelHub
    from dataask_jupyter.session import Session

__all__ = ["TARGET", "register"]

TARGET = "dataask"


def register(ipython: Any, get_session: Callable[[], Session]) -> Callable[[], None] | None:
    """Serve panels from this kernel; ``None`` outside a kernel (plain IPython, scripts)."""
    if getattr(ipython, "kernel", None) is None:
        return None
    try:
        from comm import get_comm_manager
    except ImportError:
        return None
    manager = get_comm_manager()
    hubs: list[PanelHub] = []  # created with the first panel

    def on_open(comm: Any, msg: dict[str, Any]) -> None:
        if not hubs:
            from dataask_jupyter.panel.hub import PanelHub

            hubs.append(PanelHub(get_session))
        hub = hubs[0]
        conn = hub.connect(lambda data, buffers: comm.send(data, buffers=buffers), comm.close)
        comm.on_msg(lambda m: hub.handle(conn, m["content"]["data"], m.get("buffers")))
        comm.on_close(lambda _m: hub.disconnect(conn))
        hub.handle(conn, msg["content"].get("data") or {"op": "hello"})

    def after_cell(*_args: Any) -> None:
        if hubs:
            hubs[0].after_cell()

    manager.register_target(TARGET, on_open)
    ipython.events.register("post_run_cell", after_cell)

    def unregister() -> None:
        ipython.events.unregister("post_run_cell", after_cell)
        manager.unregister_target(TARGET, on_open)
        if hubs:
            hubs.pop().close()

    return unregister
