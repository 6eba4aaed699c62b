"""Typed exceptions. Every message is one line meant for a person, not a traceback."""

from __future__ import annotations


class DataaskError(Exception):
    """Base class of every error dataask raises on purpose."""


class LoadError(DataaskError):
    """A file or object could not be loaded as a table."""


class EmptyFileError(LoadError):
    """The file has no bytes, or no rows and no columns."""


class UnsupportedFormatError(LoadError):
    """The content is not CSV, XLS, XLSX or parquet (whatever its suffix says)."""


class SheetNotFoundError(LoadError):
    """The requested sheet does not exist; the message lists the sheets there are."""

    def __init__(self, message: str, sheets: list[str]) -> None:
        super().__init__(message)
        self.sheets = sheets


class FileTooLargeError(LoadError):
    """The file, or its uncompressed content, is over the configured cap."""


class CorruptFileError(LoadError):
    """The file claims a format but cannot be parsed."""


class EncryptedFileError(LoadError):
    """The workbook is password-protected."""


class DatasetNotFoundError(DataaskError):
    """A dataset name that is not loaded in the session."""


class LLMError(DataaskError):
    """The LLM endpoint failed (timeout, rate limit, server error, bad configuration)."""


class CodeExtractionError(DataaskError):
    """The LLM's reply held no usable code."""


class SandboxError(DataaskError):
    """The sandbox could not be started, died, or broke the protocol."""


class SandboxTimeoutError(SandboxError):
    """The generated code ran longer than the execution timeout."""


class CancelledError(DataaskError):
    """The question was cancelled (the kernel was interrupted, or ``Session.cancel()``)."""


class ExportError(DataaskError):
    """An answer could not be exported to the requested file."""
