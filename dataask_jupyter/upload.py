"""``%ask upload``: the upload widget for a session (see ``dataask_jupyter.widgets.upload``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dataask_jupyter.errors import DataaskError

if TYPE_CHECKING:
    from dataask_jupyter.session import Session
    from dataask_jupyter.widgets.upload import UploadBox


def upload_widget(session: Session, **options: Any) -> UploadBox:
    """An upload box whose files become datasets of ``session`` (through ``session.load``)."""
    try:
        from dataask_jupyter.widgets.upload import UploadBox
    except ImportError as exc:
        raise DataaskError(
            f"%ask upload needs ipywidgets and anywidget ({exc.name} is missing): "
            "pip install 'dataask-jupyter[notebook]', or use %ask load PATH"
        ) from None
    return UploadBox(session, **options)
