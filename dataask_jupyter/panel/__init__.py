"""The JupyterLab side panel's kernel side: a comm target serving the kernel's ``Session``.

``register(ipython, get_session)`` (called by ``%load_ext dataask``) registers the comm target
``"dataask"`` and a ``post_run_cell`` hook that tells open panels about questions asked in
cells; it returns the function that undoes both. It is a view on top of ``Session``: every step
is a call on the session (see ``hub.PanelHub``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dataask_jupyter.panel.hub import TARGET, Connection, PanelHub

if TYPE_CHECKING:
    from dataask_jupyter.session import Session

__all__ = ["TARGET", "PanelHub", "register"]


def register(ipython: Any, get_session: Callable[[], Session]) -> Callable[[], None] | None:
    """Serve panels from this kernel; ``None`` outside a kernel (plain IPython, scripts)."""
    if getattr(ipython, "kernel", None) is None:
        return None
    try:
        from comm import get_comm_manager
    except ImportError:
        return None
    manager = get_comm_manager()
    hub = PanelHub(get_session)

    def on_open(comm: Any, msg: dict[str, Any]) -> None:
        conn: Connection = hub.connect(
            lambda data, buffers: comm.send(data, buffers=buffers), comm.close
        )
        comm.on_msg(lambda m: hub.handle(conn, m["content"]["data"], m.get("buffers")))
        comm.on_close(lambda _m: hub.disconnect(conn))
        hub.handle(conn, msg["content"].get("data") or {"op": "hello"})

    manager.register_target(TARGET, on_open)
    ipython.events.register("post_run_cell", hub.after_cell)

    def unregister() -> None:
        ipython.events.unregister("post_run_cell", hub.after_cell)
        manager.unregister_target(TARGET, on_open)
        hub.close()

    return unregister
