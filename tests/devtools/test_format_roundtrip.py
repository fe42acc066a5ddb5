"""Every foreign shape the round-trip tool writes reads back, told apart by content, as the same records."""

from __future__ import annotations

from pathlib import Path

import pytest

from lasl_backend.data import Entity, Record
from lasl_backend.devtools.format_roundtrip import SHAPES
from lasl_backend.formats import read_records

RECORDS = [
    Record("a", "患者因胸痛3天入院，行冠脉造影。", [Entity(3, 5, "症状"), Entity(11, 15, "检查")]),
    Record("b", "既往体健，否认高血压病史。", [Entity(7, 10, "疾病")]),
    Record("c", "复查血常规未见异常。", []),
    Record("d", "😷𠀀左肺癌术后，口服吉非替尼。", [Entity(2, 5, "疾病"), Entity(10, 14, "药物")]),
]
EXPECTED = {"label-studio JSON": "label-studio", "label-studio JSON-MIN": "label-studio", "CMeEE": "spans",
            "Yidu-S4K": "spans", "CLUENER": "spans", "BIO": "bio"}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_shape_reads_back_unchanged(tmp_path: Path, shape: str) -> None:
    path = tmp_path / "f.data"
    path.write_text(SHAPES[shape](RECORDS), encoding="utf-8")
    loaded = read_records(path)
    assert loaded.format == EXPECTED[shape]
    assert [(r.text, r.entities) for r in loaded.records] == [(r.text, r.entities) for r in RECORDS]
    assert loaded.skipped == []
