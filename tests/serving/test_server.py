"""The Flask app with a tiny real model trained through the real fit path, a fake Label Studio, and the
per-project backend's serving rules (offsets, swaps, scores, follow-up runs, secrets)."""

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

from lasl_backend.serving.backend import COLD_START_VERSION, CONTINUE_REASON, LaslBackend, ServedModel, dbs_score
from lasl_backend.ner import NerModel, RecordScore, SpanPrediction
from lasl_backend.serving.routes import init_app
from lasl_backend.serving.store import VERSION_RE, ModelStore
from lasl_backend.devtools.synthetic import LABELS

from tests.fake_label_studio import FakeLabelStudio
from tests.serving.helpers import (
    AUTH, GOOD_TASK, HAND, KEY, LABEL_CONFIG, check_results, make_settings, populate, predict_body, project_obj,
    start_training, task, wait_idle,
)


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
    assert app.extensions["lasl"].backends[1].slot.peek() is None  # /setup loaded nothing
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
    assert [b.follow_up.decide(*r) for r in runs] == expected


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
