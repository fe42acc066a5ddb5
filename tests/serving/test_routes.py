"""The routes' protocol: health, /setup, cold-start /predict, bad input (a clear 4xx, never a 5xx, no
state left behind), basic auth."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from lasl_backend import crf
from lasl_backend.serving.backend import COLD_START_VERSION, UNREADABLE_SCORE, LaslBackend
from lasl_backend.serving.routes import init_app

from tests.serving.helpers import (
    AUTH, GOOD_TASK, HAND, KEY, LABEL_CONFIG, authed_client, check_results, cold_client, make_settings, predict_body, project_obj, start_training, task,
)


@pytest.fixture()
def cold(tmp_path: Path) -> Any:
    return cold_client(tmp_path)


def test_health_is_cheap_json(cold: Any) -> None:
    for path in ("/", "/health"):
        r = cold.get(path)
        assert r.status_code == 200 and r.get_json()["status"] == "UP"
    assert cold.get("/health").get_json()["crf_kernel"] == crf.kernel_name()


def test_setup_is_fast_model_free_and_idempotent(cold: Any) -> None:
    body = {"project": "1.1795659941", "schema": LABEL_CONFIG, "hostname": "http://127.0.0.1:18080",
            "access_token": "legacy-token-xyz", "extra_params": None}
    for _ in range(3):
        t0 = time.perf_counter()
        r = cold.post("/setup", json=body)
        assert time.perf_counter() - t0 < 1.0
        assert r.status_code == 200 and r.get_json() == {"model_version": COLD_START_VERSION}
    b = cold.application.extensions["lasl"].backends[1]
    assert b.slot.peek() is None and not b.slot.loaded and b.has_connection


def test_cold_start_predicts_validly_longest_first(cold: Any) -> None:
    tasks = [task(1, "短句。"), task(2, HAND[0]), task(3, HAND[2] * 3)]
    body = cold.post("/predict", json=predict_body(tasks)).get_json()
    check_results(body, tasks)
    assert all(r["result"] == [] and r["model_version"] == COLD_START_VERSION for r in body["results"])
    scores = [r["score"] for r in body["results"]]
    assert scores == [1 / (1 + len(t["data"][KEY])) for t in tasks]
    assert scores[2] < scores[1] < scores[0]  # Label Studio serves the lowest score first


def test_unknown_and_ignored_events_get_200(cold: Any) -> None:
    r = cold.post("/webhook", json={"action": "SOMETHING_NEW", "project": project_obj()})
    assert r.status_code == 200 and r.get_json()["status"] == "Unknown event"
    for action in ("TASKS_CREATED", "PROJECT_UPDATED"):
        assert cold.post("/webhook", json={"action": action, "project": project_obj(), "tasks": []}).status_code == 200


NESTED = ("[" * 100_000 + "]" * 100_000).encode()


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
                  '<View><Labels name="ner" toName="emr"><Label value="&lol2;"/></Labels><Text name="emr" value="$note"/></View>')


TWO_PAIRS = LABEL_CONFIG.replace("</View>", '<Labels name="b" toName="t2"><Label value="x"/></Labels><Text name="t2" value="$o"/></View>')


NO_PAIR = '<View><Text name="emr" value="$note"/></View>'


BAD_CASES: list[tuple[str, str, Any, int]] = [
    # (kind, path, body (bytes = raw), expected status)
    ("not json", "/predict", b"{tasks: [}", 400),
    ("empty body", "/predict", b"", 400),
    ("json array", "/predict", [GOOD_TASK], 400),
    ("json string", "/predict", "tasks", 400),
    ("json null", "/predict", None, 400),
    ("json number", "/predict", 3, 400),
    ("invalid utf-8", "/predict", b'{"tasks": ["\xff\xfe"]}', 400),
    ("nesting bomb", "/predict", NESTED, 400),
    ("missing tasks", "/predict", {"project": "1.2", "label_config": LABEL_CONFIG}, 400),
    ("tasks not a list", "/predict", {"tasks": {"id": 1}, "project": 1, "label_config": LABEL_CONFIG}, 400),
    ("tasks empty", "/predict", predict_body([]), 400),
    ("tasks of non-objects", "/predict", predict_body([1, "x", None, [2]]), 422),
    ("task without data", "/predict", predict_body([{"id": 1}]), 422),
    ("data not an object", "/predict", predict_body([{"id": 1, "data": "文本"}]), 422),
    ("text field missing", "/predict", predict_body([{"id": 1, "data": {"text": "键名不对"}}]), 422),
    ("text is a number", "/predict", predict_body([task(1, 12345)]), 422),
    ("text is null", "/predict", predict_body([task(1, None)]), 422),
    ("text is a list", "/predict", predict_body([task(1, ["患者"])]), 422),
    ("1 MB text", "/predict", predict_body([task(1, "患" * 1_000_000)]), 422),
    ("label_config missing", "/predict", {"tasks": [GOOD_TASK], "project": 1}, 422),
    ("label_config malformed", "/predict", predict_body([GOOD_TASK], cfg="<View><Labels"), 422),
    ("label_config entity bomb", "/predict", predict_body([GOOD_TASK], cfg=BILLION_LAUGHS), 422),
    ("label_config not a string", "/predict", predict_body([GOOD_TASK], cfg={"xml": 1}), 422),
    ("label_config without pair", "/predict", predict_body([GOOD_TASK], cfg=NO_PAIR), 422),
    ("label_config with two pairs", "/predict", predict_body([GOOD_TASK], cfg=TWO_PAIRS), 422),
    ("project not an id", "/predict", dict(predict_body([GOOD_TASK]), project="abc"), 400),
    ("project traversal", "/predict", dict(predict_body([GOOD_TASK]), project="../1"), 400),
    ("project absolute path", "/predict", dict(predict_body([GOOD_TASK]), project="/etc/passwd"), 400),
    ("project with NUL", "/predict", dict(predict_body([GOOD_TASK]), project="1\u0000"), 400),
    ("project negative", "/predict", dict(predict_body([GOOD_TASK]), project=-3), 400),
    ("project boolean", "/predict", dict(predict_body([GOOD_TASK]), project=True), 400),
    ("project float", "/predict", dict(predict_body([GOOD_TASK]), project=1.5), 400),
    ("project missing", "/predict", {"tasks": [{"id": 1, "data": {KEY: "x"}}], "label_config": LABEL_CONFIG}, 400),
    ("setup not an object", "/setup", [1], 400),
    ("setup bad project", "/setup", {"project": "1.2.3", "schema": LABEL_CONFIG}, 400),
    ("setup without project", "/setup", {"schema": LABEL_CONFIG}, 400),
    ("setup malformed schema", "/setup", {"project": "1.2", "schema": "<View"}, 422),
    ("webhook not json", "/webhook", b"action=START_TRAINING", 400),
    ("webhook without action", "/webhook", {"project": project_obj()}, 400),
    ("webhook action not a string", "/webhook", {"action": 7, "project": project_obj()}, 400),
    ("training without project", "/webhook", {"action": "START_TRAINING"}, 400),
    ("training project without id", "/webhook", {"action": "START_TRAINING", "project": {"title": "x"}}, 400),
    ("training project id traversal", "/webhook", {"action": "START_TRAINING", "project": {"id": "1/../2"}}, 400),
    ("annotation event without project", "/webhook", {"action": "ANNOTATION_CREATED", "annotation": {"id": 1}}, 400),
    ("annotation event without annotation", "/webhook", {"action": "ANNOTATION_UPDATED", "project": project_obj()}, 400),
    ("annotation id not an int", "/webhook", {"action": "ANNOTATION_CREATED", "annotation": {"id": "1; DROP"}, "project": project_obj()}, 400),
    ("deleted annotations not a list", "/webhook", {"action": "ANNOTATIONS_DELETED", "annotations": {"id": 3}, "project": project_obj()}, 400),
    ("deleted annotation ids bad", "/webhook", {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": -1}], "project": project_obj()}, 400),
]


@pytest.mark.parametrize("kind, path, body, status", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_gets_a_clear_4xx(cold: Any, kind: str, path: str, body: Any, status: int) -> None:
    if isinstance(body, bytes):
        r = cold.post(path, data=body, content_type="application/json")
    else:
        r = cold.post(path, data=json.dumps(body, ensure_ascii=False), content_type="application/json")
    assert r.status_code == status, (kind, r.status_code, r.get_data(as_text=True)[:300])
    err = r.get_json()
    assert isinstance(err, dict) and isinstance(err.get("error"), str) and err["error"]


def post_raw(client: Any, path: str, body: Any) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False)
    return client.post(path, data=data, content_type="application/json")


# the request itself, its project id or its label config is bad: nothing of the project may be kept
STATELESS = [c for c in BAD_CASES if c[3] == 400 or c[0].startswith("label_config") or c[0] == "setup malformed schema"]


def test_rejected_requests_leave_no_project_behind(cold: Any) -> None:
    svc = cold.application.extensions["lasl"]
    for kind, path, body, status in STATELESS:
        assert post_raw(cold, path, body).status_code == status, kind
    assert svc.backends == {} and svc.known_projects() == [] and svc.store.projects() == []
    assert cold.get("/metrics").get_json()["projects"] == {}
    assert cold.get("/versions").get_json() == {"versions": [], "projects": {}}
    assert cold.post("/setup", json={"project": 7, "schema": LABEL_CONFIG}).status_code == 200  # a valid one is kept
    assert list(svc.backends) == [7] and svc.known_projects() == [7]


def test_a_flood_of_bad_requests_for_made_up_projects_keeps_no_state(cold: Any) -> None:
    svc = cold.application.extensions["lasl"]
    for pid in range(1, 301):
        assert cold.post("/predict", json=predict_body([GOOD_TASK], pid=pid, cfg="<View")).status_code == 422
        assert cold.post("/predict", json={"tasks": [GOOD_TASK], "project": pid}).status_code == 422  # no config known
        assert cold.post("/setup", json={"project": f"{pid}.17", "schema": "<View><Labels"}).status_code == 422
        assert cold.post("/setup", json={"project": f"{pid}/../x"}).status_code == 400
        assert cold.get(f"/versions?project={pid}").get_json() == {"versions": []}
    assert svc.backends == {} and svc.known_projects() == [] and svc.store.projects() == []


def test_oversized_request_gets_413(tmp_path: Path) -> None:
    c = init_app(LaslBackend, settings=make_settings(tmp_path, max_request_mb=1 / 16)).test_client()
    r = c.post("/predict", json=predict_body([task(1, "患" * 100_000)]))
    assert r.status_code == 413 and "larger" in r.get_json()["error"]


def test_unreadable_tasks_get_placeholders_in_place(cold: Any) -> None:
    tasks = [task(1, HAND[0]), {"id": 2}, task(3, 42), "junk", task(5, "")]
    r = cold.post("/predict", json=predict_body(tasks))
    assert r.status_code == 200
    body = r.get_json()
    res = body["results"]
    assert len(res) == 5
    assert [e["index"] for e in body["errors"]] == [1, 2, 3]
    assert [x["score"] for x in res][1:4] == [UNREADABLE_SCORE] * 3
    assert res[4]["result"] == [] and res[4]["score"] == 1.0  # empty text: readable, nothing to find


@pytest.mark.parametrize("path, method", [("/nope", "get"), ("/predict", "get"), ("/setup", "put")])
def test_unknown_routes_and_methods_are_json(cold: Any, path: str, method: str) -> None:
    r = getattr(cold, method)(path)
    assert r.status_code in (404, 405) and "error" in r.get_json()


def test_versions_with_bad_project(cold: Any) -> None:
    assert cold.get("/versions?project=..%2F1").status_code == 400
    assert cold.get("/versions").get_json()["versions"] == []


@pytest.fixture()
def authed(tmp_path: Path) -> Any:
    return authed_client(tmp_path)


def test_basic_auth_on_every_route_but_health(authed: Any) -> None:
    assert authed.get("/health").status_code == 200
    for method, path, body in [("get", "/", None), ("post", "/setup", {"project": 1}), ("post", "/predict", predict_body([GOOD_TASK])),
                               ("get", "/versions", None), ("get", "/metrics", None)]:
        r = getattr(authed, method)(path, json=body)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic"), path
        r = getattr(authed, method)(path, json=body, auth=(AUTH[0], "wrong"))
        assert r.status_code == 401, path
        r = getattr(authed, method)(path, json=body, auth=AUTH)
        assert r.status_code == 200, (path, r.get_data(as_text=True))


def test_anonymous_start_training_is_refused(authed: Any) -> None:
    r = authed.post("/webhook", json=start_training())
    assert r.status_code == 401
    assert authed.post("/webhook", json=start_training(), auth=("x", "y")).status_code == 401
    st_ = authed.application.extensions["lasl"]
    assert st_.trainer.status(1)["runs_started"] == 0
    r = authed.post("/webhook", json=start_training(), auth=AUTH)
    assert r.status_code == 201 and r.get_json()["status"] == "ok" and "job" not in r.get_json()["result"]
