"""ls_client against a fake Label Studio on loopback (the real SDK does the HTTP)."""

from __future__ import annotations

import logging
import socket

import pytest

from lasl_backend.data import Entity
from lasl_backend.labelstudio.labelconfig import parse_label_config
from lasl_backend.labelstudio.client import (
    LabelStudioAuthError,
    LabelStudioRequestError,
    LabelStudioServerError,
    LabelStudioUnreachable,
    LSClient,
    PredictionImportError,
    choose_annotation,
    regions_to_entities,
    split_tasks,
)

from tests.fake_label_studio import FakeLabelStudio

CFG = """<View><Labels name="label" toName="text"><Label value="疾病"/><Label value="药物"/><Label value="部位"/></Labels>
<Text name="text" value="$text"/></View>"""
NER = parse_label_config(CFG)
TEXT = "患者😀因𠀀糖尿病\r\n服用　二甲双胍。"


def _client(fake: FakeLabelStudio, **kw) -> LSClient:
    return LSClient(fake.url, fake.token, timeout=5, max_retries=0, **kw)


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
    ents, warns = regions_to_entities(TEXT, result, NER)
    assert ents == [Entity(s, s + 3, "疾病"), Entity(m, m + 4, "药物")]
    assert len(warns) == 7
    assert all(TEXT[e.start : e.end] for e in ents)


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


def test_fetch_tasks_pages_through_everything() -> None:
    with FakeLabelStudio() as fake:
        fake.add_project(1, CFG)
        for i in range(1, 8):
            fake.add_task(1, i, f"第{i}条：{TEXT}")
        fake.add_task(2, 100, "别的项目")
        s = TEXT.index("糖尿病")
        fake.annotate(3, [(s + 4, s + 7, "疾病")])
        tasks = _client(fake).fetch_tasks(1, page_size=3)
        assert [t["id"] for t in tasks] == list(range(1, 8))
        ds = _client(fake).fetch_dataset(1, NER)
        assert [t.task_id for t in ds.labeled] == [3]
        assert ds.labeled[0].entities == [Entity(s + 4, s + 7, "疾病")]
        assert len(ds.unlabeled) == 6


def test_push_checks_created_equals_sent_and_uses_few_requests() -> None:
    with FakeLabelStudio() as fake:
        fake.add_project(1, CFG)
        for i in range(1, 6):
            fake.add_task(1, i, "文本")
        preds = [{"task": i, "model_version": "lasl-v0001-20261126T051200", "score": 0.5, "result": []} for i in range(1, 6)]
        c = _client(fake)
        assert c.push_predictions(1, preds, chunk=3) == 5
        assert fake.count("/api/projects/1/import/predictions") == 2
        bad = preds + [{"task": 999, "model_version": "x", "score": 0.1, "result": []}]
        with pytest.raises(PredictionImportError, match="created 5 of 6"):
            c.push_predictions(1, bad)


def test_set_model_version_after_predictions_and_sampling() -> None:
    with FakeLabelStudio() as fake:
        fake.add_project(1, CFG)
        fake.add_task(1, 1, "文本")
        c = _client(fake)
        with pytest.raises(LabelStudioRequestError, match="400"):
            c.set_model_version(1, "lasl-v0001-20261126T051200")  # no prediction of it yet: LS refuses
        c.push_predictions(1, [{"task": 1, "model_version": "lasl-v0001-20261126T051200", "score": 1.0, "result": []}])
        c.set_model_version(1, "lasl-v0001-20261126T051200", uncertainty_sampling=True)
        assert fake.projects[1]["model_version"] == "lasl-v0001-20261126T051200"
        assert fake.projects[1]["sampling"] == "Uncertainty sampling"


def test_get_annotation_and_404() -> None:
    with FakeLabelStudio() as fake:
        fake.add_project(1, CFG)
        fake.add_task(1, 1, "文本")
        aid = fake.annotate(1, [])
        c = _client(fake)
        assert c.get_annotation(aid)["project"] == 1
        assert c.get_annotation(aid + 100) is None


def test_errors_are_typed_and_never_contain_the_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeLabelStudio() as fake:
        fake.add_project(1, CFG)
        wrong = LSClient(fake.url, "wrong-token-that-is-secret-42", timeout=5, max_retries=0)
        with pytest.raises(LabelStudioAuthError) as ei:
            wrong.fetch_tasks(1)
        assert "wrong-token-that-is-secret-42" not in str(ei.value) and "401" in str(ei.value)
        fake.fail["/api/tasks"] = [500]
        with pytest.raises(LabelStudioServerError) as ei2:
            _client(fake).fetch_tasks(1)
        assert ei2.value.transient and fake.token not in str(ei2.value)
        with pytest.raises(LabelStudioRequestError):
            _client(fake).get_project(77)
    assert "wrong-token-that-is-secret-42" not in caplog.text and fake.token not in caplog.text


def test_unreachable_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = LSClient(f"http://127.0.0.1:{port}", "tok-secret-123456", timeout=2, max_retries=0)
    with pytest.raises(LabelStudioUnreachable) as ei:
        c.fetch_tasks(1)
    assert ei.value.transient and "tok-secret-123456" not in str(ei.value)
    assert "tok-secret" not in repr(c)


def test_missing_credentials_are_refused() -> None:
    with pytest.raises(LabelStudioRequestError):
        LSClient("", "x")


def test_annotation_without_result_field_is_unusable_not_empty() -> None:
    from lasl_backend.labelstudio.client import TASK_INCLUDE, choose_annotation

    # what LS 1.23.2 returns for nested annotations when `include` omits their fields
    assert choose_annotation([{"id": 1, "project": 1}]) is None
    assert choose_annotation([{"id": 1, "result": []}]) == {"id": 1, "result": []}  # a real empty annotation
    assert {"result", "was_cancelled", "ground_truth", "updated_at"} <= set(TASK_INCLUDE.split(","))
