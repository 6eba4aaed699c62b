"""Format detection by content (magic bytes, OLE2 directory, ZIP members), never by suffix."""

from __future__ import annotations

import os
import struct
import zipfile

from dataask_jupyter.errors import (
    CorruptFileError,
    EncryptedFileError,
    UnsupportedFormatError,
)

from .common import SUPPORTED, check_file, display, one_line, read_head

# --------------------------------------------------------------------------------------------
# format detection

_MAGIC: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip-compressed file (decompress it first)"),
    (b"BZh", "a bzip2-compressed file (decompress it first)"),
    (b"\xfd7zXZ\x00", "an xz-compressed file (decompress it first)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x7fELF", "a program (ELF executable)"),
    (b"MZ", "a Windows program"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"ARROW1", "an Arrow/Feather file"),
    (b"{\\rtf", "an RTF document"),
    (b"\x00\x00\x01\x00", "an icon image"),
    (b"OggS", "an audio file"),
    (b"ID3", "an MP3 audio file"),
]

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def unsupported(name: str, what: str) -> UnsupportedFormatError:
    return UnsupportedFormatError(f"{name} looks like {what}, not {SUPPORTED}")


def _ole_entry_names(path: str) -> set[str]:
    """Names of all directory entries of an OLE2 compound file (a minimal, bounded CFB reader)."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        file_size = fh.tell()
        fh.seek(0)
        header = fh.read(512)
        if len(header) < 512 or header[:8] != _OLE_MAGIC:
            raise ValueError("not an OLE2 file")
        sector_shift = struct.unpack_from("<H", header, 0x1E)[0]
        if sector_shift not in (9, 12):
            raise ValueError("bad sector size")
        ss = 1 << sector_shift
        first_dir = struct.unpack_from("<I", header, 0x30)[0]
        first_difat, n_difat = struct.unpack_from("<II", header, 0x44)
        difat = list(struct.unpack_from("<109I", header, 0x4C))
        max_sectors = file_size // ss + 1
        per_sector = ss // 4

        def read_sector(n: int) -> bytes:
            if n >= max_sectors:
                raise ValueError("sector out of range")
            fh.seek((n + 1) * ss)
            data = fh.read(ss)
            if len(data) < ss:
                raise ValueError("truncated")
            return data

        sec = first_difat
        for _ in range(min(n_difat, max_sectors)):
            if sec >= 0xFFFFFFFA:
                break
            vals = struct.unpack(f"<{per_sector}I", read_sector(sec))
            difat.extend(vals[:-1])
            sec = vals[-1]

        def fat_next(n: int) -> int:
            idx, off = divmod(n, per_sector)
            if idx >= len(difat) or difat[idx] >= 0xFFFFFFFA:
                raise ValueError("FAT out of range")
            fh.seek((difat[idx] + 1) * ss + off * 4)
            raw = fh.read(4)
            if len(raw) < 4:
                raise ValueError("truncated")
            return int(struct.unpack("<I", raw)[0])

        names: set[str] = set()
        sec = first_dir
        for _ in range(max_sectors):
            if sec >= 0xFFFFFFFA:
                break
            data = read_sector(sec)
            for off in range(0, ss, 128):
                entry = data[off : off + 128]
                name_len = struct.unpack_from("<H", entry, 0x40)[0]
                kind = entry[0x42]
                if kind in (1, 2, 5) and 2 <= name_len <= 64:
                    names.add(entry[: name_len - 2].decode("utf-16-le", "replace"))
            sec = fat_next(sec)
        return names


def _classify_ole(path: str, name: str) -> str:
    try:
        names = _ole_entry_names(path)
    except (ValueError, OSError, struct.error):
        # A damaged compound file; let the XLS readers report what is wrong.
        return "xls"
    lowered = {n.lower() for n in names}
    if "encryptioninfo" in lowered or "encryptedpackage" in lowered:
        raise EncryptedFileError(
            f"{name} is password-protected; remove the password in Excel and save again"
        )
    if "workbook" in lowered or "book" in lowered:
        return "xls"
    if "worddocument" in lowered:
        raise unsupported(name, "a Word document")
    if "powerpoint document" in lowered:
        raise unsupported(name, "a PowerPoint presentation")
    if any(n.startswith("__substg1.0_") for n in lowered):
        raise unsupported(name, "an Outlook message")
    raise unsupported(name, "an Office compound document without a workbook")


_ODF_KINDS = {
    "text": "an OpenDocument text document",
    "presentation": "an OpenDocument presentation",
    "graphics": "an OpenDocument drawing",
}


def _zip_member(zf: zipfile.ZipFile, member: str, limit: int = 1 << 20) -> str:
    """The start of a small text member of a ZIP file ('' if absent or unreadable)."""
    try:
        with zf.open(member) as fh:
            return fh.read(limit).decode("utf-8", "replace")
    except (KeyError, OSError, ValueError, EOFError, zipfile.BadZipFile, RuntimeError):
        return ""


def _classify_zip(path: str, name: str, head: bytes) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            types = _zip_member(zf, "[Content_Types].xml") if "[Content_Types].xml" in names else ""
            mimetype = _zip_member(zf, "mimetype", 200).strip() if "mimetype" in names else ""
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        if b"xl/" in head or b"[Content_Types].xml" in head:
            raise CorruptFileError(
                f"{name} is a damaged or truncated XLSX file ({one_line(exc)}); "
                "open it in Excel and save it again"
            ) from None
        if b"opendocument" in head:
            raise CorruptFileError(
                f"{name} is a damaged or truncated ODS file ({one_line(exc)}); "
                "open it in LibreOffice or Excel and save it again"
            ) from None
        raise unsupported(name, "a damaged ZIP archive") from None
    if "[Content_Types].xml" in names:
        if "ms-excel.sheet.binary" in types or "xl/workbook.bin" in names:
            return "xlsb"
        if "ms-excel.sheet.macroEnabled" in types or "ms-excel.template.macroEnabled" in types:
            return "xlsm"
        if "spreadsheetml" in types or "xl/workbook.xml" in names:
            return "xlsx"
        if any(n.startswith("word/") for n in names):
            raise unsupported(name, "a Word document")
        if any(n.startswith("ppt/") for n in names):
            raise unsupported(name, "a PowerPoint presentation")
        if any(n.startswith("xl/") for n in names):
            raise CorruptFileError(
                f"{name} is an Excel package without xl/workbook.xml; "
                "open it in Excel and save it again"
            )
    if mimetype.startswith("application/vnd.oasis.opendocument."):
        kind = mimetype.rsplit(".", 1)[-1]
        if kind.startswith("spreadsheet"):
            return "ods"
        raise unsupported(
            name, _ODF_KINDS.get(kind, "an OpenDocument file that is not a spreadsheet")
        )
    if "content.xml" in names and b"opendocument.spreadsheet" in head:
        return "ods"
    raise unsupported(name, "a ZIP archive that is not a workbook")


def _classify_bytes(head: bytes, name: str) -> str | None:
    """Classify by magic bytes alone; None means "text, maybe CSV"."""
    if head.startswith(_OLE_MAGIC):
        return "ole"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return "zip"
    if head.startswith(b"PAR1"):
        return "parquet"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise unsupported(name, what)
    return None


def detect_format(path: str | os.PathLike[str]) -> str:
    """Return "csv", "xlsx", "xlsm", "xlsb", "xls", "ods" or "parquet", judged by content.

    The suffix is never trusted.

    Raises EmptyFileError, UnsupportedFormatError (e.g. an image renamed .csv),
    EncryptedFileError (password-protected workbook) or CorruptFileError (damaged XLSX).
    """
    p = os.fspath(path)
    check_file(p, None)
    return detect(p, read_head(p))


def detect(path: str, head: bytes) -> str:
    name = display(path)
    kind = _classify_bytes(head, name)
    if kind == "ole":
        return _classify_ole(path, name)
    if kind == "zip":
        return _classify_zip(path, name, head)
    if kind == "parquet":
        return "parquet"
    return "csv"
