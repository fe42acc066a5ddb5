"""Training gives what the flat-layout code gave (commit ffe5f2f): the same loss history, served tagger
and weights for the same records and seeds. ``tests/fixtures/training_pin.json`` was written by that
commit's ``train_lasl`` on small models: a LASL run (Mean Teacher, a 2-layer LPN on the helper thread),
a fine-tune of it that resizes the LPN to the shared encoder with a dev split, and a learning-loss run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lasl_backend.data import Entity, Record
from lasl_backend.devtools.synthetic import LABELS
from lasl_backend.ner import NerModel, TrainConfig, train_lasl

PIN = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "training_pin.json").read_text(encoding="utf-8"))
RECORDS = [Record(r["id"], r["text"], [Entity(e["start"], e["end"], e["label"]) for e in r["entities"]]) for r in PIN["records"]]
TRAIN, UNLABELED, DEV = RECORDS[:16], [r.text for r in RECORDS[16:32]], RECORDS[32:]
PROBE = [r.text for r in DEV]
# the same machine gives the same bits; a different CPU may round a last digit differently
REL = 1e-5


def small(kind: str, layers: int) -> NerModel:
    return NerModel.create(LABELS, texts=[r.text for r in RECORDS], lossnet_kind=kind, seed=0, emb_dim=16, hidden=24, lpn_layers=layers)


def check(name: str, model: NerModel, result: object) -> None:
    want = PIN["cases"][name]
    got_history = [{k: v for k, v in row.items() if k != "seconds"} for row in result.history]  # type: ignore[attr-defined]
    assert [sorted(r) for r in got_history] == [sorted(r) for r in want["history"]]
    for g, w in zip(got_history, want["history"]):
        assert g == pytest.approx(w, rel=REL)
    assert (result.served, result.steps) == (want["served"], want["steps"])  # type: ignore[attr-defined]
    sums = {}
    for part in ("student", "teacher", "lossnet"):
        m = getattr(model, part)
        for k, v in ({} if m is None else m.state_dict()).items():
            sums[f"{part}.{k}"] = [float(v.double().sum()), float(v.double().abs().sum())]
    assert sorted(sums) == sorted(want["tensors"])
    for key, (s, a) in sums.items():
        want_sum, want_abs = want["tensors"][key]
        # a signed sum cancels towards 0, so its rounding error scales with the sum of magnitudes, not with itself
        assert s == pytest.approx(want_sum, abs=REL * want_abs + 1e-6), key
        assert a == pytest.approx(want_abs, rel=REL, abs=1e-6), key
    scores = [v for s in model.predict(PROBE) for v in (s.l_min, s.l_max, s.l_pred)]
    assert scores == pytest.approx([v for row in want["scores"] for v in row], rel=REL)


@pytest.fixture(scope="module")
def lasl_model() -> NerModel:
    cfg = TrainConfig(max_epochs=2, min_steps=12, dev_fraction=0.0, lossnet="lpn", lpn_layers=2, mean_teacher=True, lpn_thread=True, seed=3)
    result = train_lasl(TRAIN, UNLABELED, labels=LABELS, config=cfg, base=small("lpn", 2))
    check("lasl_lpn2_thread", result.model, result)
    return result.model


def test_a_lasl_run_trains_as_before(lasl_model: NerModel) -> None:
    assert lasl_model.teacher is not None and lasl_model.lpn_layers == 2


def test_fine_tuning_that_resizes_the_loss_net_trains_as_before(lasl_model: NerModel) -> None:
    cfg = TrainConfig(max_epochs=3, min_steps=9, lossnet="lpn", lpn_layers=0, mean_teacher=True, seed=4, patience=2)
    result = train_lasl(TRAIN, UNLABELED, labels=LABELS, config=cfg, base=lasl_model, dev=DEV)
    check("finetune_resize_lpn0_dev", result.model, result)


def test_a_learning_loss_run_trains_as_before() -> None:
    cfg = TrainConfig(max_epochs=2, min_steps=10, dev_fraction=0.0, lossnet="learning_loss", seed=5)
    result = train_lasl(TRAIN, UNLABELED, labels=LABELS, config=cfg, base=small("learning_loss", 2))
    check("learning_loss", result.model, result)
