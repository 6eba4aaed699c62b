"""Notebook widgets: the paged table, the code view, the answer view and the upload box.

Needs ``ipywidgets`` and ``anywidget`` (the ``notebook`` extra). No JavaScript build step: each
front-end part is a small ES module in ``static/``, loaded by anywidget.
"""

from __future__ import annotations

from dataask_jupyter.widgets.answer import AnswerView
from dataask_jupyter.widgets.code import CodeView
from dataask_jupyter.widgets.table import DataTable
from dataask_jupyter.widgets.upload import DatasetCard, FilePicker, UploadBox

__all__ = ["AnswerView", "CodeView", "DataTable", "DatasetCard", "FilePicker", "UploadBox"]
