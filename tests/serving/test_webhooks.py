"""Annotation webhooks: accepted anonymously, counted only once Label Studio confirms them, and a flood
of forged ones neither stalls real ones nor grows the process."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lasl_backend.serving.backend import LaslBackend
from lasl_backend.serving.parsing import MAX_NEW_TASKS
from lasl_backend.serving.routes import init_app
from lasl_backend.serving.webhooks import WebhookLimits

from tests.fake_label_studio import FakeLabelStudio
from tests.serving.helpers import (
    AUTH, LABEL_CONFIG, annotation_event, authed_client, counting_backend, make_settings, populate, project_obj, wait_idle,
)


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


def wait_for(cond: Any, timeout: float = 15.0) -> bool:
    """Poll ``cond`` until it holds or ``timeout`` passes (a generous bound, not a speed target)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return bool(cond())


def test_an_unknown_project_becomes_known_only_when_label_studio_names_it(tmp_path: Path) -> None:
    with FakeLabelStudio() as fake:
        populate(fake)
        a1 = fake.tasks[1001]["annotations"][0]["id"]
        app = init_app(settings=make_settings(tmp_path, fake, basic_auth_user=AUTH[0], basic_auth_pass=AUTH[1]))
        c, svc = app.test_client(), app.extensions["lasl"]
        c.post("/webhook", json=annotation_event("ANNOTATION_CREATED", a1, 1001, pid=2))  # LS says: project 1
        c.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 424242, 1001, pid=3))  # LS: no such annotation
        wait_idle(app)
        assert svc.backends == {} and svc.verifier.known_projects() == [] and svc.known_projects() == []
        assert svc.verifier.stats(2)["rejected"] == 1 and svc.verifier.stats(3)["rejected"] == 1  # kept in the LRU only
        assert fake.count(f"/api/annotations/{a1}") == 1  # asked once, with the environment's connection
        c.post("/webhook", json=annotation_event("ANNOTATION_CREATED", a1, 1001, pid=1))
        wait_idle(app)
        assert svc.backends == {} and svc.verifier.known_projects() == [1]  # known, and still no LaslBackend
        assert svc.verifier.stats(1)["confirmed"] == 1
        assert list(c.get("/metrics", auth=AUTH).get_json()["projects"]) == ["1"]


def test_unknown_projects_are_tracked_in_a_bounded_lru(tmp_path: Path) -> None:
    limits = WebhookLimits(workers=1, strangers_tracked=8)  # one worker: events are handled in the order sent
    with FakeLabelStudio() as fake:
        app = init_app(settings=make_settings(tmp_path, fake, basic_auth_user=AUTH[0], basic_auth_pass=AUTH[1]), webhook_limits=limits)
        c, v = app.test_client(), app.extensions["lasl"].verifier
        for pid in range(100, 140):
            assert c.post("/webhook", json=annotation_event("ANNOTATION_CREATED", pid, 1, pid=pid)).status_code == 200
        wait_idle(app)
        assert v.summary()["unknown_projects_tracked"] == 8 and v.known_projects() == []
        assert [v.stats(p)["rejected"] for p in (100, 131, 132, 139)] == [0, 0, 1, 1]  # the oldest were forgotten


def test_tasks_created_for_an_unknown_project_keeps_no_state(tmp_path: Path) -> None:
    with FakeLabelStudio() as fake:
        populate(fake)
        app = init_app(settings=make_settings(tmp_path, fake))
        c, svc = app.test_client(), app.extensions["lasl"]
        r = c.post("/webhook", json={"action": "TASKS_CREATED", "tasks": [{"id": 1001}, {"id": 1002}], "project": project_obj(5)})
        assert r.status_code == 200 and r.get_json() == {"status": "ok", "queued_for_scoring": 0}
        assert svc.backends == {} and svc.known_projects() == [] and fake.requests == []


FLOOD_LIMITS = WebhookLimits(stranger_backlog=50, strangers_tracked=64, retry_base_s=0.2, retry_max_s=1.0, max_attempts=2)


def test_a_flood_for_unknown_projects_neither_stalls_a_real_event_nor_leaves_state(tmp_path: Path) -> None:
    """Label Studio unreachable while 2,000 forged events for made-up projects arrive; then it answers
    again and one real event of the real project is confirmed and triggers its run."""
    Counting = counting_backend()
    with FakeLabelStudio() as fake:
        populate(fake)
        a1 = fake.tasks[1001]["annotations"][0]["id"]
        settings = make_settings(tmp_path, fake, train_every=1, basic_auth_user=AUTH[0], basic_auth_pass=AUTH[1])
        app = init_app(Counting, settings=settings, webhook_limits=FLOOD_LIMITS)
        c, svc = app.test_client(), app.extensions["lasl"]
        assert c.post("/setup", json={"project": "1.1", "schema": LABEL_CONFIG}, auth=AUTH).status_code == 200
        fake.down = True
        flood = range(10_000, 12_000)
        shed = 0
        for i, pid in enumerate(flood):
            r = c.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 500_000 + i, 1, pid=pid))
            assert r.status_code == 200
            shed += 1 - r.get_json()["queued_for_confirmation"]
        assert shed > 0 and fake.dropped > 0  # the backlog filled, and the verifier did try Label Studio

        fake.down = False
        assert c.post("/webhook", json=annotation_event("ANNOTATION_CREATED", a1, 1001)).get_json()["queued_for_confirmation"] == 1
        assert wait_for(lambda: svc.verifier.stats(1)["confirmed"] == 1)
        assert svc.trainer.wait_idle(15) and Counting.calls == ["1 annotation changes"]

        m = c.get("/metrics", auth=AUTH).get_json()
        lane = m["webhooks"]["lanes"]["unknown_projects"]
        assert m["webhooks"]["shed"] == shed and lane["shed"] == shed
        assert lane["peak"] == FLOOD_LIMITS.stranger_backlog  # filled to its bound, never past it
        assert m["webhooks"]["unknown_projects_tracked"] <= FLOOD_LIMITS.strangers_tracked
        assert list(m["projects"]) == ["1"] and m["projects"]["1"]["webhooks"]["shed"] == 0
        wait_idle(app)  # the flood's retries end: Label Studio has none of those annotations
        assert set(svc.backends) == {1} and svc.verifier.known_projects() == [1]
        assert all(svc.trainer.status(p)["runs_started"] == 0 for p in flood)


def test_an_event_waiting_for_its_retry_does_not_delay_the_ones_behind_it(tmp_path: Path) -> None:
    """One worker: event A fails on a Label Studio 503 and waits a minute for its retry; event B, sent
    after it, is confirmed before A is tried again."""
    limits = WebhookLimits(workers=1, retry_base_s=60.0)
    with FakeLabelStudio() as fake:
        populate(fake)
        a1 = fake.tasks[1001]["annotations"][0]["id"]
        a2 = fake.tasks[1002]["annotations"][0]["id"]
        app = init_app(counting_backend(), settings=make_settings(tmp_path, fake), webhook_limits=limits)
        c, v = app.test_client(), app.extensions["lasl"].verifier
        c.post("/setup", json={"project": 1, "schema": LABEL_CONFIG})
        fake.fail[f"/api/annotations/{a1}"] = [503] * 20
        c.post("/webhook", json=annotation_event("ANNOTATION_CREATED", a1, 1001))
        assert wait_for(lambda: v.summary()["waiting_for_retry"] == 1)
        tries_of_a = fake.count(f"/api/annotations/{a1}")
        c.post("/webhook", json=annotation_event("ANNOTATION_CREATED", a2, 1002))
        assert wait_for(lambda: v.stats(1)["confirmed"] == 1)
        assert fake.count(f"/api/annotations/{a1}") == tries_of_a and v.is_queued(1, "ANNOTATION_CREATED", a1)


def test_a_full_backlog_refuses_credentialed_events_and_sheds_anonymous_ones(tmp_path: Path) -> None:
    """Label Studio answers slowly: a lane holds its bound (events in work count), then an event with
    valid credentials gets 429 and an anonymous one is answered 200, shed and counted."""
    limits = WebhookLimits(workers=2, backlog=2, stranger_backlog=2)
    with FakeLabelStudio() as fake:
        populate(fake)
        app = init_app(counting_backend(), settings=make_settings(tmp_path, fake, basic_auth_user=AUTH[0], basic_auth_pass=AUTH[1]),
                       webhook_limits=limits)
        c, svc = app.test_client(), app.extensions["lasl"]
        assert c.post("/setup", json={"project": 1, "schema": LABEL_CONFIG}, auth=AUTH).status_code == 200
        fake.latency_s = 2.0
        credentialed = [c.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 10 + i, 1001), auth=AUTH) for i in range(3)]
        assert [r.status_code for r in credentialed] == [200, 200, 429]
        assert credentialed[2].get_json() == {"error": "too many webhook events waiting for confirmation; try later"}
        anonymous = [c.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 20 + i, 1001)) for i in range(3)]
        assert [(r.status_code, r.get_json()["queued_for_confirmation"]) for r in anonymous] == [(200, 1), (200, 1), (200, 0)]
        stranger = [c.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 30 + i, 1, pid=9)) for i in range(3)]
        assert [r.get_json()["queued_for_confirmation"] for r in stranger] == [1, 1, 0]
        m = c.get("/metrics", auth=AUTH).get_json()
        assert m["webhooks"]["shed"] == 2 and m["projects"]["1"]["webhooks"]["shed"] == 1
        assert {k: v["backlog"] for k, v in m["webhooks"]["lanes"].items()} == {"credentialed": 2, "known_projects": 2, "unknown_projects": 2}
        fake.latency_s = 0.0
        wait_idle(app, 60)
        assert svc.verifier.stats(9)["shed"] == 1 and 9 not in svc.backends and svc.verifier.known_projects() == [1]


def test_without_auth_and_without_a_connection_events_of_a_known_project_count_directly(tmp_path: Path) -> None:
    Counting = counting_backend()
    app = init_app(Counting, settings=make_settings(tmp_path, train_every=2))
    c, svc = app.test_client(), app.extensions["lasl"]
    assert c.post("/setup", json={"project": 1, "schema": LABEL_CONFIG}).status_code == 200  # no hostname/token
    for _ in range(2):  # nothing can confirm or dedup them: each one counts
        assert c.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 5, 1001)).status_code == 200
        wait_idle(app)
    assert Counting.calls == ["2 annotation changes"] and svc.verifier.stats(1)["confirmed"] == 2
    c.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 5, 1001, pid=8))  # a project nobody connected
    wait_idle(app)
    assert svc.verifier.stats(8)["unverifiable"] == 1 and svc.verifier.known_projects() == [1] and set(svc.backends) == {1}


def deleted(*ids: int, pid: int = 1) -> dict[str, Any]:
    return {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": i} for i in ids], "project": project_obj(pid)}


def test_forged_deletions_for_a_known_project_take_no_slot_and_no_request(tmp_path: Path) -> None:
    """A deletion can count only for an annotation seen to exist, so one anonymous list of 5,000 made-up
    ids is refused at once: it cannot fill the project's lane, and Label Studio is not asked about it."""
    limits = WebhookLimits(backlog=5)
    with FakeLabelStudio() as fake:
        populate(fake)
        a1 = fake.tasks[1001]["annotations"][0]["id"]
        a2 = fake.tasks[1002]["annotations"][0]["id"]
        app = init_app(counting_backend(), settings=make_settings(tmp_path, fake, basic_auth_user=AUTH[0], basic_auth_pass=AUTH[1]),
                       webhook_limits=limits)
        c, v = app.test_client(), app.extensions["lasl"].verifier
        assert c.post("/setup", json={"project": 1, "schema": LABEL_CONFIG}, auth=AUTH).status_code == 200
        r = c.post("/webhook", json=deleted(*range(900_000, 905_000)))
        assert r.status_code == 200 and r.get_json()["queued_for_confirmation"] == 0
        assert v.stats(1)["rejected"] == 5000 and fake.count("/api/annotations/") == 0
        assert c.post("/webhook", json=annotation_event("ANNOTATION_CREATED", a1, 1001)).get_json()["queued_for_confirmation"] == 1
        wait_idle(app)
        assert v.stats(1)["confirmed"] == 1
        fake.delete_annotation(a1)
        assert c.post("/webhook", json=deleted(a1)).get_json()["queued_for_confirmation"] == 1  # seen to exist
        wait_idle(app)
        assert v.stats(1)["confirmed"] == 2
        fake.latency_s = 0.5  # a creation still waiting for its confirmation counts as seen
        c.post("/webhook", json=annotation_event("ANNOTATION_CREATED", a2, 1002))
        assert c.post("/webhook", json=deleted(a2)).get_json()["queued_for_confirmation"] == 1
        fake.latency_s = 0.0
        wait_idle(app)


def test_credentials_give_an_event_priority_not_a_project(tmp_path: Path) -> None:
    """An event with valid credentials for a project Label Studio does not confirm leaves no backend,
    no counter and no /metrics entry."""
    with FakeLabelStudio() as fake:
        populate(fake)
        app = init_app(settings=make_settings(tmp_path, fake, basic_auth_user=AUTH[0], basic_auth_pass=AUTH[1]))
        c, svc = app.test_client(), app.extensions["lasl"]
        for pid in (555, 556):
            r = c.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 424242, 1001, pid=pid), auth=AUTH)
            assert r.status_code == 200 and r.get_json()["queued_for_confirmation"] == 1
        wait_idle(app)
        assert svc.backends == {} and svc.verifier.known_projects() == [] and svc.known_projects() == []
        assert svc.verifier.stats(555)["rejected"] == 1
        assert c.get("/metrics", auth=AUTH).get_json()["projects"] == {}


def test_one_forged_tasks_created_event_cannot_take_the_new_task_budget(tmp_path: Path) -> None:
    """An event naming 100,000 tasks (twice over) is cut to the first MAX_NEW_TASKS distinct ids, so a
    real event right behind it, while the first is still being scored, finds room."""
    started, release = threading.Event(), threading.Event()

    class Slow(LaslBackend):
        def score_new_tasks(self, task_ids: Any) -> int:
            started.set()
            release.wait(10)
            return 0

    limits = WebhookLimits(task_ids_backlog=MAX_NEW_TASKS + 10)
    with FakeLabelStudio() as fake:
        populate(fake)
        app = init_app(Slow, settings=make_settings(tmp_path, fake), webhook_limits=limits)
        c = app.test_client()
        assert c.post("/setup", json={"project": 1, "schema": LABEL_CONFIG}).status_code == 200
        ids = [{"id": i} for i in range(1, 100_001)] * 2
        r = c.post("/webhook", json={"action": "TASKS_CREATED", "tasks": ids, "project": project_obj()})
        assert r.get_json() == {"status": "ok", "queued_for_scoring": MAX_NEW_TASKS}
        assert started.wait(10)  # the worker holds the first event
        r = c.post("/webhook", json={"action": "TASKS_CREATED", "tasks": [{"id": 1001}], "project": project_obj()})
        assert r.get_json()["queued_for_scoring"] == 1
        release.set()
        wait_idle(app)
        assert app.extensions["lasl"].scorer.summary()["shed"] == 0
