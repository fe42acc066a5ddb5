"""``lasl convert``: another tool's annotated file as the package's JSONL, optionally split into the
``train.jsonl`` / ``test.jsonl`` pair that ``lasl simulate`` replays."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..data import DataError, Record
from .reading import Loaded


def _jsonl(records: list[Record]) -> str:
    return "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in records)


def split_train_test(records: list[Record], test_share: float, seed: int) -> tuple[list[Record], list[Record]]:
    """A seeded shuffle cut into train and test; both keep at least one record."""
    if not 0.0 < test_share < 1.0:
        raise DataError(f"--test-share {test_share} must be in (0, 1)")
    if len(records) < 2:
        raise DataError(f"{len(records)} record(s) cannot be split into train and test")
    order = list(records)
    random.Random(seed).shuffle(order)
    n_test = min(max(1, round(len(order) * test_share)), len(order) - 1)
    return order[n_test:], order[:n_test]


def write_converted(loaded: Loaded, out: Path, test_share: float | None = None, seed: int = 0) -> dict[str, Any]:
    """Write ``out`` (a JSONL file), or ``out/train.jsonl`` and ``out/test.jsonl`` with ``test_share``;
    each file is written atomically. Returns the summary the command prints."""
    records = _unique_ids(loaded.records)
    _check_target(out, split=test_share is not None)
    try:
        written = _write(records, out, test_share, seed)
    except OSError as exc:
        raise DataError(f"{out}: cannot write there ({exc.strerror or exc})") from None
    labels = Counter(e.label for r in records for e in r.entities)
    return {"format": loaded.format, "records": len(records), "characters": sum(len(r.text) for r in records),
            "entities": sum(labels.values()), "labels": dict(labels.most_common()), "skipped": len(loaded.skipped),
            "written": written}


def _check_target(out: Path, split: bool) -> None:
    """A file where a directory is wanted, or the reverse, is said before anything is written."""
    if split and out.exists() and not out.is_dir():
        raise DataError(f"{out}: a file; --test-share writes train.jsonl and test.jsonl into a directory")
    if not split and out.is_dir():
        raise DataError(f"{out}: a directory; give a file name (or --test-share to write train.jsonl and test.jsonl there)")


def _write(records: list[Record], out: Path, test_share: float | None, seed: int) -> dict[str, int]:
    if test_share is None:
        write_text_atomic(out, _jsonl(records))
        return {str(out): len(records)}
    train, test = split_train_test(records, test_share, seed)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "train.jsonl", _jsonl(train))
    write_text_atomic(out / "test.jsonl", _jsonl(test))
    return {str(out / "train.jsonl"): len(train), str(out / "test.jsonl"): len(test)}


def _unique_ids(records: list[Record]) -> list[Record]:
    """Ids as read, with ``#2``, ``#3`` ... added to repeats: a replay tells records apart by id."""
    seen: Counter[str] = Counter()
    out = []
    for r in records:
        seen[r.id] += 1
        rid = r.id if seen[r.id] == 1 else f"{r.id}#{seen[r.id]}"
        out.append(Record(id=rid, text=r.text, entities=list(r.entities)))
    return out
