"""Which reader a file needs, told from its first record: the ``--format auto`` of the commands."""

from __future__ import annotations

from pathlib import Path

from ..data import DataError
from .bio import looks_like_bio
from .jsonfile import first_object
from .labelstudio_export import is_full_task, is_min_task
from .spans import looks_like_spans

_HEAD_CHARS = 1 << 16


def detect_format(path: Path) -> str:
    """``jsonl``, ``label-studio``, ``spans`` or ``bio``; a DataError says why none fits."""
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        head = fh.read(_HEAD_CHARS)
    if not head.strip():
        raise DataError(f"{path}: the file is empty")
    if head.lstrip()[:1] in "[{":
        return _json_format(path, head)
    lines = [ln for ln in head.splitlines()[:-1] or head.splitlines() if ln.strip()][:20]
    if looks_like_bio(lines):
        return "bio"
    raise DataError(f"{path}: cannot tell the format (not JSON, and the first lines are not 'character tag' pairs); "
                    "give --format jsonl, label-studio, spans or bio")


def _json_format(path: Path, head: str) -> str:
    obj = first_object(path, head)
    if obj is None or obj == []:
        raise DataError(f"{path}: the file holds no records")
    if is_full_task(obj) or is_min_task(obj):
        return "label-studio"
    if head.lstrip()[:1] == "{" and _is_native(obj):
        return "jsonl"
    if looks_like_spans(obj):
        return "spans"
    keys = sorted(obj)[:12] if isinstance(obj, dict) else type(obj).__name__
    raise DataError(f"{path}: cannot tell the format of the first record (keys: {keys}); "
                    "give --format jsonl, label-studio, spans or bio")


def _is_native(obj: object) -> bool:
    """The package's own record: a text and entities with ``start``, ``end`` and ``label``."""
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not isinstance(obj.get("entities"), list):
        return False
    return all(isinstance(e, dict) and {"start", "end", "label"} <= e.keys() for e in obj["entities"])
