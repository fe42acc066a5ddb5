"""The BIO reader: spans decoded from BIO, BIOES and BMES tags, records split at blank lines, errors
that name the file and line, and the auto-detection probe."""

from __future__ import annotations

from pathlib import Path

import pytest

from lasl_backend.data import DataError, Entity
from lasl_backend.formats.bio import looks_like_bio, read
from lasl_backend.formats.reading import ReadOptions


def _write(tmp_path: Path, body: str, name: str = "corpus.bio") -> Path:
    p = tmp_path / name
    p.write_text(body, encoding="utf-8")
    return p


def _lines(chars: str | list[str], tags: list[str], sep: str = " ") -> str:
    assert len(chars) == len(tags)
    return "".join(f"{c}{sep}{t}\n" for c, t in zip(chars, tags))


def _spans(loaded, i: int = 0) -> list[tuple[int, int, str]]:
    return [(e.start, e.end, e.label) for e in loaded.records[i].entities]


def test_bio_decodes_spans(tmp_path: Path) -> None:
    body = _lines("患者糖尿病伴肾病", ["O", "O", "B-疾病和诊断", "I-疾病和诊断", "I-疾病和诊断", "O", "B-疾病和诊断", "I-疾病和诊断"])
    loaded = read(_write(tmp_path, body), ReadOptions())
    assert loaded.format == "bio" and loaded.skipped == [] and loaded.notes == []
    rec = loaded.records[0]
    assert rec.text == "患者糖尿病伴肾病"
    assert _spans(loaded) == [(2, 5, "疾病和诊断"), (6, 8, "疾病和诊断")]
    assert rec.id == "corpus.bio:1"


def test_bioes_with_single_and_adjacent_entities(tmp_path: Path) -> None:
    tags = ["B-药物", "M-药物", "M-药物", "E-药物", "S-药物", "B-解剖部位", "E-解剖部位", "B-解剖部位", "E-解剖部位"]
    loaded = read(_write(tmp_path, _lines("二甲双胍碘右肺左肺", tags)), ReadOptions())
    assert _spans(loaded) == [(0, 4, "药物"), (4, 5, "药物"), (5, 7, "解剖部位"), (7, 9, "解剖部位")]


def test_bmes_and_bilou_aliases_and_underscore_separator(tmp_path: Path) -> None:
    tags = ["B_手术", "M_手术", "E_手术", "O", "U-药物", "B-影像检查", "L-影像检查"]
    loaded = read(_write(tmp_path, _lines("切除术后碘CT", tags, sep="\t")), ReadOptions())
    assert _spans(loaded) == [(0, 3, "手术"), (4, 5, "药物"), (5, 7, "影像检查")]
    assert loaded.notes == []


def test_a_b_right_after_an_open_entity_of_the_same_label_starts_a_new_one(tmp_path: Path) -> None:
    tags = ["B-药物", "I-药物", "B-药物", "I-药物"]
    loaded = read(_write(tmp_path, _lines("布洛芬片", tags)), ReadOptions())
    assert _spans(loaded) == [(0, 2, "药物"), (2, 4, "药物")]


def test_offsets_are_code_points_after_an_emoji_and_an_ext_b_char(tmp_path: Path) -> None:
    chars = ["😷", "𠀀", "肺", "炎", "右", "肺"]
    tags = ["O", "S-解剖部位", "B-疾病和诊断", "E-疾病和诊断", "B-解剖部位", "I-解剖部位"]
    loaded = read(_write(tmp_path, _lines(chars, tags)), ReadOptions())
    rec = loaded.records[0]
    assert len(rec.text) == 6
    assert _spans(loaded) == [(1, 2, "解剖部位"), (2, 4, "疾病和诊断"), (4, 6, "解剖部位")]
    assert [rec.text[e.start : e.end] for e in rec.entities] == ["𠀀", "肺炎", "右肺"]


@pytest.mark.parametrize("tail", ["", "\n", "\n\n  \n"])
def test_records_split_at_blank_lines(tmp_path: Path, tail: str) -> None:
    first = _lines("查血常规", ["O", "B-实验室检验", "I-实验室检验", "I-实验室检验"])
    second = _lines("服药", ["O", "O"])
    third = _lines("头痛", ["B-疾病和诊断", "E-疾病和诊断"])
    body = first + "\n" + second + "\n\n\t\n" + third + tail
    loaded = read(_write(tmp_path, body), ReadOptions())
    assert [r.text for r in loaded.records] == ["查血常规", "服药", "头痛"]
    assert [r.id for r in loaded.records] == ["corpus.bio:1", "corpus.bio:6", "corpus.bio:11"]
    assert _spans(loaded, 0) == [(1, 4, "实验室检验")]
    assert _spans(loaded, 1) == []
    assert loaded.records[2].entities == [Entity(0, 2, "疾病和诊断")]


def test_an_entity_open_at_the_end_of_a_record_is_closed_there(tmp_path: Path) -> None:
    body = _lines("患胃癌", ["O", "B-疾病和诊断", "I-疾病和诊断"]) + "\n" + _lines("癌", ["O"])
    loaded = read(_write(tmp_path, body), ReadOptions())
    assert _spans(loaded, 0) == [(1, 3, "疾病和诊断")]
    assert _spans(loaded, 1) == []


def test_i_without_b_starts_an_entity_and_is_noted(tmp_path: Path) -> None:
    tags = ["O", "I-疾病和诊断", "I-疾病和诊断", "B-药物", "I-解剖部位", "E-药物"]
    loaded = read(_write(tmp_path, _lines("患高压碘肺药", tags)), ReadOptions())
    assert _spans(loaded) == [(1, 3, "疾病和诊断"), (3, 4, "药物"), (4, 5, "解剖部位"), (5, 6, "药物")]
    assert len(loaded.notes) == 1
    assert loaded.notes[0].startswith("3 I-/M-/E- tags started an entity without a B-")


def test_bad_tag_names_file_and_line(tmp_path: Path) -> None:
    body = _lines("患者", ["O", "O"]) + "\n" + _lines("发热", ["B-疾病和诊断", "b-疾病和诊断"])
    p = _write(tmp_path, body)
    with pytest.raises(DataError, match=rf"{p}:5: tag 'b-疾病和诊断' is not O or B-/I-/M-/E-/S-<label>"):
        read(p, ReadOptions())


@pytest.mark.parametrize("tag", ["B-", "X-药物", "B药物", "o"])
def test_malformed_tags_are_rejected(tmp_path: Path, tag: str) -> None:
    p = _write(tmp_path, f"碘 {tag}\n")
    with pytest.raises(DataError, match=rf"{p}:1: tag "):
        read(p, ReadOptions())


def test_one_field_line_names_file_and_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "患 O\n者\n")
    with pytest.raises(DataError, match=rf"{p}:2: expected a token and a tag"):
        read(p, ReadOptions())


def test_three_and_four_column_lines_take_first_and_last_field(tmp_path: Path) -> None:
    body = "患 O X O\n肺\tNN\tB-解剖部位\n部 NN x I-解剖部位\n"
    loaded = read(_write(tmp_path, body), ReadOptions())
    assert loaded.records[0].text == "患肺部"
    assert _spans(loaded) == [(1, 3, "解剖部位")]


def test_multi_character_tokens_are_joined_with_a_note_and_bom_is_ignored(tmp_path: Path) -> None:
    p = tmp_path / "words.bio"
    p.write_text("患者 O\n糖尿病 B-疾病和诊断\n史 O\n", encoding="utf-8-sig")
    loaded = read(p, ReadOptions())
    assert loaded.records[0].text == "患者糖尿病史"
    assert _spans(loaded) == [(2, 5, "疾病和诊断")]
    assert len(loaded.notes) == 1 and "multi-character tokens were joined without spaces" in loaded.notes[0]


@pytest.mark.parametrize("body", ["", "\n\n  \n"])
def test_a_file_without_tokens_gives_no_records(tmp_path: Path, body: str) -> None:
    loaded = read(_write(tmp_path, body), ReadOptions())
    assert loaded.records == [] and loaded.format == "bio"


def test_looks_like_bio() -> None:
    sample = ["患 O\n", "糖 B-疾病和诊断\n", "尿\tI-疾病和诊断\n", "\n", "碘 S_药物\n", "肺 NN L-解剖部位\n"]
    assert looks_like_bio(sample)
    assert not looks_like_bio(['{"text": "患者糖尿病", "entities": [{"start": 2, "end": 5, "label": "疾病和诊断"}]}\n'])
    assert not looks_like_bio(["患者因反复咳嗽三天入院，查胸部CT示右肺占位。\n", "予阿莫西林口服。\n"])
    assert not looks_like_bio(["患 O\n", "者 Person\n"])  # one line that is no tag is enough
    assert not looks_like_bio(["\n", "  \n"])
