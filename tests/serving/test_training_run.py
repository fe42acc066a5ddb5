"""A training run's steps against a fake Label Studio: what a failure in each step leaves behind,
round numbers from the store (after a failed run, after a restart), the follow-up rule, the config.

Training itself is replaced by ``train_fn`` returning a copy of the checked-in fixture model, so a
run takes a fraction of a second and its scores are those of a real model."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from lasl_backend.config import Settings
from lasl_backend.devtools.synthetic import make_records
from lasl_backend.labelstudio import LabelStudioRequestError, LabelStudioServerError, LSClient
from lasl_backend.ner import NerModel, TrainResult
from lasl_backend.serving.backend import LaslBackend, NotEnoughLabeledError
from lasl_backend.serving.store import ModelStore
from lasl_backend.serving.training_run import CONTINUE_REASON, FollowUpRule, train_config
from lasl_backend.strategies import Linear, PoolScores

from tests.fake_label_studio import FakeLabelStudio

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_model_dir"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text(encoding="utf-8"))
CFG = EXPECTED["label_config"]
MODEL_DIR = FIXTURE / "models" / "projects" / "7" / "versions" / EXPECTED["version"] / "model"
PID = 1


@pytest.fixture(scope="module")
def fixture_model() -> NerModel:
    return NerModel.load(MODEL_DIR)


@pytest.fixture()
def fake() -> Iterator[FakeLabelStudio]:
    with FakeLabelStudio() as f:
        f.add_project(PID, CFG)
        for i, r in enumerate(make_records(16, seed=5, mean_chars=40)):
            f.add_task(PID, 100 + i, r.text)
            if i < 8:
                f.annotate(100 + i, [(e.start, e.end, e.label) for e in r.entities])
        yield f


def settings(model_dir: Path, fake: FakeLabelStudio, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(
        model_dir=model_dir, label_studio_url=fake.url, label_studio_api_key=fake.token,
        retry_backoff_s=0.0, train_retries=1, schedule="linear", epochs=1, min_steps=1, max_steps=2,
    )
    base.update(kw)
    return Settings(**base)


class Client(LSClient):
    """The real client without SDK-level retries (only the backend's own count), able to refuse
    the model_version PATCH as Label Studio does when it finds no prediction of that version."""

    refuse_model_version = False

    def set_model_version(self, project_id: int, version: str, uncertainty_sampling: bool = True) -> None:
        if self.refuse_model_version:
            raise LabelStudioRequestError("PATCH project model_version: Label Studio answered HTTP 400", 400)
        super().set_model_version(project_id, version, uncertainty_sampling)


def no_sdk_retries(url: str, key: str) -> LSClient:
    return Client(url, key, timeout=10, max_retries=0)


class Trainer:
    """A ``train_fn`` that hands out the fixture model; ``fail`` makes the next call raise it."""

    def __init__(self, model: NerModel) -> None:
        self.model = model
        self.calls: list[dict[str, Any]] = []
        self.fail: BaseException | None = None
        self.unsavable = False

    def __call__(self, **kw: Any) -> TrainResult:
        self.calls.append(kw)
        if self.fail is not None:
            exc, self.fail = self.fail, None
            raise exc
        model = self.model.clone()
        if self.unsavable:
            self.unsavable = False

            def disk_full(path: Any) -> None:
                raise OSError(errno.ENOSPC, "No space left on device")

            model.save = disk_full  # type: ignore[method-assign]
        return TrainResult(model=model, dev_f1=None, served="teacher", steps=2)


def make_backend(tmp_path: Path, fake: FakeLabelStudio, trainer: Trainer, **kw: Any) -> LaslBackend:
    s = settings(tmp_path / "models", fake, **kw)
    return LaslBackend(PID, CFG, settings=s, store=ModelStore(s.model_dir), ls_factory=no_sdk_retries, train_fn=trainer)


def linear_lambda(round_t: int) -> float:
    return Linear()(PoolScores(n=1, round=round_t))


# ---- a failure before "activate" leaves the old version serving -----------------------------------------
def break_fetch(fake: FakeLabelStudio, b: LaslBackend, trainer: Trainer) -> None:
    fake.fail["/api/tasks"] = [500, 500]  # the try and its one retry


def break_fit(fake: FakeLabelStudio, b: LaslBackend, trainer: Trainer) -> None:
    trainer.fail = RuntimeError("loss is NaN")


def break_persist(fake: FakeLabelStudio, b: LaslBackend, trainer: Trainer) -> None:
    trainer.unsavable = True


def break_push(fake: FakeLabelStudio, b: LaslBackend, trainer: Trainer) -> None:
    fake.fail["/api/projects/1/import"] = [500, 500]


def break_set_model_version(fake: FakeLabelStudio, b: LaslBackend, trainer: Trainer) -> None:
    b.ls().refuse_model_version = True  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "breaker, error, written",
    [
        (break_fetch, LabelStudioServerError, False),
        (break_fit, RuntimeError, False),
        (break_persist, OSError, False),
        (break_push, LabelStudioServerError, True),
        (break_set_model_version, LabelStudioRequestError, True),
    ],
    ids=["fetch", "fit", "persist", "push", "set-model-version"],
)
def test_a_failed_step_leaves_the_old_version_serving(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel,
                                                      breaker: Any, error: type[BaseException], written: bool) -> None:
    trainer = Trainer(fixture_model)
    b = make_backend(tmp_path, fake, trainer)
    v1 = b.train("START_TRAINING")["version"]
    serving = b.current()
    assert serving is not None and serving.version == v1
    versions_before = b.store.list_versions(PID)
    breaker(fake, b, trainer)
    with pytest.raises(error):
        b.train("ANNOTATION_CREATED")
    assert b.current() is serving  # the very same object still serves
    assert b.store.current(PID) == v1 and fake.projects[PID]["model_version"] == v1
    assert b.predict([{"id": 1, "data": {"text": EXPECTED["texts"][0]}}])[0]["model_version"] == v1
    after = b.store.list_versions(PID)
    assert (after != versions_before) == written  # written (and never served) only once scoring succeeded
    assert not list((b.store.project_dir(PID) / "tmp").iterdir())  # a failed write leaves no leftovers
    m = b.metrics()
    assert m["model_version"] == v1 and m["training"]["status"] == "failed" and m["training"]["runs_failed"] == 1
    assert error.__name__ in m["training"]["last_error"]


def test_too_few_annotations_wait_without_a_version(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    trainer = Trainer(fixture_model)
    b = make_backend(tmp_path, fake, trainer, min_labeled=9)
    with pytest.raises(NotEnoughLabeledError):
        b.train("START_TRAINING")
    assert trainer.calls == [] and b.store.list_versions(PID) == []
    state = b.metrics()["training"]
    assert state["status"] == "waiting" and state["runs_failed"] == 0 and "LASL_MIN_LABELED" in state["last_error"]
    assert b.knows_annotation(fake.tasks[100]["annotations"][0]["id"])  # the fetch was seen all the same


def test_a_run_pushes_what_predict_answers(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    b = make_backend(tmp_path, fake, Trainer(fixture_model), push_chunk=3)
    summary = b.train("START_TRAINING")
    pushed = fake.latest_predictions(PID)
    unlabeled = sorted(t for t, task in fake.tasks.items() if not task["annotations"])
    assert sorted(pushed) == unlabeled and summary["pushed"] == len(unlabeled) == 8
    assert fake.count("/api/projects/1/import") == 3  # chunks of LASL_PUSH_CHUNK
    for tid in unlabeled:
        p = pushed[tid]
        assert set(p) == {"task", "model_version", "score", "result"}
        direct = b.predict([{"id": tid, "data": {"text": fake.tasks[tid]["data"]["text"]}}])[0]
        assert direct["result"] == p["result"] and direct["model_version"] == p["model_version"]
        assert direct["score"] == pytest.approx(p["score"], rel=1e-6)  # one record alone vs. in a batch: float32 sums
    assert fake.projects[PID]["model_version"] == summary["version"] == b.model_version


def test_an_entity_weighted_run_pushes_what_predict_answers(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    """With LASL_ENTITY_WEIGHT the frozen weight is saved with the version, and a task scored on its own gets
    the score it was pushed with."""
    b = make_backend(tmp_path, fake, Trainer(fixture_model), entity_weight=0.5, diversity_window=0)
    summary = b.train("START_TRAINING")
    saved = json.loads(b.store.normalizer_path(PID, summary["version"]).read_text(encoding="utf-8"))
    assert saved["entity_coef"] > 0 and saved["normalize_length"] is True
    assert b.store.read_meta(PID, summary["version"])["entity_weight"] == 0.5
    assert b.metrics()["queue"]["entity_weight"] == 0.5
    pushed = fake.latest_predictions(PID)
    for tid, p in pushed.items():
        direct = b.predict([{"id": tid, "data": {"text": fake.tasks[tid]["data"]["text"]}}])[0]
        assert direct["score"] == pytest.approx(p["score"], rel=1e-6)


# ---- round numbers come from the store ------------------------------------------------------------------
def test_round_numbers_after_a_failed_run_and_a_restart(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    trainer = Trainer(fixture_model)
    b = make_backend(tmp_path, fake, trainer)
    first = b.train("START_TRAINING")
    assert first["round"] == 0 and first["lambda_t"] == pytest.approx(linear_lambda(0))
    fake.fail["/api/tasks"] = [500, 500]
    with pytest.raises(LabelStudioServerError):
        b.train("ANNOTATION_CREATED")  # failed before a version was allocated: no round used
    second = b.train("ANNOTATION_CREATED")
    assert second["round"] == 1
    fake.fail["/api/projects/1/import"] = [500, 500]
    with pytest.raises(LabelStudioServerError):
        b.train("ANNOTATION_CREATED")  # version 3 written, never served: its number stays used
    third = b.train("ANNOTATION_CREATED")
    assert third["round"] == 3 and third["lambda_t"] == pytest.approx(linear_lambda(3))

    restarted = make_backend(tmp_path, fake, trainer)
    assert restarted.model_version == third["version"]
    fourth = restarted.train("START_TRAINING")
    assert fourth["round"] == 4 and fourth["base_version"] == third["version"]
    (restarted.store.project_dir(PID) / "state.json").unlink()  # a lost counter: names on disk still count
    fifth = make_backend(tmp_path, fake, trainer).train("START_TRAINING")
    assert fifth["round"] == 5
    meta = ModelStore(tmp_path / "models").read_meta(PID, fifth["version"])
    assert meta["round"] == 5 and meta["lambda_t"] == pytest.approx(linear_lambda(5))


# ---- follow-up runs and the training config ---------------------------------------------------------------
def test_follow_up_chain_is_capped_and_reset_by_a_new_trigger() -> None:
    rule = FollowUpRule(max_follow_ups=2)
    assert rule.decide("START_TRAINING", True, 0.3, 0.2)
    assert rule.decide(CONTINUE_REASON, True, 0.4, 0.3)
    assert not rule.decide(CONTINUE_REASON, True, 0.5, 0.4)  # the second follow-up in a row is the last
    assert rule.decide("ANNOTATION_CREATED", True, 0.6, 0.5)
    assert not rule.decide(CONTINUE_REASON, True, 0.6005, 0.6)  # flat: converged
    assert not FollowUpRule(0).decide("START_TRAINING", True, None, None)


def test_a_fine_tuning_run_reports_the_previous_dev_f1_to_the_rule(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    class Budgeted(Trainer):
        def __call__(self, **kw: Any) -> TrainResult:
            r = super().__call__(**kw)
            r.dev_f1, r.out_of_time = (0.5, True) if len(self.calls) == 1 else (0.501, True)
            return r

    b = make_backend(tmp_path, fake, Budgeted(fixture_model))
    assert b.train("START_TRAINING")["follow_up"]  # cut short, no previous version to compare with
    assert not b.train(CONTINUE_REASON)["follow_up"]  # 0.501 is not more than 0.002 above 0.5


def test_train_config_comes_from_the_settings_alone(tmp_path: Path, fake: FakeLabelStudio) -> None:
    s = settings(tmp_path, fake, epochs=3, min_steps=7, max_steps=0, seed=11, lpn_layers=2, train_seconds=20.0,
                 first_run_warmup=0.5, train_threads=1, device="cpu")
    first = train_config(s, first_run=True)
    assert (first.max_epochs, first.min_steps, first.max_steps, first.seed, first.lpn_layers) == (3, 7, None, 11, 2)
    assert first.max_seconds == 20.0 and first.tagger_warmup_seconds == pytest.approx(10.0) and not first.lpn_thread
    assert first.mean_teacher and first.lossnet == "lpn" and first.encoder == "char" and first.device == "cpu"
    assert not train_config(settings(tmp_path, fake, mean_teacher=False)).mean_teacher
    assert train_config(settings(tmp_path, fake, average_tail=0.25)).average_tail == 0.25
    assert train_config(settings(tmp_path, fake, anneal_tail=0.4)).anneal_tail == 0.4
    assert train_config(s).tagger_warmup_seconds == 0.0
    assert train_config(settings(tmp_path, fake)).max_steps == 2
