"""Files no reader should take: each is a DataError naming the file (and the line where there is one),
never a traceback, a coerced number or a record that cannot be written back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lasl_backend.data import DataError, read_jsonl
from lasl_backend.formats import read_records

NATIVE_ENTITY = '{{"text": "患者胸痛", "entities": [{{"start": {start}, "end": 4, "label": {label}}}]}}\n'

CASES = {
    "latin-1 text": ('{"text": "caf\xe9", "entities": []}\n'.encode("latin-1"), r":1: not UTF-8 text"),
    "nested 100,000 deep, an array": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "nested 100,000 deep, a line": (b'{"text": "a", "entities": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", r":1: JSON nested too deeply"),
    "a lone surrogate": (b'{"text": "a\\ud800b", "entities": []}\n', "lone surrogate"),
    "a fractional offset": (NATIVE_ENTITY.format(start="0.5", label='"症状"').encode(), r":1: entity 0: 'start' must be an integer"),
    "a boolean offset": (NATIVE_ENTITY.format(start="true", label='"症状"').encode(), r":1: entity 0: 'start' must be an integer"),
    "a null label": (NATIVE_ENTITY.format(start="2", label="null").encode(), r":1: entity 0: 'label' must be a non-empty string"),
    "a number as label": (NATIVE_ENTITY.format(start="2", label="5").encode(), r":1: entity 0: 'label' must be a non-empty string"),
    "an empty array": (b"[]", "holds no records"),
    "an array of numbers": (b"[1, 2, 3]", "cannot tell the format"),
    "random bytes": (bytes(range(256)) * 8, "not UTF-8 text"),
    "UTF-16 with its byte-order mark": ('{"text": "患者", "entities": []}\n'.encode("utf-16"), "UTF-16 text"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_file_is_a_data_error_with_its_place(tmp_path: Path, case: str) -> None:
    content, message = CASES[case]
    path = tmp_path / "hostile.data"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as exc:
        read_records(path)
    assert str(path) in str(exc.value)


@pytest.mark.parametrize("case", ["latin-1 text", "nested 100,000 deep, a line", "a fractional offset", "a null label"])
def test_the_strict_jsonl_reader_refuses_the_same(tmp_path: Path, case: str) -> None:
    """``lasl simulate`` reads JSONL directly: it refuses what ``--format auto`` refuses, with the line."""
    content, message = CASES[case]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_jsonl(path)


def test_a_label_studio_offset_past_any_text_leaves_its_task_out_not_the_read(tmp_path: Path) -> None:
    regions = [{"from_name": "l", "type": "labels", "value": {"start": 0, "end": 10**30, "labels": ["症状"]}},
               {"from_name": "l", "type": "labels", "value": {"start": 0, "end": 2, "labels": ["症状"]}}]
    tasks = [{"id": 1, "data": {"text": "胸痛"}, "annotations": [{"id": 1, "result": regions}]},
             {"id": 2, "data": {"text": "胸痛"}, "annotations": [{"id": 2, "result": regions[1:]}]}]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks), encoding="utf-8")
    loaded = read_records(path)
    assert [len(r.entities) for r in loaded.records] == [1] and len(loaded.skipped) == 1
    assert "task 1" in loaded.skipped[0] and "outside the text" in loaded.skipped[0]


def test_a_directory_is_named_as_one(tmp_path: Path) -> None:
    for read in (read_records, read_jsonl):
        with pytest.raises(DataError, match="a directory, not a file"):
            read(tmp_path)
