"""One entry point for every input format: the choice of reader, by name or from the content."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..data import DataError
from . import bio, labelstudio_export, native, spans
from .base import Loaded, ReadOptions
from .detect import detect_format

Reader = Callable[[Path, ReadOptions], Loaded]


READERS: dict[str, Reader] = {"jsonl": native.read, "label-studio": labelstudio_export.read, "bio": bio.read, "spans": spans.read}
FORMATS = ("auto", *READERS)


def read_records(path: str | Path, fmt: str = "auto", options: ReadOptions | None = None) -> Loaded:
    """Read annotated records from ``path`` in format ``fmt`` (``auto``: told from the file's content)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    name = detect_format(p) if fmt == "auto" else fmt
    loaded = READERS[name](p, options or ReadOptions())
    if not loaded.records:
        why = f"; {len(loaded.skipped)} left out, the first: {loaded.skipped[0]}" if loaded.skipped else ""
        raise DataError(f"{p}: no annotated records in the {name} format{why}")
    return loaded
