"""LASL_MEAN_TEACHER through a real training run: on, each version carries the EMA teacher; switched off,
the project's next version is trained without it, carries no teacher and serves its student."""

from __future__ import annotations

from pathlib import Path

from lasl_backend.ner import NerModel
from lasl_backend.serving.backend import LaslBackend
from lasl_backend.serving.routes import init_app
from lasl_backend.serving.store import ModelStore

from tests.fake_label_studio import FakeLabelStudio
from tests.serving.helpers import LABEL_CONFIG, make_settings, populate, start_training, wait_idle


def _served_model(model_dir: Path) -> NerModel:
    store = ModelStore(model_dir)
    return NerModel.load(store.model_path(1, store.current(1)))


def _train_once(fake: FakeLabelStudio, model_dir: Path, **settings: object) -> NerModel:
    app = init_app(LaslBackend, settings=make_settings(model_dir, char_vectors="none", **settings))
    client = app.test_client()
    client.post("/setup", json={"project": "1.1795659941", "schema": LABEL_CONFIG, "hostname": fake.url, "access_token": fake.token})
    assert client.post("/webhook", json=start_training()).status_code == 201
    wait_idle(app)
    assert client.get("/metrics").get_json()["projects"]["1"]["training"]["last_error"] is None
    return _served_model(model_dir)


def test_switching_mean_teacher_off_drops_the_teacher_at_the_next_run(tmp_path: Path) -> None:
    models = tmp_path / "models"
    with FakeLabelStudio() as fake:
        populate(fake)
        with_teacher = _train_once(fake, models)
        assert with_teacher.teacher is not None
        without = _train_once(fake, models, mean_teacher=False)
        assert without.teacher is None and without.serve == "student"
        assert without.meta["train_config"]["mean_teacher"] is False
        assert without.served is without.student  # the reloaded version predicts with its student
