"""Models on a chosen device (``LASL_DEVICE``, ``--device``): every test runs on the CPU and, where torch
sees a CUDA GPU, again on it. On the GPU the float32 network work differs from the CPU's in the last bits,
so results are compared with tolerances there; the float64 CRF kernel always runs on the CPU."""

from __future__ import annotations

import json

import pytest
import torch

from lasl_backend.cli import main
from lasl_backend.data import Entity, Record, write_jsonl
from lasl_backend.ner.device import resolve_device
from lasl_backend.ner.model import NerModel
from lasl_backend.devtools.synthetic import make_records
from lasl_backend.ner.training import TrainConfig, TrainingError, train_lasl

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
EMOJI_TEXT = "患者因“2型糖尿病”😀入院，𠀀予二甲双胍口服。" * 3


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return make_records(24, seed=5, mean_chars=120, max_chars=260)


def _lasl_config(device: str, **kw) -> TrainConfig:
    base = dict(max_epochs=2, min_steps=6, dev_fraction=0.0, mean_teacher=True, lossnet="lpn", lpn_thread=True, seed=3, device=device)
    base.update(kw)
    return TrainConfig(**base)


def _assert_same_scores(a, b, tol: float) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.l_min == pytest.approx(y.l_min, rel=tol, abs=tol)
        assert x.l_max == pytest.approx(y.l_max, rel=tol, abs=tol)
        assert (x.l_pred is None) == (y.l_pred is None)
        if x.l_pred is not None:
            assert x.l_pred == pytest.approx(y.l_pred, rel=tol, abs=tol)
        assert [(e.start, e.end, e.label) for e in x.entities] == [(e.start, e.end, e.label) for e in y.entities]


def test_resolve_device_names_what_it_cannot_use() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="expected cpu, cuda"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="not valid"):
        resolve_device("cuda:x")
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="only"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            resolve_device("cuda")


@pytest.mark.parametrize("device", DEVICES)
def test_training_runs_where_asked_and_the_checkpoint_loads_anywhere(records, device, tmp_path) -> None:
    pool = [r.text for r in make_records(8, seed=9, mean_chars=120, max_chars=260)]
    res = train_lasl(records, pool, config=_lasl_config(device))
    model = res.model
    assert model.device.type == device
    assert all(p.device.type == device for m in model.modules() for p in m.parameters())
    assert res.steps >= 6

    # fine-tuning on text with characters the model has not seen grows the embedding on the device
    before = len(model.vocab)
    tuned = train_lasl(records, pool + [EMOJI_TEXT], config=_lasl_config(device, min_steps=2), base=model).model
    assert len(tuned.vocab) > before and tuned.student.encoder.embedding.weight.device.type == device

    scores = tuned.predict([EMOJI_TEXT] + pool, return_marginals=True, workers=2)
    for e in scores[0].entities:
        assert EMOJI_TEXT[e.start : e.end] == e.text
    assert scores[0].marginals is not None and scores[0].marginals.shape[0] == len(EMOJI_TEXT)

    tuned.save(tmp_path / "ckpt")
    on_cpu = NerModel.load(tmp_path / "ckpt", device="cpu")
    assert on_cpu.device.type == "cpu"
    _assert_same_scores(on_cpu.predict([EMOJI_TEXT] + pool), scores, tol=1e-4 if device != "cpu" else 1e-12)
    again = NerModel.load(tmp_path / "ckpt", device=device)
    assert again.device.type == device
    _assert_same_scores(again.predict([EMOJI_TEXT] + pool), scores, tol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_a_model_moved_to_the_device_scores_like_the_cpu_one(records, device) -> None:
    res = train_lasl(records, config=TrainConfig(max_epochs=1, min_steps=4, dev_fraction=0.0, lossnet="lpn", seed=1))
    cpu_model = res.model
    moved = cpu_model.clone().to(device)
    assert moved.device.type == device and cpu_model.device.type == "cpu"
    texts = [r.text for r in records[:6]] + [EMOJI_TEXT]
    _assert_same_scores(moved.predict(texts), cpu_model.predict(texts), tol=1e-4 if device != "cpu" else 1e-12)
    one = moved.predict([texts[0]], workers=2)[0]  # the /predict path (both directions at once)
    _assert_same_scores([one], cpu_model.predict([texts[0]]), tol=1e-4 if device != "cpu" else 1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_transformer_encoder_on_the_device(tiny_bert, device) -> None:
    text = "患者因糖尿病 HbA1c 入院😀" + "予二甲双胍口服，" * 12  # longer than the 38-position window
    recs = [Record("a", text, [Entity(3, 6, "DIS")]), Record("b", "建议检查血常规", [Entity(4, 7, "LAB")])]
    cfg = TrainConfig(max_epochs=1, min_steps=2, dev_fraction=0.0, encoder=str(tiny_bert), lossnet="lpn", device=device)
    model = train_lasl(recs, config=cfg).model
    assert model.device.type == device
    got = model.predict([text])[0]
    on_cpu = model.clone().to("cpu").predict([text])[0]
    _assert_same_scores([got], [on_cpu], tol=1e-4 if device != "cpu" else 1e-12)


def test_training_on_a_missing_device_fails_before_it_starts(records) -> None:
    with pytest.raises(TrainingError, match="expected cpu, cuda"):
        train_lasl(records, config=TrainConfig(device="tpu"))


@needs_no_cuda
def test_cli_says_when_the_gpu_is_not_there(records, tmp_path, capsys) -> None:
    write_jsonl(records, tmp_path / "train.jsonl")
    write_jsonl(records[:4], tmp_path / "test.jsonl")
    assert main(["train", "--train", str(tmp_path / "train.jsonl"), "--out", str(tmp_path / "m"), "--device", "cuda"]) == 2
    assert "sees no CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    assert main(["simulate", "--data", str(tmp_path), "--out", str(tmp_path / "sim"), "--device", "cuda"]) == 2
    assert "sees no CUDA GPU" in capsys.readouterr().err


def test_a_simulation_directory_holds_one_device_type(records, tmp_path, capsys) -> None:
    """CPU and GPU runs are not bitwise alike: one --out never mixes them (an old record counts as CPU)."""
    write_jsonl(records[:20], tmp_path / "train.jsonl")
    write_jsonl(records[20:], tmp_path / "test.jsonl")
    out = tmp_path / "sim"
    argv = ["simulate", "--data", str(tmp_path), "--strategies", "random", "--seeds", "0", "--init", "0.1", "--step", "0.1",
            "--rounds", "0", "--out", str(out), "--first-round-steps", "2", "--max-test", "2"]
    assert main(argv) == 0
    settings = json.loads((out / "settings.json").read_text())
    assert settings["device"] == "cpu"
    settings["device"] = "cuda:1"
    (out / "settings.json").write_text(json.dumps(settings))
    assert main(argv) == 2
    assert "other settings" in capsys.readouterr().err
    del settings["device"]  # recorded before the setting existed
    (out / "settings.json").write_text(json.dumps(settings))
    assert main(argv) == 0
