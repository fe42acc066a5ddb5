"""One entry point for every input format: the choice of reader, by name or from the content."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..data import DataError, require_file
from . import bio, labelstudio_export, native, spans
from .base import Loaded, ReadOptions
from .detect import detect_format

Reader = Callable[[Path, ReadOptions], Loaded]


READERS: dict[str, Reader] = {"jsonl": native.read, "label-studio": labelstudio_export.read, "bio": bio.read, "spans": spans.read}
FORMATS = ("auto", *READERS)


def read_records(path: str | Path, fmt: str = "auto", options: ReadOptions | None = None) -> Loaded:
    """Read annotated records from ``path`` in format ``fmt`` (``auto``: told from the file's content)."""
    p = require_file(path)
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    _check_utf8(p)
    name = detect_format(p) if fmt == "auto" else fmt
    loaded = READERS[name](p, options or ReadOptions())
    _check_texts(p, loaded)
    if not loaded.records:
        why = f"; {len(loaded.skipped)} left out, the first: {loaded.skipped[0]}" if loaded.skipped else ""
        raise DataError(f"{p}: no annotated records in the {name} format{why}")
    return loaded


def _check_utf8(path: Path) -> None:
    """Every reader decodes UTF-8; a file in another encoding is named with its first bad line."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise DataError(f"{path}: UTF-16 text (its first bytes say so); save the file as UTF-8") from None
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None


def _check_texts(path: Path, loaded: Loaded) -> None:
    """A JSON escape can put a lone surrogate in a text; it is no character, and no file can hold it."""
    for r in loaded.records:
        try:
            r.text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DataError(f"{path}: record {r.id}: the text holds a lone surrogate at character {exc.start}, not Unicode text") from None
