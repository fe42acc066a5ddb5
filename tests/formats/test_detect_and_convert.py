"""``--format auto`` tells each format from its content; ``lasl convert`` writes what was read as JSONL
that the strict reader reads back unchanged, and splits a train/test pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lasl_backend import cli
from lasl_backend.data import DataError, Entity, read_jsonl
from lasl_backend.formats import FORMATS, read_records
from lasl_backend.formats.convert import split_train_test
from lasl_backend.data import Record

TEXT = "患者因胸痛3天入院，行冠脉造影。"  # 胸痛 at [3, 5), 冠脉造影 at [11, 15)
GOLD = [Entity(3, 5, "症状"), Entity(11, 15, "检查")]


def _bio() -> str:
    tags = ["O"] * len(TEXT)
    tags[3], tags[4] = "B-症状", "I-症状"
    tags[11:15] = ["B-检查", "I-检查", "I-检查", "I-检查"]
    return "\n".join(f"{c} {t}" for c, t in zip(TEXT, tags)) + "\n"


SAMPLES = {
    "jsonl": json.dumps({"id": "r1", "text": TEXT, "entities": [{"start": 3, "end": 5, "label": "症状"},
                                                                  {"start": 11, "end": 15, "label": "检查"}]}, ensure_ascii=False),
    "label-studio": json.dumps([{"id": 1, "data": {"text": TEXT}, "annotations": [{"id": 1, "result": [
        {"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": 3, "end": 5, "labels": ["症状"]}},
        {"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": 11, "end": 15, "labels": ["检查"]}}]}]}],
        ensure_ascii=False),
    "spans": json.dumps({"text": TEXT, "entities": [{"start_idx": 3, "end_idx": 4, "type": "症状", "entity": "胸痛"},
                                                    {"start_idx": 11, "end_idx": 14, "type": "检查", "entity": "冠脉造影"}]},
                        ensure_ascii=False),
    "bio": _bio(),
}


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_each_format_is_told_from_its_content_and_reads_the_same_entities(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "in.data"
    path.write_text(SAMPLES[fmt], encoding="utf-8")
    loaded = read_records(path)
    assert loaded.format == fmt
    [rec] = loaded.records
    assert rec.text == TEXT and rec.entities == GOLD


def test_the_cli_offers_every_format() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["convert"]  # type: ignore[union-attr]
    action = next(a for a in sub._actions if a.dest == "format")
    assert tuple(action.choices) == FORMATS


@pytest.mark.parametrize("content", ["", "   \n", "患者因胸痛入院。\n既往体健。\n", '{"note": "x"}\n'])
def test_an_unknown_or_empty_file_asks_for_a_format(tmp_path: Path, content: str) -> None:
    path = tmp_path / "x.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=str(path)):
        read_records(path)


def test_a_missing_file_and_an_unknown_format_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_records(tmp_path / "nope.json")
    (tmp_path / "a.jsonl").write_text(SAMPLES["jsonl"], encoding="utf-8")
    with pytest.raises(DataError, match="unknown format"):
        read_records(tmp_path / "a.jsonl", "xml")


def test_the_wrong_format_forced_is_an_error_with_a_place(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(SAMPLES["jsonl"], encoding="utf-8")
    with pytest.raises(DataError, match=str(path)):
        read_records(path, "bio")


def test_convert_writes_jsonl_the_strict_reader_reads_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "export.json"
    src.write_text(SAMPLES["label-studio"], encoding="utf-8")
    out = tmp_path / "records.jsonl"
    assert cli.main(["convert", str(src), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "label-studio" and summary["records"] == 1 and summary["labels"] == {"症状": 1, "检查": 1}
    [rec] = read_jsonl(out)
    assert rec.id == "1" and rec.entities == GOLD


def test_convert_splits_a_train_test_pair_by_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [json.dumps({"id": f"r{i}", "text": TEXT, "entities": []}) for i in range(20)]
    src = tmp_path / "all.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert cli.main(["convert", str(src), "--out", str(tmp_path / "d"), "--test-share", "0.25", "--seed", "3"]) == 0
    train, test = read_jsonl(tmp_path / "d" / "train.jsonl"), read_jsonl(tmp_path / "d" / "test.jsonl")
    assert len(test) == 5 and len(train) == 15
    assert {r.id for r in train} | {r.id for r in test} == {f"r{i}" for i in range(20)}
    again = split_train_test(read_jsonl(src), 0.25, 3)
    assert [r.id for r in again[1]] == [r.id for r in test]
    assert [r.id for r in split_train_test(read_jsonl(src), 0.25, 4)[1]] != [r.id for r in test]


def test_convert_makes_repeated_ids_unique(tmp_path: Path) -> None:
    src = tmp_path / "dup.json"
    src.write_text(json.dumps([{"id": 1, "text": TEXT, "entities": []}, {"id": 1, "text": "胸闷", "entities": []}]), encoding="utf-8")
    assert cli.main(["convert", str(src), "--out", str(tmp_path / "o.jsonl")]) == 0
    assert [r.id for r in read_jsonl(tmp_path / "o.jsonl")] == ["1", "1#2"]


@pytest.mark.parametrize("share", ["0", "1", "1.5"])
def test_a_bad_split_is_a_usage_error(tmp_path: Path, share: str, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text(SAMPLES["jsonl"] + "\n" + SAMPLES["jsonl"].replace('"r1"', '"r2"'), encoding="utf-8")
    assert cli.main(["convert", str(src), "--out", str(tmp_path / "d"), "--test-share", share]) == 2
    assert "--test-share" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_one_record_cannot_be_split() -> None:
    with pytest.raises(DataError, match="cannot be split"):
        split_train_test([Record("a", TEXT)], 0.5, 0)


def test_what_was_left_out_is_said_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "nested.jsonl"
    src.write_text(json.dumps({"text": TEXT, "entities": [{"start_idx": 3, "end_idx": 4, "type": "症状", "entity": "胸痛"},
                                                        {"start_idx": 3, "end_idx": 3, "type": "部位", "entity": "胸"}]},
                              ensure_ascii=False) + "\n", encoding="utf-8")
    assert cli.main(["convert", str(src), "--out", str(tmp_path / "o.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "left out:" in err and "overlaps" in err
    assert read_jsonl(tmp_path / "o.jsonl")[0].entities == [Entity(3, 5, "症状")]  # the outer mention is kept


def test_a_broken_file_is_a_one_line_error_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text(SAMPLES["jsonl"] + "\n{not json\n", encoding="utf-8")
    assert cli.main(["convert", str(src), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert f"{src}:2" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_a_missing_label_config_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "export.json"
    src.write_text(SAMPLES["label-studio"], encoding="utf-8")
    assert cli.main(["convert", str(src), "--out", str(tmp_path / "o.jsonl"), "--label-config", str(tmp_path / "none.xml")]) == 2
    assert "label config" in capsys.readouterr().err


@pytest.mark.parametrize("target, split, message", [("adir", False, "a directory"), ("afile", True, "a file"),
                                                     ("afile/x.jsonl", False, "cannot write there")])
def test_a_target_of_the_wrong_kind_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     target: str, split: bool, message: str) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text(SAMPLES["jsonl"] + "\n" + SAMPLES["jsonl"].replace('"r1"', '"r2"'), encoding="utf-8")
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("keep me")
    argv = ["convert", str(src), "--out", str(tmp_path / target)] + (["--test-share", "0.5"] if split else [])
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "keep me" and not any((tmp_path / "adir").iterdir())
