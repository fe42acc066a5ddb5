"""A Label Studio export read as records: JSON and JSON-MIN, the chosen annotation, bad regions skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lasl_backend.data import DataError, Entity
from lasl_backend.formats import ReadOptions, read_records

TEXT = "患者因胸痛3天入院，行冠脉造影。"
CONFIG = """<View><Text name="text" value="$text"/>
<Labels name="label" toName="text"><Label value="症状"/><Label value="检查"/></Labels></View>"""


def region(start: int, end: int, label: str, text: str = TEXT, **extra: object) -> dict:
    return {"from_name": "label", "to_name": "text", "type": "labels",
            "value": {"start": start, "end": end, "text": text[start:end], "labels": [label]}, **extra}


def task(tid: int, annotations: list[dict], text: str = TEXT) -> dict:
    return {"id": tid, "data": {"text": text}, "annotations": annotations, "predictions": []}


def annotation(aid: int, result: list[dict], updated: str = "2026-01-01T00:00:00Z", **extra: object) -> dict:
    return {"id": aid, "result": result, "was_cancelled": False, "ground_truth": False, "updated_at": updated, **extra}


def write(tmp_path: Path, obj: object, name: str = "export.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return p


def test_full_export_reads_the_latest_annotation_of_each_task(tmp_path: Path) -> None:
    tasks = [task(7, [annotation(1, [region(3, 5, "症状")], "2026-01-01T00:00:00Z"),
                      annotation(2, [region(3, 5, "症状"), region(11, 15, "检查")], "2026-02-01T00:00:00Z")])]
    loaded = read_records(write(tmp_path, tasks), "label-studio")
    assert loaded.format == "label-studio"
    [rec] = loaded.records
    assert rec.id == "7" and rec.text == TEXT
    assert rec.entities == [Entity(3, 5, "症状"), Entity(11, 15, "检查")]


def test_cancelled_and_unannotated_tasks_are_left_out_with_a_note(tmp_path: Path) -> None:
    tasks = [task(1, [annotation(1, [region(3, 5, "症状")])]),
             task(2, [annotation(2, [region(3, 5, "症状")], was_cancelled=True)]),
             task(3, [])]
    loaded = read_records(write(tmp_path, tasks), "auto")
    assert [r.id for r in loaded.records] == ["1"]
    assert any("2 tasks without a usable annotation" in n for n in loaded.notes)


def test_an_empty_result_is_a_record_without_entities(tmp_path: Path) -> None:
    tasks = [task(1, [annotation(1, [])]), task(2, [annotation(2, [region(3, 5, "症状")])])]
    loaded = read_records(write(tmp_path, tasks), "label-studio")
    assert loaded.records[0].entities == [] and loaded.records[1].entities == [Entity(3, 5, "症状")]


def test_a_task_with_a_region_that_does_not_slice_the_text_is_left_out_and_said(tmp_path: Path) -> None:
    bad = region(3, 5, "症状")
    bad["value"]["text"] = "头痛"
    tasks = [task(1, [annotation(1, [bad, region(11, 15, "检查")])]), task(2, [annotation(2, [region(11, 15, "检查")])])]
    loaded = read_records(write(tmp_path, tasks), "label-studio")
    assert [r.entities for r in loaded.records] == [[Entity(11, 15, "检查")]]
    assert len(loaded.skipped) == 1 and "task 1" in loaded.skipped[0] and "differs" in loaded.skipped[0]


def test_offsets_are_code_points_after_an_emoji_and_an_ext_b_character(tmp_path: Path) -> None:
    text = "😀𠀀患者胸痛"
    loaded = read_records(write(tmp_path, [task(1, [annotation(1, [region(4, 6, "症状", text)])], text)]), "label-studio")
    rec = loaded.records[0]
    assert rec.text[4:6] == "胸痛" and rec.entities == [Entity(4, 6, "症状")]


def test_the_label_config_decides_which_labels_are_read(tmp_path: Path) -> None:
    tasks = [task(1, [annotation(1, [region(3, 5, "症状"), region(11, 15, "手术")])])]
    path = write(tmp_path, tasks)
    inferred = read_records(path, "label-studio")
    assert {e.label for e in inferred.records[0].entities} == {"症状", "手术"}
    given = read_records(path, "label-studio", ReadOptions(label_config=CONFIG))
    assert given.records[0].entities == [Entity(3, 5, "症状")]
    assert any("not in the label config" in s for s in given.skipped)


def test_a_broken_label_config_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="label config"):
        read_records(write(tmp_path, [task(1, [annotation(1, [])])]), "label-studio", ReadOptions(label_config="<View"))


def test_the_text_field_is_found_or_asked_for(tmp_path: Path) -> None:
    one = [{"id": 1, "data": {"note": TEXT}, "annotations": [annotation(1, [region(3, 5, "症状")])]}]
    assert read_records(write(tmp_path, one), "label-studio").records[0].text == TEXT
    two = [{"id": 1, "data": {"note": TEXT, "ward": "心内科"}, "annotations": [annotation(1, [region(3, 5, "症状")])]}]
    with pytest.raises(DataError, match="--text-key"):
        read_records(write(tmp_path, two), "label-studio")
    assert read_records(write(tmp_path, two), "label-studio", ReadOptions(text_key="note")).records[0].text == TEXT


def test_json_min_export(tmp_path: Path) -> None:
    rows = [{"id": 5, "text": TEXT, "label": [{"start": 3, "end": 5, "text": "胸痛", "labels": ["症状"]}],
             "annotator": "a@example.org", "annotation_id": 9, "created_at": "2026-01-01T00:00:00Z",
             "updated_at": "2026-01-01T00:00:00Z", "lead_time": 12.5}]
    rows.insert(0, {"id": 4, "text": "无不适。", "annotator": "a@example.org", "annotation_id": 8})  # no regions: no key
    loaded = read_records(write(tmp_path, rows), "auto")
    assert loaded.format == "label-studio"
    assert [r.id for r in loaded.records] == ["4", "5"]
    assert loaded.records[0].entities == [] and loaded.records[1].entities == [Entity(3, 5, "症状")]


def test_a_task_that_is_not_one_names_its_place(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"record 2: not a Label Studio task"):
        read_records(write(tmp_path, [task(1, [annotation(1, [region(3, 5, "症状")])]), {"foo": 1}]), "label-studio")


def test_an_export_without_any_region_needs_the_label_config(tmp_path: Path) -> None:
    path = write(tmp_path, [task(1, [annotation(1, [])])])
    with pytest.raises(DataError, match="no labels regions"):
        read_records(path, "label-studio")
    assert read_records(path, "label-studio", ReadOptions(label_config=CONFIG)).records[0].entities == []


def test_json_min_rows_of_one_task_are_one_record_from_its_latest_annotation(tmp_path: Path) -> None:
    rows = [{"id": 5, "text": TEXT, "label": [{"start": 3, "end": 5, "text": "胸痛", "labels": ["症状"]}],
             "annotator": "a@example.org", "annotation_id": 1, "updated_at": "2026-01-02T00:00:00Z"},
            {"id": 5, "text": TEXT, "label": [{"start": 11, "end": 15, "text": "冠脉造影", "labels": ["检查"]}],
             "annotator": "b@example.org", "annotation_id": 2, "updated_at": "2026-01-01T00:00:00Z"}]
    [rec] = read_records(write(tmp_path, rows), "label-studio").records
    assert rec.entities == [Entity(3, 5, "症状")]
