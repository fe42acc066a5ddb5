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
