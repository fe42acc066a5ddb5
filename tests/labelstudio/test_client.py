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
)

from tests.fake_label_studio import FakeLabelStudio

CFG = """<View><Labels name="label" toName="text"><Label value="疾病"/><Label value="药物"/><Label value="部位"/></Labels>
<Text name="text" value="$text"/></View>"""
NER = parse_label_config(CFG)
TEXT = "患者😀因𠀀糖尿病\r\n服用　二甲双胍。"


def _client(fake: FakeLabelStudio, **kw) -> LSClient:
    return LSClient(fake.url, fake.token, timeout=5, max_retries=0, **kw)


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
