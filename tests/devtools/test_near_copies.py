"""The templated corpus: near-copies keep every entity, look alike to the diversity's groups, and bad
arguments are usage errors."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lasl_backend.data import Entity, Record, read_jsonl, write_jsonl
from lasl_backend.devtools.near_copies import main, near_copy, templated_corpus
from lasl_backend.strategies.diversity import near_duplicate_groups, text_signature

TEXT = "患者2019年3月12日因反复咳嗽3周入院，既往高血压病史10年，口服硝苯地平30mg每日一次，否认糖尿病史。"


def _record(i: int = 0) -> Record:
    start = TEXT.index("高血压")
    drug = TEXT.index("硝苯地平")
    return Record(id=f"r{i}", text=TEXT, entities=[Entity(start, start + 3, "疾病和诊断"), Entity(drug, drug + 4, "药物")])


def test_a_near_copy_keeps_length_and_entities_and_changes_only_outside_them() -> None:
    rec = _record()
    copy = near_copy(rec, random.Random(1), edits=3)
    assert len(copy.text) == len(rec.text) and copy.entities == rec.entities and copy.id == "r0-copy"
    assert [copy.text[e.start:e.end] for e in copy.entities] == ["高血压", "硝苯地平"]
    changed = [i for i, (a, b) in enumerate(zip(rec.text, copy.text)) if a != b]
    assert changed  # the digits are redrawn and a few characters replaced
    inside = {i for e in rec.entities for i in range(e.start, e.end)}
    assert not inside & set(changed)


def test_near_copies_fall_into_their_originals_group() -> None:
    other = Record(id="x", text="腹部CT示肝脏多发低密度灶，考虑转移瘤可能，建议进一步增强检查明确诊断。" * 2)
    rows = templated_corpus([_record(), other], share=0.5, copies=3, seed=0)
    assert len(rows) == 5
    groups = near_duplicate_groups([text_signature(r.text) for r in rows])
    by_id = dict(zip((r.id for r in rows), groups))
    for r in rows[2:]:
        assert by_id[r.id] == by_id[r.id.rsplit("-copy", 1)[0]]
    assert by_id["r0"] != by_id["x"]


@pytest.mark.parametrize("share, copies", [(-0.1, 1), (1.5, 1), (0.5, -1)])
def test_bad_share_or_count_is_a_value_error(share: float, copies: int) -> None:
    with pytest.raises(ValueError):
        templated_corpus([_record()], share=share, copies=copies)


def test_the_command_writes_train_and_test_and_refuses_its_own_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl([_record(i) for i in range(4)], data / "train.jsonl")
    write_jsonl([_record(9)], data / "test.jsonl")
    assert main(["--data", str(data), "--out", str(tmp_path / "out"), "--share", "0.5", "--copies", "2"]) == 0
    assert len(read_jsonl(tmp_path / "out" / "train.jsonl")) == 4 + 2 * 2
    assert (tmp_path / "out" / "test.jsonl").read_bytes() == (data / "test.jsonl").read_bytes()
    with pytest.raises(SystemExit):
        main(["--data", str(data), "--out", str(data)])
    assert "must differ" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o2")])
    assert "no such file" in capsys.readouterr().err
