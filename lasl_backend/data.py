"""JSONL records: ``{"id", "text", "entities": [{"start", "end", "label"}]}``.

Offsets are Python ``str`` indices (code points), ``end`` exclusive: the same convention Label Studio
1.23 uses, so no conversion happens anywhere between a file, the model and Label Studio.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable


class DataError(ValueError):
    """A record or file that cannot be used, with the place it came from in the message."""


@dataclass(frozen=True, order=True)
class Entity:
    start: int
    end: int
    label: str


@dataclass
class Record:
    id: str
    text: str
    entities: list[Entity] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "text": self.text,
            "entities": [
                {"start": e.start, "end": e.end, "label": e.label, "text": self.text[e.start : e.end]}
                for e in self.entities
            ],
        }


def validate_entities(text: str, entities: Iterable[Entity], where: str = "record") -> list[Entity]:
    """Sort entities and reject empty, out-of-range or overlapping spans (BIO cannot hold them)."""
    ents = sorted(entities)
    prev_end = 0
    for e in ents:
        if not (0 <= e.start < e.end <= len(text)):
            raise DataError(f"{where}: entity {e} is outside the text (length {len(text)}) or empty")
        if e.start < prev_end:
            raise DataError(f"{where}: entity {e} overlaps the previous one")
        if not e.label or not isinstance(e.label, str):
            raise DataError(f"{where}: entity {e} has no label")
        prev_end = e.end
    return ents


def drop_overlaps(entities: Iterable[Entity]) -> tuple[list[Entity], list[Entity]]:
    """The entities in offset order without those overlapping one kept before them, and those dropped.

    BIO tags cannot hold overlapping or nested spans. The first in offset order is kept, and at a shared
    start the longer, so a nested corpus keeps its outermost mentions (左肺癌 over 左肺); the rest are
    reported by the caller, never merged."""
    kept: list[Entity] = []
    dropped: list[Entity] = []
    last_end = -1
    for e in sorted(set(entities), key=lambda e: (e.start, -e.end, e.label)):
        if e.start < last_end:
            dropped.append(e)
            continue
        kept.append(e)
        last_end = e.end
    return kept, dropped


def _entity_from_json(e: object, where: str) -> Entity:
    """Integer offsets and a label string, as written: 0.5, true, "3" or a null label are refused, not coerced."""
    if not isinstance(e, dict):
        raise DataError(f"{where}: expected an object with 'start', 'end' and 'label'")
    start, end, label = e.get("start"), e.get("end"), e.get("label")
    for name, v in (("start", start), ("end", end)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise DataError(f"{where}: '{name}' must be an integer, got {v!r}")
    if not isinstance(label, str) or not label:
        raise DataError(f"{where}: 'label' must be a non-empty string, got {label!r}")
    return Entity(start, end, label)  # type: ignore[arg-type]


def record_from_json(obj: object, where: str = "record") -> Record:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    text = obj.get("text")
    if not isinstance(text, str):
        raise DataError(f"{where}: 'text' must be a string")
    raw = obj.get("entities", [])
    if not isinstance(raw, list):
        raise DataError(f"{where}: 'entities' must be a list")
    ents = [_entity_from_json(e, f"{where}: entity {i}") for i, e in enumerate(raw)]
    rid = obj.get("id", where)
    return Record(id=str(rid), text=text, entities=validate_entities(text, ents, where))


def parse_json(text: str, where: str, whole_file: bool = False) -> object:
    """``json.loads`` with its failures as DataErrors at ``where``; for a whole file, at its failing line."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        line = f":{exc.lineno}" if whole_file else ""
        raise DataError(f"{where}{line}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise DataError(f"{where}: JSON nested too deeply to be records") from None


def _record_from_line(line: str, where: str) -> Record:
    return record_from_json(parse_json(line, where), where)


def require_file(path: str | Path) -> Path:
    """``path`` as a Path, or a DataError that says whether it is missing or a directory."""
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p}: a directory, not a file; name the file inside it")
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    return p


def read_jsonl(path: str | Path) -> list[Record]:
    """Read a JSONL file; every problem names the file and line."""
    p = require_file(path)
    records: list[Record] = []
    lineno = 0
    with p.open(encoding="utf-8-sig") as fh:
        try:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    records.append(_record_from_line(line, f"{p}:{lineno}"))
        except UnicodeDecodeError:
            raise DataError(f"{p}:{lineno + 1}: not UTF-8 text; save the file as UTF-8") from None
    if not records:
        raise DataError(f"{p}: no records")
    return records


def write_jsonl(records: Iterable[Record], path: str | Path) -> None:
    with Path(path).open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")


def labels_of(records: Iterable[Record]) -> list[str]:
    """The label set found in the data, sorted so that it is stable across runs."""
    return sorted({e.label for r in records for e in r.entities})
