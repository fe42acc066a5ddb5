"""Shared fixtures. Tests run on CPU with one thread each, so the suite behaves the same on 2 cores."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LABELS = ["疾病和诊断", "影像检查", "实验室检验", "手术", "药物", "解剖部位"]


@pytest.fixture
def labels() -> list[str]:
    return list(LABELS)


TINY_BERT_CHARS = list("患者因糖尿病入院予二甲双胍口服右肺占位建议检查血常规复查阿司匹林")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    d = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused1]"] + TINY_BERT_CHARS + list("abcdefghijklmnopqrstuvwxyz0123456789")
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = transformers.BertTokenizerFast.from_pretrained(str(d))
    assert tok.convert_tokens_to_ids("患") == vocab.index("患")  # the vocab file really was read
    cfg = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=37, max_position_embeddings=40)
    torch.manual_seed(0)
    transformers.BertModel(cfg).save_pretrained(str(d))
    tok.save_pretrained(str(d))
    return d
