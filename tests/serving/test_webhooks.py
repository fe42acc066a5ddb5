"""Annotation webhooks: accepted anonymously, counted only once Label Studio confirms them, and a flood
of forged ones neither stalls real ones nor grows the process."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from lasl_backend.serving.routes import init_app

from tests.fake_label_studio import FakeLabelStudio
from tests.serving.helpers import AUTH, annotation_event, authed_client, counting_backend, make_settings, populate, project_obj, wait_idle


@pytest.fixture()
def authed(tmp_path: Path) -> Any:
    return authed_client(tmp_path)


def test_anonymous_annotation_webhooks_are_accepted_but_unverifiable_ones_not_counted(authed: Any) -> None:
    t0 = time.perf_counter()
    r = authed.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 1, 1))
    assert time.perf_counter() - t0 < 1.0
    assert r.status_code == 200
    app = authed.application
    wait_idle(app)
    stats = app.extensions["lasl"].verifier.stats(1)
    assert stats["unverifiable"] == 1 and stats["since_last_trigger"] == 0
    assert authed.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 1, 1), auth=("a", "b")).status_code == 401


def test_annotation_events_count_only_when_label_studio_confirms(tmp_path: Path) -> None:
    Counting = counting_backend()
    with FakeLabelStudio() as fake:
        populate(fake)
        a1 = fake.tasks[1001]["annotations"][0]["id"]
        a2 = fake.tasks[1002]["annotations"][0]["id"]
        app = init_app(Counting, settings=make_settings(tmp_path, fake, train_every=2, basic_auth_user=AUTH[0], basic_auth_pass=AUTH[1]))
        c = app.test_client()
        v = app.extensions["lasl"].verifier

        def send(body: dict[str, Any]) -> None:
            t0 = time.perf_counter()
            r = c.post("/webhook", json=body)  # anonymous, like Label Studio's webhook
            assert r.status_code == 200 and time.perf_counter() - t0 < 1.0
            wait_idle(app)

        send(annotation_event("ANNOTATION_CREATED", a1, 1001))
        assert v.stats(1)["since_last_trigger"] == 1
        send(annotation_event("ANNOTATION_CREATED", a1, 1001))  # replay: same change, counted once
        send(annotation_event("ANNOTATION_CREATED", 987654, 1001))  # forged id: LS has no such annotation
        send(annotation_event("ANNOTATION_CREATED", a2, 1002, pid=2))  # forged project: LS says project 1
        assert v.stats(1)["since_last_trigger"] == 1 and Counting.calls == []
        assert v.stats(1)["rejected"] == 1 and v.stats(2)["rejected"] == 1
        send(annotation_event("ANNOTATION_CREATED", a2, 1002))
        assert Counting.calls == ["2 annotation changes"]
        fake.find_annotation(a1)["updated_at"] = "2026-11-27T00:00:00Z"  # a real edit in LS
        send(annotation_event("ANNOTATION_UPDATED", a1, 1001))
        send({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 5555}], "project": project_obj()})  # never existed
        assert v.stats(1)["since_last_trigger"] == 1
        send({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": a2}], "project": project_obj()})  # not deleted in LS
        assert v.stats(1)["since_last_trigger"] == 1
        fake.delete_annotation(a2)
        send({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": a2}], "project": project_obj()})
        assert Counting.calls == ["2 annotation changes"] * 2
