"""The Flask app with the Label Studio 1.23 payload shapes (own texts), a fake LS and a tiny real model."""

from __future__ import annotations

import json
import logging
import math
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from lasl_backend import crf
from lasl_backend.serving.backend import COLD_START_VERSION, CONTINUE_REASON, UNREADABLE_SCORE, LaslBackend, ServedModel, dbs_score
from lasl_backend.config import Settings
from lasl_backend.ner import NerModel, RecordScore, SpanPrediction
from lasl_backend.serving.routes import RETRY_REASON, init_app
from lasl_backend.serving.store import VERSION_RE, ModelStore
from lasl_backend.devtools.synthetic import LABELS, make_records

from tests.fake_label_studio import FakeLabelStudio

# Control and object names and the data key differ from Label Studio's defaults on purpose:
# nothing in the backend may assume "label", "text" or "$text".
LABEL_CONFIG = (
    '<View>\n  <Labels name="ner" toName="emr">\n'
    + "".join(f'    <Label value="{lab}"/>\n' for lab in LABELS)
    + '  </Labels>\n  <Text name="emr" value="$note"/>\n</View>'
)
KEY = "note"

# Our own texts: astral characters (emoji, CJK Ext-B) before entities, CRLF, full-width spaces.
HAND = [
    "患者😀因𠀀2型糖尿病入院，\r\n予二甲双胍　口服，复查血糖。",
    "𠀀𠀁胸部CT示右肺结节，拟行肺叶切除术。😀😀",
    "主诉：头痛3天。\r\n查体：神志清，　双肺呼吸音清，头颅MRI未见异常。",
]
HAND_GOLD = [
    [("2型糖尿病", "疾病和诊断"), ("二甲双胍", "药物"), ("血糖", "实验室检验")],
    [("胸部CT", "影像检查"), ("右肺", "解剖部位"), ("肺叶切除术", "手术")],
    [("头颅MRI", "影像检查")],
]
TINY = dict(max_epochs=1, min_steps=1, max_steps=2, batch_size=8, dev_fraction=0.0)
AUTH = ("annotator-bot", "pa55-SECRET-basic-auth-pass")


def gold_spans(text: str, gold: list[tuple[str, str]]) -> list[tuple[int, int, str]]:
    out = []
    for surface, label in gold:
        s = text.index(surface)
        out.append((s, s + len(surface), label))
    return out


def make_settings(model_dir: Path, fake: FakeLabelStudio | None = None, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(
        model_dir=model_dir,
        label_studio_url=fake.url if fake else None,
        label_studio_api_key=fake.token if fake else None,
        retry_backoff_s=0.0,
        train_retries=1,
        holdout_fraction=0.3,
        holdout_min_labeled=6,
        train_overrides=TINY,
        log_level="DEBUG",
        retry_later_s=0.0,  # no self-scheduled retries outliving a test (one test turns them on)
    )
    base.update(kw)
    return Settings(**base)


def populate(fake: FakeLabelStudio, pid: int = 1, n_syn: int = 13, annotate_syn: int = 5) -> dict[int, str]:
    """3 hand-written + ``n_syn`` synthetic tasks; the hand ones and ``annotate_syn`` synthetic annotated."""
    fake.add_project(pid, LABEL_CONFIG)
    texts: dict[int, str] = {}
    tid = pid * 1000
    for text, gold in zip(HAND, HAND_GOLD):
        tid += 1
        fake.add_task(pid, tid, text, key=KEY)
        fake.annotate(tid, gold_spans(text, gold), from_name="ner", to_name="emr")
        texts[tid] = text
    for i, r in enumerate(make_records(n_syn, seed=7, mean_chars=45)):
        tid += 1
        fake.add_task(pid, tid, r.text, key=KEY)
        if i < annotate_syn:
            fake.annotate(tid, [(e.start, e.end, e.label) for e in r.entities], from_name="ner", to_name="emr")
        texts[tid] = r.text
    return texts


def task(tid: int, text: Any, pid: int = 1) -> dict[str, Any]:
    """A task in the shape Label Studio sends (TaskSimpleSerializer, trimmed)."""
    return {"id": tid, "data": {KEY: text}, "meta": {}, "is_labeled": False, "overlap": 1, "inner_id": tid,
            "total_annotations": 0, "cancelled_annotations": 0, "total_predictions": 0, "project": pid,
            "annotations": [], "predictions": []}


def predict_body(tasks: list[Any], pid: int = 1, cfg: Any = LABEL_CONFIG) -> dict[str, Any]:
    return {"tasks": tasks, "project": f"{pid}.1795659941", "label_config": cfg,
            "params": {"login": None, "password": None, "context": None}}


def project_obj(pid: int = 1) -> dict[str, Any]:
    return {"id": pid, "title": "EMR", "label_config": LABEL_CONFIG, "model_version": "lasl", "token": "<invite>",
            "sampling": "Sequential sampling", "min_annotations_to_start_training": 0}


def start_training(pid: int = 1) -> dict[str, Any]:
    return {"action": "START_TRAINING", "project": project_obj(pid)}


def annotation_event(action: str, aid: int, tid: int, pid: int = 1) -> dict[str, Any]:
    return {"action": action,
            "annotation": {"id": aid, "result": [], "was_cancelled": False, "ground_truth": False, "task": tid, "project": pid,
                           "completed_by": 1, "updated_at": "2026-11-26T05:00:00Z"},
            "task": {"id": tid, "data": {KEY: "伪造的文本"}, "project": pid},
            "project": project_obj(pid)}


def check_results(body: dict[str, Any], tasks: list[dict[str, Any]]) -> None:
    """The invariants Label Studio needs (PROTOCOL.md §10.3)."""
    results = body["results"]
    assert isinstance(results, list) and len(results) == len(tasks)
    for t, r in zip(tasks, results):
        assert set(r) >= {"result", "score", "model_version"}
        assert isinstance(r["score"], float) and 0.0 <= r["score"] <= 1.0  # LS 1.23.2 drops scores outside [0, 1]
        assert isinstance(r["model_version"], str) and r["model_version"]
        text = t["data"][KEY] if isinstance(t, dict) and isinstance(t.get("data"), dict) else None
        for region in r["result"]:
            v = region["value"]
            assert region["from_name"] == "ner" and region["to_name"] == "emr" and region["type"] == "labels"
            assert isinstance(text, str) and 0 <= v["start"] < v["end"] <= len(text)
            assert v["text"] == text[v["start"] : v["end"]]
            assert len(v["labels"]) == 1 and v["labels"][0] in LABELS
            assert 0.0 <= region["score"] <= 1.0


def wait_idle(app: Any, timeout: float = 300.0) -> None:
    st_ = app.extensions["lasl"]
    assert st_.verifier.wait_idle(timeout)
    assert st_.trainer.wait_idle(timeout)


# ---- a tiny real model, trained twice through the real fit path ------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    d = tmp_path_factory.mktemp("trained")
    with FakeLabelStudio() as fake:
        texts = populate(fake)
        app = init_app(LaslBackend, settings=make_settings(d, fake))
        c = app.test_client()
        assert c.post("/setup", json={"project": "1.1795659941", "schema": LABEL_CONFIG, "hostname": fake.url,
                                      "access_token": fake.token, "extra_params": None}).get_json()["model_version"] == COLD_START_VERSION
        r = c.post("/webhook", json=start_training())
        assert r.status_code == 201, r.get_data(as_text=True)
        wait_idle(app)
        v1 = c.post("/setup", json={"project": "1.1795659941", "schema": LABEL_CONFIG}).get_json()["model_version"]
        preds_v1 = dict(fake.latest_predictions(1))
        c.post("/webhook", json=start_training())
        wait_idle(app)
        v2 = c.post("/setup", json={"project": "1.1795659941", "schema": LABEL_CONFIG}).get_json()["model_version"]
        yield SimpleNamespace(dir=d, fake=fake, app=app, client=c, v1=v1, v2=v2, texts=texts, preds_v1=preds_v1)


def test_fit_gives_new_versions_pushes_pool_and_patches_project(trained: SimpleNamespace) -> None:
    fake, v1, v2 = trained.fake, trained.v1, trained.v2
    assert VERSION_RE.match(v1) and VERSION_RE.match(v2) and v1 != v2
    m = trained.client.get("/metrics").get_json()["projects"]["1"]
    assert m["training"]["last_error"] is None, m["training"]
    unlabeled = [tid for tid, t in fake.tasks.items() if t["project"] == 1 and not t["annotations"]]
    latest = fake.latest_predictions(1)
    assert sorted(latest) == sorted(unlabeled) and len(unlabeled) == 8
    assert all(p["model_version"] == v2 for p in latest.values())
    assert all(trained.preds_v1[t]["model_version"] == v1 for t in unlabeled)
    assert fake.projects[1]["model_version"] == v2 and fake.projects[1]["sampling"] == "Uncertainty sampling"
    assert fake.count("/api/projects/1/import/predictions") == 2  # one large request per run
    for tid, p in latest.items():
        check_results({"results": [p]}, [task(tid, fake.tasks[tid]["data"][KEY])])
    assert len({round(p["score"], 9) for p in latest.values()}) > 1  # scores order the pool


def test_second_run_fine_tunes_the_first(trained: SimpleNamespace) -> None:
    store = ModelStore(trained.dir)
    meta = store.read_meta(1, trained.v2)
    assert meta["base_version"] == trained.v1
    assert meta["n_labeled"] == 8 and meta["n_unlabeled"] == 8
    assert store.current(1) == trained.v2 and store.previous(1) == trained.v1


def test_predict_with_model_keeps_offsets_on_astral_text(trained: SimpleNamespace) -> None:
    tasks = [task(i + 1, t) for i, t in enumerate(HAND)] + [task(9, "")]
    r = trained.client.post("/predict", json=predict_body(tasks))
    assert r.status_code == 200
    body = r.get_json()
    check_results(body, tasks)
    assert {x["model_version"] for x in body["results"]} == {trained.v2}
    assert "errors" not in body


def test_predict_score_equals_pushed_pool_score(trained: SimpleNamespace) -> None:
    latest = trained.fake.latest_predictions(1)
    tids = sorted(latest)[:4]
    tasks = [task(t, trained.fake.tasks[t]["data"][KEY]) for t in tids]
    body = trained.client.post("/predict", json=predict_body(tasks)).get_json()
    for t, r in zip(tids, body["results"]):
        assert r["score"] == pytest.approx(latest[t]["score"], rel=1e-9, abs=1e-9)
        assert r["result"] == latest[t]["result"]


def test_metrics_and_versions(trained: SimpleNamespace) -> None:
    body = trained.client.get("/metrics").get_json()
    m = body["projects"]["1"]
    assert m["model_version"] == trained.v2 and m["previous_version"] == trained.v1
    assert m["training"]["status"] == "idle" and m["training"]["runs_ok"] == 2 and m["training"]["duration_s"] > 0
    stats = m["current_version_stats"]
    assert stats["labeled"] == 8 and stats["unlabeled"] == 8 and stats["trained_at"]
    assert 0.0 <= stats["lambda_t"] <= 1.0
    assert stats["held_out"] >= 1 and 0.0 <= stats["f1_held_out"] <= 1.0
    assert m["trainer"]["running"] is False
    assert body["settings"]["label_studio_api_key"] == "<set>"
    assert trained.fake.token not in json.dumps(body)
    v = trained.client.get("/versions").get_json()
    assert v["versions"][:2] == [trained.v2, trained.v1]
    assert trained.client.get("/versions?project=1").get_json()["versions"] == [trained.v2, trained.v1]


def test_tasks_created_get_predictions_of_the_serving_version(trained: SimpleNamespace) -> None:
    fake = trained.fake
    text = "😀𠀀新入院：患者诊断为2型糖尿病，予二甲双胍。"
    fake.add_task(1, 1900, text, key=KEY)
    body = {"action": "TASKS_CREATED", "tasks": [{"id": 1900, "data": {KEY: "伪造"}}, {"id": 777777}], "project": project_obj()}
    t0 = time.perf_counter()
    r = trained.client.post("/webhook", json=body)
    assert r.status_code == 200 and time.perf_counter() - t0 < 1.0
    wait_idle(trained.app)
    latest = fake.latest_predictions(1)
    assert latest[1900]["model_version"] == trained.v2 and 777777 not in latest
    check_results({"results": [latest[1900]]}, [task(1900, text)])  # scored on LS's text, not the payload's
    direct = trained.client.post("/predict", json=predict_body([task(1900, text)])).get_json()["results"][0]
    assert direct["score"] == pytest.approx(latest[1900]["score"], abs=1e-12)
    del fake.tasks[1900]
    fake.predictions = [p for p in fake.predictions if p["task"] != 1900]


def test_restart_serves_latest_good_with_identical_predictions(trained: SimpleNamespace, tmp_path: Path) -> None:
    d = tmp_path / "copy"
    shutil.copytree(trained.dir, d)
    app = init_app(LaslBackend, settings=make_settings(d))
    c = app.test_client()
    t0 = time.perf_counter()
    r = c.post("/setup", json={"project": "1.1795659941", "schema": LABEL_CONFIG})
    assert time.perf_counter() - t0 < 1.0
    assert r.get_json()["model_version"] == trained.v2
    assert app.extensions["lasl"].backends[1]._served is None  # /setup loaded nothing
    tasks = [task(i + 1, t) for i, t in enumerate(HAND)]
    before = trained.client.post("/predict", json=predict_body(tasks)).get_json()
    after = c.post("/predict", json=predict_body(tasks)).get_json()
    assert after == before


def test_a_changed_lpn_size_takes_effect_at_the_next_run(trained: SimpleNamespace, tmp_path: Path) -> None:
    # the serving version has the default shared-encoder loss net; restarted with LASL_LPN_LAYERS=2, the
    # next run fine-tunes that version's tagger, gives it the paper's 2-layer LPN, and pushes its scores
    d = tmp_path / "copy"
    shutil.copytree(trained.dir, d)
    store = ModelStore(d)
    assert NerModel.load(store.model_path(1, trained.v2)).lpn_layers == 0
    with FakeLabelStudio() as fake:
        populate(fake)
        app = init_app(LaslBackend, settings=make_settings(d, fake, lpn_layers=2))
        c = app.test_client()
        c.post("/setup", json={"project": "1.1795659941", "schema": LABEL_CONFIG, "hostname": fake.url, "access_token": fake.token})
        assert c.post("/webhook", json=start_training()).status_code == 201
        wait_idle(app)
        v3 = store.current(1)
        assert v3 not in (trained.v1, trained.v2) and store.read_meta(1, v3)["base_version"] == trained.v2
        assert NerModel.load(store.model_path(1, v3)).lpn_layers == 2
        latest = fake.latest_predictions(1)
        assert latest and all(p["model_version"] == v3 for p in latest.values())
        assert len({round(p["score"], 9) for p in latest.values()}) > 1  # the new loss net's scores order the pool


def test_corrupt_newest_version_falls_back_to_previous(trained: SimpleNamespace, tmp_path: Path) -> None:
    d = tmp_path / "copy"
    shutil.copytree(trained.dir, d)
    weights = ModelStore(d).model_path(1, trained.v2) / "weights.pt"
    weights.write_bytes(b"not a checkpoint")
    c = init_app(LaslBackend, settings=make_settings(d)).test_client()
    body = c.post("/predict", json=predict_body([task(1, HAND[0])])).get_json()
    assert body["results"][0]["model_version"] == trained.v1


def test_failed_run_keeps_serving_old_version_and_reports(trained: SimpleNamespace, tmp_path: Path) -> None:
    """LS answers 500 to the prediction import: the new model is trained and written, never served."""
    d = tmp_path / "copy"
    shutil.copytree(trained.dir, d)
    from lasl_backend.ner import TrainResult

    def fast_train(**kw: Any) -> TrainResult:
        return TrainResult(model=kw["base"].clone(), dev_f1=None, served="teacher")

    with FakeLabelStudio() as fake:
        populate(fake)
        app = init_app(LaslBackend, settings=make_settings(d, fake), train_fn=fast_train)
        c = app.test_client()
        fake.fail["/api/projects/1/import"] = [500, 500]
        assert c.post("/webhook", json=start_training()).status_code == 201
        wait_idle(app)
        m = c.get("/metrics").get_json()["projects"]["1"]
        assert m["training"]["status"] == "failed" and "500" in m["training"]["last_error"]
        assert m["model_version"] == trained.v2
        assert fake.count("/api/projects/1/import") == 2  # first try + one retry (LASL_TRAIN_RETRIES=1)
        assert c.post("/predict", json=predict_body([task(1, HAND[0])])).get_json()["results"][0]["model_version"] == trained.v2
        store = ModelStore(d)
        written = store.list_versions(1)[-1]
        assert written != trained.v2 and store.current(1) == trained.v2  # written, not served
        assert fake.token not in m["training"]["last_error"]
        # Label Studio recovers: the next run publishes and serves a newer version.
        assert c.post("/webhook", json=start_training()).status_code == 201
        wait_idle(app)
        v = c.post("/setup", json={"project": "1.1795659941"}).get_json()["model_version"]
        assert v not in (trained.v2, written) and VERSION_RE.match(v)
        assert fake.projects[1]["model_version"] == v


def test_a_run_label_studio_failed_runs_again_by_itself(tmp_path: Path) -> None:
    """LS answers 500 longer than the per-call retries: the run fails, and without any new trigger the
    trainer runs again after LASL_RETRY_LATER_S and publishes once LS is back."""
    with FakeLabelStudio() as fake:
        populate(fake)
        fake.fail["/api/tasks"] = [500] * 4  # the first run's fetch and its one retry (the SDK also retries once)
        app = init_app(LaslBackend, settings=make_settings(tmp_path, fake, retry_later_s=0.5))
        c = app.test_client()
        assert c.post("/webhook", json=start_training()).status_code == 201
        deadline = time.monotonic() + 120
        seen_failure = False
        while time.monotonic() < deadline:
            m = c.get("/metrics").get_json()["projects"]["1"]
            seen_failure |= m["training"]["runs_failed"] >= 1
            if m["model_version"] != COLD_START_VERSION and not m["trainer"]["running"]:
                break
            time.sleep(0.1)
        assert seen_failure and m["training"]["runs_failed"] == 1 and m["training"]["runs_ok"] == 1
        assert VERSION_RE.match(m["model_version"]) and fake.projects[1]["model_version"] == m["model_version"]
        assert m["training"]["reason"] == RETRY_REASON
        assert m["trainer"]["runs_started"] == 2 and m["trainer"]["failures_in_a_row"] == 0
        assert not m["trainer"]["retry_scheduled"]


def test_a_refused_request_is_not_retried_later(tmp_path: Path) -> None:
    """A failure that waiting cannot fix (LS refuses the request with a 400) schedules no retry."""
    with FakeLabelStudio() as fake:
        populate(fake)
        fake.fail["/api/tasks"] = [400] * 4
        app = init_app(LaslBackend, settings=make_settings(tmp_path, fake, retry_later_s=0.2))
        c = app.test_client()
        assert c.post("/webhook", json=start_training()).status_code == 201
        wait_idle(app)
        time.sleep(0.6)
        m = c.get("/metrics").get_json()["projects"]["1"]
        assert m["training"]["runs_failed"] == 1 and "400" in m["training"]["last_error"]
        assert m["trainer"]["runs_started"] == 1 and not m["trainer"]["retry_scheduled"]
        assert m["model_version"] == COLD_START_VERSION


def test_unreachable_label_studio_fails_cleanly(tmp_path: Path) -> None:
    app = init_app(LaslBackend, settings=make_settings(tmp_path, label_studio_url="http://127.0.0.1:9", label_studio_api_key="k-123456"))
    c = app.test_client()
    assert c.post("/webhook", json=start_training()).status_code == 201
    wait_idle(app, 60)
    m = c.get("/metrics").get_json()["projects"]["1"]
    assert m["training"]["status"] == "failed" and "could not reach" in m["training"]["last_error"]
    assert m["model_version"] == COLD_START_VERSION
    assert c.post("/predict", json=predict_body([task(1, "文本")])).status_code == 200


text_strategy = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x4E00, max_codepoint=0x4E80),
        st.sampled_from(list("😀𠀀𠀁\r\n\t 　，。()（）ABCabc0123") + ["\x00", "\x07", "\u200b", "\ufeff", "\u2028"]),
        st.characters(blacklist_categories=("Cs",)),
    ),
    max_size=120,
)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(text_strategy, min_size=1, max_size=4))
def test_property_predict_offsets_always_slice_the_exact_text(trained: SimpleNamespace, texts: list[str]) -> None:
    tasks = [task(i + 1, t) for i, t in enumerate(texts)]
    r = trained.client.post("/predict", data=json.dumps(predict_body(tasks), ensure_ascii=False).encode(), content_type="application/json")
    assert r.status_code == 200
    check_results(r.get_json(), tasks)


def test_dbs_score_is_strictly_increasing_inside_unit_interval() -> None:
    xs = [-1e6, -50.0, -1.0, -1e-9, 0.0, 1e-9, 0.5, 1.0, 9.2, 300.0, 1e4, 1e6, 1e9]
    ys = [dbs_score(x) for x in xs]
    assert all(0.0 <= y <= 1.0 for y in ys)
    assert all(a < b for a, b in zip(ys, ys[1:]))  # order preserved even where a logistic saturates
    assert dbs_score(float("inf")) == 1.0 and dbs_score(float("nan")) == 1.0 and dbs_score(float("-inf")) == 0.0


# ---- cold start, setup ------------------------------------------------------------------------------
@pytest.fixture()
def cold(tmp_path: Path) -> Any:
    return init_app(LaslBackend, settings=make_settings(tmp_path)).test_client()


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
    assert b._served is None and not b._load_done and b.has_connection


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


# ---- offsets and concurrency with a stub model (fast) ---------------------------------------------------
class StubModel:
    """Marks every occurrence of known surfaces with one fixed label; enough to test mapping and swaps."""

    def __init__(self, label: str, surfaces: tuple[str, ...] = ("糖尿病", "二甲双胍", "右肺", "MRI")) -> None:
        self.label, self.surfaces, self.labels = label, surfaces, list(LABELS)

    def predict(self, texts: list[str], **kw: Any) -> list[RecordScore]:
        out = []
        for t in texts:
            ents = []
            for s in self.surfaces:
                i = t.find(s)
                if i >= 0:
                    ents.append(SpanPrediction(i, i + len(s), self.label, t[i : i + len(s)], 0.8))
            out.append(RecordScore(sorted(ents, key=lambda e: e.start), l_min=float(len(t)), l_max=float(len(t)) + 1,
                                   p_max=math.exp(-len(t)), l_pred=0.5, n_chars=len(t)))
        return out


def test_regions_use_code_point_offsets_after_emoji_and_ext_b(tmp_path: Path) -> None:
    app = init_app(LaslBackend, settings=make_settings(tmp_path))
    c = app.test_client()
    c.post("/setup", json={"project": 1, "schema": LABEL_CONFIG})
    app.extensions["lasl"].backend(1).swap(ServedModel("lasl-v0001-20261126T051200", StubModel("药物"), None))
    tasks = [task(1, HAND[0]), task(2, HAND[1]), task(3, "😀" * 5 + "𠀀MRI")]
    body = c.post("/predict", json=predict_body(tasks)).get_json()
    check_results(body, tasks)
    got = [(r["value"]["start"], r["value"]["text"]) for r in body["results"][0]["result"]]
    assert got == [(HAND[0].index("糖尿病"), "糖尿病"), (HAND[0].index("二甲双胍"), "二甲双胍")]
    i = HAND[0].index("糖尿病")
    assert i == 7 and len(HAND[0][:i].encode("utf-16-le")) // 2 == 9  # 2 astral characters before it
    assert body["results"][2]["result"][0]["value"]["start"] == 6


def test_model_swap_under_concurrent_predicts(tmp_path: Path) -> None:
    app = init_app(LaslBackend, settings=make_settings(tmp_path))
    backend = app.extensions["lasl"].backend(1)
    backend.set_label_config(LABEL_CONFIG)
    a = ServedModel("lasl-v0001-20261126T051200", StubModel("药物"), None)
    b = ServedModel("lasl-v0002-20261126T051300", StubModel("手术"), None)
    want = {a.version: "药物", b.version: "手术"}
    backend.swap(a)
    tasks = [task(i, HAND[i % 3]) for i in range(20)]
    errors: list[str] = []
    stop = threading.Event()

    def client_loop() -> None:
        c = app.test_client()
        while not stop.is_set():
            r = c.post("/predict", json=predict_body(tasks))
            if r.status_code != 200:
                errors.append(f"status {r.status_code}")
                continue
            results = r.get_json()["results"]
            versions = {x["model_version"] for x in results}
            labels = {reg["value"]["labels"][0] for x in results for reg in x["result"]}
            if len(results) != len(tasks) or len(versions) != 1 or labels != {want[versions.pop()]}:
                errors.append("mixed batch")

    threads = [threading.Thread(target=client_loop) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(40):
        backend.swap(b if i % 2 == 0 else a)
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join(30)
    assert errors == []


# ---- bad input: a clear 4xx JSON error, never a 5xx --------------------------------------------------
NESTED = ("[" * 100_000 + "]" * 100_000).encode()
BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
                  '<View><Labels name="ner" toName="emr"><Label value="&lol2;"/></Labels><Text name="emr" value="$note"/></View>')
TWO_PAIRS = LABEL_CONFIG.replace("</View>", '<Labels name="b" toName="t2"><Label value="x"/></Labels><Text name="t2" value="$o"/></View>')
NO_PAIR = '<View><Text name="emr" value="$note"/></View>'
GOOD_TASK = task(1, HAND[0])

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


def test_bad_input_kind_count() -> None:
    assert len(BAD_CASES) >= 30


def test_oversized_request_gets_413(tmp_path: Path) -> None:
    c = init_app(LaslBackend, settings=make_settings(tmp_path, max_request_bytes=64 * 1024)).test_client()
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


# ---- auth -----------------------------------------------------------------------------------------------
@pytest.fixture()
def authed(tmp_path: Path) -> Any:
    return init_app(LaslBackend, settings=make_settings(tmp_path, basic_auth_user=AUTH[0], basic_auth_pass=AUTH[1])).test_client()


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


# ---- webhooks: confirmation, counting, single flight ------------------------------------------------------
def counting_backend() -> type[LaslBackend]:
    class Counting(LaslBackend):
        calls: list[str] = []

        def fit(self, event: str, data: Any = None, **kw: Any) -> dict[str, Any]:
            Counting.calls.append(event)
            return {}

    return Counting


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


def test_single_flight_and_coalescing(tmp_path: Path) -> None:
    gate = threading.Event()
    entered = threading.Event()

    class Slow(LaslBackend):
        calls = 0
        active = 0
        max_active = 0
        lock = threading.Lock()

        def fit(self, event: str, data: Any = None, **kw: Any) -> dict[str, Any]:
            with Slow.lock:
                Slow.calls += 1
                Slow.active += 1
                Slow.max_active = max(Slow.max_active, Slow.active)
            entered.set()
            gate.wait(30)
            with Slow.lock:
                Slow.active -= 1
            return {}

    app = init_app(Slow, settings=make_settings(tmp_path))
    c = app.test_client()
    r = c.post("/webhook", json=start_training())
    assert r.get_json()["result"]["training"] == "started"
    assert entered.wait(10)
    states = []
    for _ in range(5):
        t0 = time.perf_counter()
        r = c.post("/webhook", json=start_training())
        assert r.status_code == 201 and time.perf_counter() - t0 < 1.0
        states.append(r.get_json()["result"]["training"])
    assert states == ["queued"] + ["coalesced"] * 4
    gate.set()
    wait_idle(app)
    assert Slow.calls == 2 and Slow.max_active == 1
    assert app.extensions["lasl"].trainer.status(1) == {
        "running": False, "pending": False, "runs_started": 2, "coalesced": 4, "failures_in_a_row": 0, "retry_scheduled": False,
    }


def test_a_run_cut_short_while_improving_gets_a_follow_up_run(tmp_path: Path) -> None:
    """fit() reports follow_up=True (budget used, dev F1 still rising): the manager runs one more,
    with the continue reason, and stops when fit says so."""
    reasons: list[str] = []

    class Budgeted(LaslBackend):
        def fit(self, event: str, data: Any = None, **kw: Any) -> dict[str, Any]:
            reasons.append(event)
            return {"follow_up": len(reasons) < 3}

    app = init_app(Budgeted, settings=make_settings(tmp_path))
    c = app.test_client()
    assert c.post("/webhook", json=start_training()).get_json()["result"]["training"] == "started"
    wait_idle(app)
    assert reasons == ["START_TRAINING", CONTINUE_REASON, CONTINUE_REASON]
    assert app.extensions["lasl"].trainer.status(1)["runs_started"] == 3


@pytest.mark.parametrize(
    "runs, expected",
    [
        # (reason, out_of_time, dev_f1, previous dev_f1) per run → follow_up per run
        ([("START_TRAINING", False, 0.5, None)], [False]),  # ended on its epochs: converged
        ([("START_TRAINING", True, None, None)], [True]),  # cut short, nothing to compare: go on
        ([("START_TRAINING", True, 0.60, 0.50)], [True]),  # still improving
        ([("START_TRAINING", True, 0.501, 0.50)], [False]),  # flat: stop
        ([("START_TRAINING", True, 0.0, 0.0)], [True]),  # too young to find entities yet: go on
        # the chain stops after LASL_CONTINUE_RUNS (2 here) follow-ups, and a new trigger resets it
        ([("START_TRAINING", True, None, None), (CONTINUE_REASON, True, None, None),
          (CONTINUE_REASON, True, None, None), ("ANNOTATION_CREATED", True, None, None)], [True, True, False, True]),
    ],
)
def test_follow_up_rule(tmp_path: Path, runs: list[tuple[str, bool, float | None, float | None]], expected: list[bool]) -> None:
    b = LaslBackend(project_id=1, settings=make_settings(tmp_path, continue_runs=2))
    assert [b._should_continue(*r) for r in runs] == expected


def test_only_a_first_run_warms_the_tagger_up_alone(tmp_path: Path) -> None:
    b = LaslBackend(project_id=1, settings=make_settings(tmp_path, train_seconds=30.0, first_run_warmup=0.7))
    assert b.train_config(first_run=True).tagger_warmup_seconds == pytest.approx(21.0)
    assert b.train_config(first_run=False).tagger_warmup_seconds == 0.0
    assert b.train_config(first_run=True).max_seconds == 30.0 and b.train_config().lpn_thread
    nobudget = LaslBackend(project_id=1, settings=make_settings(tmp_path, train_seconds=0.0))
    assert nobudget.train_config(first_run=True).tagger_warmup_seconds == 0.0 and nobudget.train_config().max_seconds is None


def test_the_lpn_size_setting_reaches_the_training_run(tmp_path: Path) -> None:
    assert LaslBackend(project_id=1, settings=make_settings(tmp_path)).train_config().lpn_layers == 0
    b = LaslBackend(project_id=1, settings=make_settings(tmp_path, lpn_layers=2))
    assert b.train_config().lpn_layers == 2 and b.train_config().lossnet == "lpn"


def test_projects_are_independent(tmp_path: Path) -> None:
    app = init_app(LaslBackend, settings=make_settings(tmp_path))
    c = app.test_client()
    other = LABEL_CONFIG.replace("$note", "$body").replace('name="ner"', 'name="tags"')
    c.post("/setup", json={"project": "1.1", "schema": LABEL_CONFIG})
    c.post("/setup", json={"project": "2.1", "schema": other})
    b1, b2 = app.extensions["lasl"].backends[1], app.extensions["lasl"].backends[2]
    assert (b1.ner.from_name, b1.ner.value_key) == ("ner", "note")
    assert (b2.ner.from_name, b2.ner.value_key) == ("tags", "body")
    r = c.post("/predict", json={"tasks": [{"id": 1, "data": {"body": "文本"}}], "project": "2.1"})
    assert r.status_code == 200


# ---- secrets never logged ----------------------------------------------------------------------------------
def test_no_secret_in_logs_or_responses(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    setup_token = "setup-legacy-token-SECRET-0042"
    with FakeLabelStudio(token="ls-api-key-SECRET-0099") as fake:
        populate(fake)
        s = make_settings(tmp_path, fake, basic_auth_user=AUTH[0], basic_auth_pass=AUTH[1])
        app = init_app(LaslBackend, settings=s)
        c = app.test_client()
        bodies = [
            c.post("/setup", json={"project": "1.1", "schema": LABEL_CONFIG, "hostname": fake.url, "access_token": setup_token}, auth=AUTH),
            c.post("/setup", json={"project": "1.1"}, auth=(AUTH[0], AUTH[1] + "x")),
            c.post("/predict", json=predict_body([GOOD_TASK]), auth=AUTH),
        ]
        fake.fail["/api/tasks"] = [401, 401]  # LS rejects the key during a run
        bodies.append(c.post("/webhook", json=start_training(), auth=AUTH))
        wait_idle(app)
        bodies.append(c.get("/metrics", auth=AUTH))
        assert "401" in bodies[-1].get_json()["projects"]["1"]["training"]["last_error"]
    text = caplog.text + "".join(b.get_data(as_text=True) for b in bodies) + repr(s) + repr(app.extensions["lasl"].backends[1].ls())
    for secret in (fake.token, AUTH[1], setup_token):
        assert secret not in text


# ---- crash during training (a real process, SIGKILL) --------------------------------------------------
def test_sigkill_during_training_then_restart_serves_same_predictions(trained: SimpleNamespace, tmp_path: Path) -> None:
    import subprocess
    import sys
    import textwrap

    d = tmp_path / "copy"
    shutil.copytree(trained.dir, d)
    tasks = [task(i + 1, t) for i, t in enumerate(HAND)]
    before = trained.client.post("/predict", json=predict_body(tasks)).get_json()
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tests.fake_label_studio import FakeLabelStudio
        from lasl_backend.serving.backend import LaslBackend
        from lasl_backend.config import Settings
        from lasl_backend.serving.store import ModelStore

        def dying_train(**kw):
            kw["base"].clone()  # mid-training: the base model is in memory, nothing new on disk
            os.kill(os.getpid(), signal.SIGKILL)

        cfg = {LABEL_CONFIG!r}
        with FakeLabelStudio() as fake:
            fake.add_project(1, cfg)
            fake.add_task(1, 1, "患者😀因糖尿病入院。", key="note")
            fake.annotate(1, [], from_name="ner", to_name="emr")
            s = Settings(model_dir={str(d)!r}, label_studio_url=fake.url, label_studio_api_key=fake.token)
            b = LaslBackend(1, cfg, settings=s, store=ModelStore({str(d)!r}), train_fn=dying_train)
            b.train("test")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    c = init_app(LaslBackend, settings=make_settings(d)).test_client()
    assert c.post("/setup", json={"project": "1.1", "schema": LABEL_CONFIG}).get_json()["model_version"] == trained.v2
    assert c.post("/predict", json=predict_body(tasks)).get_json() == before
