"""NerModel: offsets on hard text, checkpoint round trip, corruption detection, data errors."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from lasl_backend.ner.checkpoint import CheckpointError
from lasl_backend.data import DataError, Entity, Record, read_jsonl
from lasl_backend.ner.model import NerModel
from lasl_backend.ner.training import TrainConfig, train_lasl

HARD_TEXTS = [
    "😀患者因2型糖尿病10年入院，予二甲双胍口服。",
    "𠀀𠀁右肺占位 4*2.8*2.5CM，HbA1c 7.2%\u3000复查。\r\n建议MRI检查😀",
    "",
    "糖" * 450 + "。" + "尿" * 300,  # longer than one chunk
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from lasl_backend.devtools.synthetic import make_records

    recs = make_records(24, seed=1, mean_chars=60, max_chars=120)
    cfg = TrainConfig(max_epochs=2, min_steps=8, dev_fraction=0.0, lossnet="lpn", mean_teacher=True, seed=0)
    return train_lasl(recs, [t for t in HARD_TEXTS if t], config=cfg).model


def test_predictions_keep_code_point_offsets(tiny_model):
    scores = tiny_model.predict(HARD_TEXTS)
    assert len(scores) == len(HARD_TEXTS)
    for text, s in zip(HARD_TEXTS, scores):
        assert s.n_chars == len(text)
        for e in s.entities:
            assert text[e.start : e.end] == e.text
            assert 0 <= e.start < e.end <= len(text)
            assert 0.0 <= e.score <= 1.0 + 1e-9
            assert e.label in tiny_model.labels
        assert s.l_min >= 0 and s.l_max >= s.l_min
        assert 0.0 <= s.p_max <= 1.0
        assert s.l_pred is not None
    assert scores[2].entities == [] and scores[2].l_min == 0.0


def test_record_scores_sum_over_chunks(tiny_model):
    long = HARD_TEXTS[3]
    whole = tiny_model.predict([long])[0]
    parts = tiny_model.predict([long[:451], long[451:]])  # the chunker cuts after the 。 at 450
    assert whole.l_min == pytest.approx(parts[0].l_min + parts[1].l_min, rel=1e-9)
    assert whole.l_max == pytest.approx(parts[0].l_max + parts[1].l_max, rel=1e-9)
    assert whole.l_pred == pytest.approx(parts[0].l_pred + parts[1].l_pred, rel=1e-6)
    # 451 characters need 3 chunks of at most 200, 300 need 2
    assert (parts[0].n_chunks, parts[1].n_chunks, whole.n_chunks) == (3, 2, 5)


def test_batch_composition_does_not_change_a_record(tiny_model):
    alone = tiny_model.predict([HARD_TEXTS[1]])[0]
    batched = tiny_model.predict(HARD_TEXTS)[1]
    assert alone.entities == batched.entities
    assert alone.l_min == pytest.approx(batched.l_min, abs=1e-6)


def test_reload_predicts_exactly_the_same(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "ckpt")
    again = NerModel.load(tmp_path / "ckpt")
    a, b = tiny_model.predict(HARD_TEXTS), again.predict(HARD_TEXTS)
    assert [x.entities for x in a] == [x.entities for x in b]
    assert [x.l_min for x in a] == [x.l_min for x in b]
    assert [x.l_pred for x in a] == [x.l_pred for x in b]
    assert again.serve == tiny_model.serve and again.teacher is not None
    # overwriting a checkpoint is atomic and leaves no temporary directories behind
    tiny_model.save(tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_corrupt_or_partial_checkpoint_is_refused(tiny_model, tmp_path):
    d = tmp_path / "c"
    tiny_model.save(d)
    w = d / "weights.pt"
    w.write_bytes(w.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="does not match"):
        NerModel.load(d)
    (d / "config.json").unlink()
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        NerModel.load(d)


def test_checkpoint_weights_are_plain_tensors(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "c")
    weights = torch.load(tmp_path / "c" / "weights.pt", weights_only=True)
    assert set(weights) == {"student", "teacher", "lossnet"}
    cfg = json.loads((tmp_path / "c" / "config.json").read_text())
    assert cfg["labels"] == tiny_model.labels and len(cfg["weights_sha256"]) == 64


def test_extend_vocab_keeps_old_ids(tiny_model):
    m = tiny_model.clone()
    old = m.encode("糖尿病")
    added = m.extend_vocab(["鑫龘"])
    assert added == 2 and m.encode("糖尿病") == old
    assert m.student.encoder.embedding.num_embeddings == len(m.vocab)
    m.predict(["鑫龘糖尿病"])  # new rows are usable


@pytest.mark.parametrize("line, msg", [
    ("not json", "not valid JSON"),
    ('{"text": 3}', "'text' must be a string"),
    ('{"text": "ab", "entities": [{"start": 1, "end": 5, "label": "X"}]}', "outside the text"),
    ('{"text": "abcd", "entities": [{"start": 0, "end": 2, "label": "X"}, {"start": 1, "end": 3, "label": "X"}]}', "overlaps"),
    ('{"text": "ab", "entities": [{"start": "a", "end": 1, "label": "X"}]}', "integer"),
    ("[1, 2]", "JSON object"),
])
def test_bad_jsonl_is_a_clear_error(tmp_path, line, msg):
    p = tmp_path / "bad.jsonl"
    p.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=msg):
        read_jsonl(p)


def test_jsonl_round_trip(tmp_path):
    from lasl_backend.data import write_jsonl

    recs = [Record("a", "😀糖尿病", [Entity(1, 4, "疾病和诊断")])]
    write_jsonl(recs, tmp_path / "x.jsonl")
    assert read_jsonl(tmp_path / "x.jsonl") == recs


def test_parallel_workers_give_identical_results(tiny_model):
    texts = HARD_TEXTS * 6
    one = tiny_model.predict(texts, max_batch=2)
    two = tiny_model.predict(texts, max_batch=2, workers=2)
    assert [s.entities for s in one] == [s.entities for s in two]
    assert [s.l_min for s in one] == pytest.approx([s.l_min for s in two], abs=1e-9)
    assert [s.l_pred for s in one] == pytest.approx([s.l_pred for s in two], abs=1e-6)


def test_one_batch_with_workers_runs_directions_in_parallel_and_agrees(tiny_model, monkeypatch):
    """A single batch (the one-record /predict) with workers=2 runs each Bi-LSTM's backward direction on
    the helper pool; results equal the serial ones."""
    from lasl_backend.ner import encoders

    calls = []
    real = encoders.BiLSTM._backward_no_grad

    def spy(self, x, lengths):
        calls.append(threading.current_thread().name)
        return real(self, x, lengths)

    monkeypatch.setattr(encoders.BiLSTM, "_backward_no_grad", spy)
    text = HARD_TEXTS[0] * 3
    one = tiny_model.predict([text])
    assert calls == []
    two = tiny_model.predict([text], workers=2)
    assert calls and all(n.startswith("bilstm-bwd") for n in calls)
    assert one[0].entities == two[0].entities
    assert one[0].l_min == pytest.approx(two[0].l_min, abs=1e-9)
    assert one[0].l_pred == pytest.approx(two[0].l_pred, abs=1e-6)


def test_lpn_size_is_saved_and_a_changed_setting_rebuilds_the_loss_net(tiny_model, tmp_path):
    from lasl_backend.devtools.synthetic import make_records

    assert tiny_model.lpn_layers == 2  # the paper's serial encoder is the default
    recs = make_records(12, seed=3, mean_chars=60, max_chars=120)
    cfg = TrainConfig(max_epochs=1, min_steps=4, dev_fraction=0.0, lossnet="lpn", mean_teacher=True, seed=0, lpn_layers=0)
    shared = train_lasl(recs, [], config=cfg, base=tiny_model).model
    assert shared.lpn_layers == 0 and len(shared.lossnet.layers) == 0  # type: ignore[union-attr]
    assert tiny_model.lpn_layers == 2  # the base (the serving model) is untouched
    shared.save(tmp_path / "shared")
    again = NerModel.load(tmp_path / "shared")
    assert again.lpn_layers == 0
    assert [x.l_pred for x in again.predict(HARD_TEXTS)] == [x.l_pred for x in shared.predict(HARD_TEXTS)]


def test_checkpoint_from_before_the_lpn_size_setting_loads_as_two_layers(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "old")
    cfg_path = tmp_path / "old" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["lpn_layers"]  # written by an earlier version
    cfg_path.write_text(json.dumps(cfg))
    again = NerModel.load(tmp_path / "old")
    assert again.lpn_layers == 2
    assert [x.l_pred for x in again.predict(HARD_TEXTS)] == [x.l_pred for x in tiny_model.predict(HARD_TEXTS)]
