"""The final run: due once the stop rule says "stop", trained from scratch on every annotation with the
full schedule, published as a version marked final, left out of the stopping signal; the regular run
after it fine-tunes from the version it replaced. Training is the fixture model (``Trainer``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lasl_backend.ner import NerModel
from lasl_backend.serving.backend import LaslBackend
from lasl_backend.serving.final_run import FINAL_REASON, REGROWTH, final_due, replaced_version
from lasl_backend.serving.model_slot import ServedModel
from lasl_backend.serving.training_run import final_train_config, train_config
from lasl_backend.stopping import KEEP, SLOWING, STOP

from tests.fake_label_studio import FakeLabelStudio
from tests.serving.test_stopping_signal import FIRST_TASK, annotate, fake, fixture_model, make_backend, settings  # noqa: F401
from tests.serving.test_training_run import Trainer

#: a rule that says "stop" once four versions carry a held-back F1 and the last agrees with the one before
LOOSE = dict(stop_min_annotations=0, stop_kappa=0.01, stop_window=1, stop_gain=1.0, slow_gain=1.0, final_train_seconds=900.0)


def backend_at_stop(tmp_path: Path, fake: FakeLabelStudio, trainer: Trainer, **kw: Any) -> tuple[LaslBackend, dict[str, Any]]:
    """A backend trained after 10, 12, 14 and 16 annotations; the last run's summary (its rule says stop)."""
    b = make_backend(tmp_path / "models", fake, trainer, **(LOOSE | kw))
    summary: dict[str, Any] = {}
    for n in (10, 12, 14, 16):
        annotate(fake, range(FIRST_TASK + n - (10 if n == 10 else 2), FIRST_TASK + n))
        summary = b.train("ANNOTATION_CREATED")
    assert b.stopping()["recommendation"]["state"] == STOP
    return b, summary


def test_a_stop_calls_for_one_final_run_trained_on_everything(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    trainer = Trainer(fixture_model)
    b, summary = backend_at_stop(tmp_path, fake, trainer)
    assert summary["final_due"] and not summary["final"] and summary["n_held_out"] > 0
    regular, signals = summary["version"], len(b.history.signals())

    final = b.train(FINAL_REASON)
    call = trainer.calls[-1]
    assert call["base"] is None and len(call["labeled"]) == 16  # from scratch, the held-back tasks included
    cfg = call["config"]
    assert (cfg.max_epochs, cfg.min_steps, cfg.max_steps, cfg.max_seconds) == (40, 600, None, 900.0)
    assert not cfg.mean_teacher and cfg.lossnet == "lpn" and cfg.tagger_warmup_seconds == 0.0
    assert final["final"] and final["regular_base"] == regular and final["n_held_out"] == 0 and final["f1_held_out"] is None
    assert not final["final_due"] and not final["follow_up"] and final["pushed"] == 24 - 16
    assert b.store.read_meta(1, final["version"])["final"] is True and b.current().version == final["version"]
    assert len(b.history.signals()) == signals  # the stopping signal stays the regular versions'
    assert b.history.runs()[-1]["n_labeled"] == 16
    assert b.metrics()["queue"]["final"] is True

    again = b.train("ANNOTATION_CREATED")  # no new annotations: still stop, but a final run exists at 16
    assert not again["final_due"] and not again["final"]


def test_the_run_after_a_final_model_fine_tunes_the_version_it_replaced(tmp_path: Path, fake: FakeLabelStudio,
                                                                         fixture_model: NerModel) -> None:
    trainer = Trainer(fixture_model)
    b, summary = backend_at_stop(tmp_path, fake, trainer)
    regular = summary["version"]
    b.train(FINAL_REASON)
    annotate(fake, [FIRST_TASK + 16])
    after = b.train("ANNOTATION_CREATED")
    assert after["base_version"] == regular and not after["final"] and after["n_held_out"] > 0
    assert trainer.calls[-1]["base"] is not None and trainer.calls[-1]["config"].mean_teacher


def test_a_failed_final_run_is_not_retried_until_the_annotations_grow(tmp_path: Path, fake: FakeLabelStudio,
                                                                       fixture_model: NerModel) -> None:
    trainer = Trainer(fixture_model)
    b, _ = backend_at_stop(tmp_path, fake, trainer)
    trainer.fail = RuntimeError("out of memory")
    with pytest.raises(RuntimeError):
        b.train(FINAL_REASON)
    failed = b.history.runs()[-1]
    assert (failed["reason"], failed["status"], failed["n_labeled"]) == (FINAL_REASON, "failed", 16)
    assert b.current().version == b.history.signals()[-1]["version"]  # the regular version still serves
    annotate(fake, [FIRST_TASK + 16])
    assert not b.train("ANNOTATION_CREATED")["final_due"]  # 17 < 1.1 × 16
    annotate(fake, [FIRST_TASK + 17])
    assert b.train("ANNOTATION_CREATED")["final_due"]  # 18 ≥ 17.6


def test_no_final_run_when_it_is_turned_off(tmp_path: Path, fake: FakeLabelStudio, fixture_model: NerModel) -> None:
    _, summary = backend_at_stop(tmp_path, fake, Trainer(fixture_model), final_run=False)
    assert summary["final_due"] is False


def test_final_due_needs_stop_and_ten_percent_more_than_the_last_try(tmp_path: Path, fake: FakeLabelStudio) -> None:
    s = settings(tmp_path, fake)
    assert final_due(s, STOP, 100, []) and not final_due(s, SLOWING, 100, []) and not final_due(s, KEEP, 100, [])
    tried = [{"reason": FINAL_REASON, "status": "ok", "n_labeled": 100}]
    assert not final_due(s, STOP, 109, tried) and final_due(s, STOP, 110, tried) and REGROWTH == 1.1
    assert not final_due(s, STOP, 109, [{"reason": FINAL_REASON, "status": "failed", "n_labeled": 100}])
    others = [{"reason": FINAL_REASON, "status": "cancelled", "n_labeled": 100}, {"reason": "START_TRAINING", "status": "ok", "n_labeled": 100},
              {"reason": FINAL_REASON, "status": "failed", "n_labeled": None}, {"reason": FINAL_REASON, "status": "ok", "n_labeled": True}]
    assert final_due(s, STOP, 100, others)  # a cancelled try, a regular run and a failure before the fetch do not count
    assert not final_due(settings(tmp_path, fake, final_run=False), STOP, 100, [])


def test_the_version_a_final_run_replaces(fixture_model: NerModel) -> None:
    regular = ServedModel("v2", fixture_model, None, {"final": False})
    final = ServedModel("v3", fixture_model, None, {"final": True, "regular_base": "v2"})
    assert replaced_version(None) is None and replaced_version(regular) == "v2" and replaced_version(final) == "v2"
    assert replaced_version(ServedModel("v3", fixture_model, None, {"final": True})) is None


def test_final_train_config_is_the_full_schedule_of_the_settings(tmp_path: Path, fake: FakeLabelStudio) -> None:
    s = settings(tmp_path, fake, epochs=3, min_steps=7, max_steps=50, lpn_layers=2, final_train_seconds=0.0, train_seconds=20.0)
    cfg, regular = final_train_config(s), train_config(s)
    assert (cfg.max_epochs, cfg.min_steps, cfg.max_steps, cfg.max_seconds, cfg.lpn_layers) == (40, 600, None, None, 2)
    assert (regular.max_epochs, regular.max_seconds) == (3, 20.0) and cfg.seed == regular.seed and cfg.char_vectors == regular.char_vectors
