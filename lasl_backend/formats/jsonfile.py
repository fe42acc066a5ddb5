"""JSON files of records: one array, or one object per line (JSONL), each object with its place."""

from __future__ import annotations

import json
from pathlib import Path

from ..data import DataError, parse_json


def read_objects(path: Path) -> list[tuple[str, str, object]]:
    """``(place, fallback id, object)``: the place ``file: record N`` in an array, ``file:line`` in JSONL,
    and ``name:N`` as the id of a record that carries none. JSONL splits on ``\n`` only: JSON strings may
    hold U+2028 and the like unescaped, which ``str.splitlines`` would cut."""
    text = path.read_text(encoding="utf-8-sig")
    if text.lstrip()[:1] == "[":
        items = parse_json(text, str(path), whole_file=True)
        if not isinstance(items, list):
            raise DataError(f"{path}: expected a JSON array of records")
        return [(f"{path}: record {i}", f"{path.name}:{i}", obj) for i, obj in enumerate(items, 1)]
    out: list[tuple[str, str, object]] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        out.append((f"{path}:{lineno}", f"{path.name}:{lineno}", parse_json(line, f"{path}:{lineno}")))
    return out


def first_object(path: Path, head: str) -> object | None:
    """The file's first record (None for no records), read from its first bytes where it fits there, else
    from the whole file."""
    body = head.lstrip()
    if body[:1] == "[":
        body = body[1:].lstrip()
    try:
        obj, _ = json.JSONDecoder().raw_decode(body)
        return obj
    except (json.JSONDecodeError, RecursionError):
        pass
    objects = read_objects(path)  # a DataError here names the file and line that is broken
    return objects[0][2] if objects else None
