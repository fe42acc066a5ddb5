"""The variable-length variant: every record's text and entities survive the join, in a shuffled order."""

from __future__ import annotations

from pathlib import Path

import pytest

from lasl_backend.data import Entity, Record, read_jsonl, write_jsonl
from lasl_backend.devtools.merged_records import join_records, main, merged_corpus

RECORDS = [Record(f"r{i}", f"患者{i}号胸痛😀入院。", [Entity(len(f"患者{i}号"), len(f"患者{i}号") + 2, "症状")]) for i in range(30)]


def test_a_joined_document_keeps_each_entity_text() -> None:
    doc = join_records(RECORDS[:3], "d")
    assert doc.text == "\n".join(r.text for r in RECORDS[:3])
    assert [doc.text[e.start:e.end] for e in doc.entities] == ["胸痛"] * 3


def test_the_corpus_holds_every_record_once_in_groups_up_to_the_maximum() -> None:
    docs = merged_corpus(RECORDS, max_group=4, seed=1)
    ids = [i for d in docs for i in d.id.split("+")]
    assert sorted(ids) == sorted(r.id for r in RECORDS) and ids != [r.id for r in RECORDS]
    sizes = {len(d.id.split("+")) for d in docs}
    assert sizes <= {1, 2, 3, 4} and len(sizes) > 1
    assert sum(len(d.entities) for d in docs) == len(RECORDS)
    assert merged_corpus(RECORDS, 4, seed=1) == docs and merged_corpus(RECORDS, 4, seed=2) != docs
    assert all(len(d.id.split("+")) == 1 for d in merged_corpus(RECORDS, 1))


def test_the_command_writes_train_and_copies_test(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    write_jsonl(RECORDS, src / "train.jsonl")
    write_jsonl(RECORDS[:2], src / "test.jsonl")
    assert main(["--data", str(src), "--out", str(out)]) == 0
    assert sum(len(d.entities) for d in read_jsonl(out / "train.jsonl")) == 30
    assert (out / "test.jsonl").read_text() == (src / "test.jsonl").read_text()
    with pytest.raises(SystemExit):
        main(["--data", str(src), "--out", str(src)])
    with pytest.raises(SystemExit):
        main(["--data", str(src), "--out", str(out), "--max-group", "0"])
