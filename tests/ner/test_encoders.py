"""Encoders: the char Bi-LSTM and the optional pretrained transformer, tested with a tiny BERT built
offline from a vocab file (``tiny_bert`` in conftest.py: nothing is downloaded)."""

from __future__ import annotations

import pytest
import torch

from lasl_backend.data import Entity, Record
from lasl_backend.ner.encoders import BiLSTM
from lasl_backend.ner.model import NerModel
from lasl_backend.ner.training import TrainConfig, train_lasl


def test_bilstm_ignores_padding():
    torch.manual_seed(0)
    lstm = BiLSTM(4, 3).eval()
    x = torch.randn(1, 5, 4)
    alone = lstm(x, torch.ones(1, 5, dtype=torch.bool))
    padded = torch.cat([x, torch.randn(1, 3, 4)], 1)
    mask = torch.tensor([[True] * 5 + [False] * 3])
    out = lstm(padded, mask)
    assert torch.allclose(out[:, :5], alone, atol=1e-6) and torch.all(out[:, 5:] == 0)


def test_transformer_encoder_one_position_per_char_and_windows(tiny_bert, tmp_path):
    text = "患者因糖尿病 HbA1c 入院😀" + "予二甲双胍口服，" * 12  # > 38-char window: overlapping windows
    recs = [Record("a", text, [Entity(3, 6, "DIS")]), Record("b", "建议检查血常规", [Entity(4, 7, "LAB")])]
    m = NerModel.create(["DIS", "LAB"], encoder=str(tiny_bert))
    enc = m.student.encoder
    assert enc.window == 38
    ids = m.encode(text)
    assert len(ids) == len(text)  # Latin run and space are not merged or dropped
    assert ids[text.index(" ")] == enc.tvocab.space_id
    assert ids[text.index("H")] == enc.tvocab.vocab["h"]  # lower-cased like the tokenizer would
    res = train_lasl(recs, config=TrainConfig(max_epochs=1, min_steps=2, dev_fraction=0.0, encoder=str(tiny_bert)))
    before = res.model.predict([text])[0]
    assert before.n_chars == len(text)
    for e in before.entities:
        assert text[e.start : e.end] == e.text
    res.model.save(tmp_path / "ckpt")
    again = NerModel.load(tmp_path / "ckpt")  # rebuilt from the checkpoint's own encoder/ copy
    after = again.predict([text])[0]
    assert after.entities == before.entities and after.l_min == pytest.approx(before.l_min, abs=1e-9)


def test_transformer_windows_cover_every_position(tiny_bert):
    m = NerModel.create(["DIS"], encoder=str(tiny_bert))
    enc = m.student.encoder.eval()
    ids = torch.tensor([m.encode("患者因糖尿病入院" * 15)])
    mask = torch.ones_like(ids, dtype=torch.bool)
    h = enc(ids, mask)[0]
    assert h.shape[1] == ids.shape[1] and bool((h.abs().sum(-1) > 0).all())
