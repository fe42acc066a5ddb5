"""Tasks in: which annotation a task trains on, regions checked one by one, D_L and D_U (no network)."""

from __future__ import annotations

from lasl_backend.data import Entity
from lasl_backend.labelstudio.client import TASK_INCLUDE
from lasl_backend.labelstudio.labelconfig import parse_label_config
from lasl_backend.labelstudio.tasks import choose_annotation, regions_to_entities, split_tasks

CFG = """<View><Labels name="label" toName="text"><Label value="疾病"/><Label value="药物"/><Label value="部位"/></Labels>
<Text name="text" value="$text"/></View>"""
NER = parse_label_config(CFG)
TEXT = "患者😀因𠀀糖尿病\r\n服用　二甲双胍。"


def test_choose_annotation_skips_cancelled_prefers_ground_truth_then_latest() -> None:
    anns = [
        {"id": 1, "result": [], "was_cancelled": False, "ground_truth": False, "updated_at": "2026-01-03T00:00:00Z"},
        {"id": 2, "result": [], "was_cancelled": True, "ground_truth": True, "updated_at": "2026-01-09T00:00:00Z"},
        {"id": 3, "result": [], "was_cancelled": False, "ground_truth": False, "updated_at": "2026-01-05T00:00:00Z"},
    ]
    assert choose_annotation(anns)["id"] == 3
    anns.append({"id": 4, "result": [], "was_cancelled": False, "ground_truth": True, "updated_at": "2026-01-01T00:00:00Z"})
    assert choose_annotation(anns)["id"] == 4
    assert choose_annotation([anns[1]]) is None
    assert choose_annotation([]) is None


def test_regions_are_validated_one_by_one() -> None:
    s = TEXT.index("糖尿病")
    m = TEXT.index("二甲双胍")
    good = {"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": s, "end": s + 3, "text": "糖尿病", "labels": ["疾病"]}}
    result = [
        good,
        {"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": m, "end": m + 4, "text": "二甲双胍", "labels": ["药物"]}},
        {"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": 5, "end": 2, "labels": ["疾病"]}},  # reversed
        {"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": 0, "end": 999, "labels": ["疾病"]}},  # out of range
        {"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": 0, "end": 2, "labels": ["未知"]}},  # unknown label
        {"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": 0, "end": 2, "text": "别的", "labels": ["部位"]}},  # text mismatch
        {"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": s + 1, "end": s + 4, "labels": ["部位"]}},  # overlaps
        {"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": "0", "end": 2, "labels": ["部位"]}},  # not ints
        {"from_name": "other", "to_name": "text", "type": "choices", "value": {"choices": ["x"]}},  # another control: ignored
        "garbage",
    ]
    ents, warns, misfits = regions_to_entities(TEXT, result, NER)
    assert ents == [Entity(s, s + 3, "疾病"), Entity(m, m + 4, "药物")]
    assert [w.split(":")[0] for w in warns] == ["region 4", f"region [{s + 1}, {s + 4}) '部位' overlaps an earlier region; skipped"]
    assert [m.split(":")[0] for m in misfits] == ["region 2", "region 3", "region 5", "region 7", "region 9"]
    assert all(TEXT[e.start : e.end] for e in ents)


def test_an_annotation_with_a_region_that_does_not_fit_is_left_out_of_training() -> None:
    """Its other regions alone would teach the misplaced entity's characters as no entity."""
    s = TEXT.index("糖尿病")
    good = {"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": s, "end": s + 3, "labels": ["疾病"]}}
    moved = {"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": 0, "end": 2, "text": "糖尿", "labels": ["疾病"]}}
    unknown = {"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": 0, "end": 2, "labels": ["未知"]}}
    ds = split_tasks([{"id": 1, "data": {"text": TEXT}, "annotations": [{"id": 11, "result": [good, moved]}]},
                      {"id": 2, "data": {"text": TEXT}, "annotations": [{"id": 12, "result": [good, unknown]}]}], NER)
    assert [t.task_id for t in ds.labeled] == [2] and ds.unlabeled == []  # a label the config dropped is no misfit
    assert [tid for tid, _ in ds.skipped] == [1]
    assert "annotation 11: 1 region(s) do not fit the task text" in ds.skipped[0][1] and "differs" in ds.skipped[0][1]


def test_split_tasks_makes_dl_and_du() -> None:
    tasks = [
        {"id": 1, "data": {"text": TEXT}, "annotations": [{"id": 9, "result": [], "was_cancelled": False}]},
        {"id": 2, "data": {"text": "无异常"}, "annotations": [{"id": 10, "result": [], "was_cancelled": True}]},
        {"id": 3, "data": {"text": "肝区不适"}, "annotations": []},
        {"id": 4, "data": {"other": "x"}, "annotations": []},
        {"id": 5, "data": {"text": 42}},
        {"id": "6", "data": {"text": "x"}},
    ]
    ds = split_tasks(tasks, NER)
    assert [t.task_id for t in ds.labeled] == [1]  # an empty, not cancelled annotation = "no entities here"
    assert [t.task_id for t in ds.unlabeled] == [2, 3]  # only cancelled: still in the pool
    assert [tid for tid, _ in ds.skipped] == [4, 5, None]
    assert ds.annotation_ids == {9, 10}


def test_annotation_without_result_field_is_unusable_not_empty() -> None:
    # what LS 1.23.2 returns for nested annotations when `include` omits their fields
    assert choose_annotation([{"id": 1, "project": 1}]) is None
    assert choose_annotation([{"id": 1, "result": []}]) == {"id": 1, "result": []}  # a real empty annotation
    assert {"result", "was_cancelled", "ground_truth", "updated_at"} <= set(TASK_INCLUDE.split(","))


def test_a_region_with_several_labels_keeps_the_first_and_says_so() -> None:
    s = TEXT.index("糖尿病")
    region = {"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": s, "end": s + 3, "labels": ["疾病", "药物"]}}
    ents, warns, misfits = regions_to_entities(TEXT, [region], NER)
    assert ents == [Entity(s, s + 3, "疾病")] and warns == ["region 0: several labels ['疾病', '药物']; using '疾病'"]
    assert misfits == []
    region["value"]["text"] = "别的"
    ents, warns, misfits = regions_to_entities(TEXT, [region], NER)
    assert ents == [] and len(warns) == 1 and "differs from the task text" in misfits[0]


def test_warnings_name_the_task_and_annotation() -> None:
    region = {"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": 0, "end": 2, "labels": ["未知"]}}
    ds = split_tasks([{"id": 7, "data": {"text": TEXT}, "annotations": [{"id": 70, "result": [region]}]}], NER)
    assert [t.entities for t in ds.labeled] == [[]]
    assert ds.warnings == ["task 7, annotation 70: region 0: label(s) ['未知'] not in the label config"]
