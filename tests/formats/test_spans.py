"""The span-list reader: Yidu-S4K, CMeEE, CLUENER and list-shaped spans, JSON arrays and JSONL."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lasl_backend.data import DataError, Entity
from lasl_backend.formats import ReadOptions
from lasl_backend.formats.spans import looks_like_spans, read

AUTO = ReadOptions()


def jsonl(tmp_path: Path, *objs: object, name: str = "data.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs), encoding="utf-8")
    return p


def array(tmp_path: Path, *objs: object, name: str = "data.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(list(objs), ensure_ascii=False, indent=2), encoding="utf-8")
    return p


def mentions(loaded) -> list[tuple[str, str]]:
    return [(r.text[e.start : e.end], e.label) for r in loaded.records for e in r.entities]


# ---------------------------------------------------------------- shapes and end conventions


def test_yidu_s4k_raw_records_keep_exclusive_ends(tmp_path: Path) -> None:
    text = "2型糖尿病，行腹部CT检查。"
    rec = {"originalText": text, "entities": [
        {"label_type": "疾病和诊断", "start_pos": 0, "end_pos": 5, "overlap": 0},
        {"label_type": "影像检查", "start_pos": 7, "end_pos": 11, "overlap": 0},
    ]}
    loaded = read(jsonl(tmp_path, rec), AUTO)
    assert loaded.format == "spans" and loaded.skipped == []
    assert mentions(loaded) == [("2型糖尿病", "疾病和诊断"), ("腹部CT", "影像检查")]
    assert loaded.notes == ["span ends read as exclusive (no span carries a mention to check them on)"]


def test_cmeee_inclusive_ends_are_detected_from_the_mentions(tmp_path: Path) -> None:
    recs = [
        {"text": "患者有高血压病史", "entities": [{"start_idx": 3, "end_idx": 5, "type": "dis", "entity": "高血压"}]},
        {"text": "口服阿司匹林肠溶片", "entities": [{"start_idx": 2, "end_idx": 5, "type": "dru", "entity": "阿司匹林"}]},
    ]
    loaded = read(jsonl(tmp_path, *recs), AUTO)
    assert mentions(loaded) == [("高血压", "dis"), ("阿司匹林", "dru")]
    assert loaded.records[0].entities == [Entity(3, 6, "dis")]
    assert loaded.notes == ["span ends read as inclusive (checked on 2 spans with a mention)"]
    assert loaded.skipped == []


def test_auto_takes_the_majority_and_leaves_out_the_record_that_disagrees(tmp_path: Path) -> None:
    text = "右肺上叶结节，考虑肺癌"
    fits = {"text": text, "entities": [
        {"start": 0, "end": 4, "label": "解剖部位", "text": "右肺上叶"},
        {"start": 9, "end": 11, "label": "疾病和诊断", "text": "肺癌"},
    ]}
    odd = {"text": text, "entities": [
        {"start": 0, "end": 4, "label": "解剖部位", "text": "右肺上叶"},
        {"start": 4, "end": 5, "label": "疾病和诊断", "text": "结节"},  # inclusive: the odd one out
    ]}
    loaded = read(jsonl(tmp_path, fits, odd), AUTO)
    assert loaded.notes == ["span ends read as exclusive (checked on 4 spans with a mention)"]
    assert mentions(loaded) == [("右肺上叶", "解剖部位"), ("肺癌", "疾病和诊断")]
    assert len(loaded.skipped) == 1
    assert loaded.skipped[0].startswith(f"{tmp_path / 'data.jsonl'}:2: record left out: 1 span(s) do not fit its text")
    assert loaded.skipped[0].endswith(f"the first: {tmp_path / 'data.jsonl'}:2: span 2 [4, 5, '疾病和诊断']: mention '结节' "
                                      "does not match the text there ('结', exclusive ends)")


def test_forced_inclusive_ends_without_mentions(tmp_path: Path) -> None:
    rec = {"text": "诊断为慢性胃炎", "spans": [{"begin": 3, "end_offset": 6, "category": "疾病"}]}
    loaded = read(jsonl(tmp_path, rec), ReadOptions(end="inclusive"))
    assert mentions(loaded) == [("慢性胃炎", "疾病")]
    assert loaded.notes == []  # told, not decided
    assert read(jsonl(tmp_path, rec), ReadOptions(end="exclusive")).records[0].entities == [Entity(3, 6, "疾病")]


def test_cluener_label_dict(tmp_path: Path) -> None:
    text = "糖尿病患者服用二甲双胍，糖尿病控制可"
    rec = {"text": text, "label": {"疾病": {"糖尿病": [[0, 2], [12, 14]]}, "药物": {"二甲双胍": [[7, 10]]}}}
    loaded = read(jsonl(tmp_path, rec), AUTO)
    assert loaded.records[0].entities == [Entity(0, 3, "疾病"), Entity(7, 11, "药物"), Entity(12, 15, "疾病")]
    assert loaded.notes == ["span ends read as inclusive (checked on 3 spans with a mention)"]
    assert loaded.skipped == []


def test_list_shaped_spans_with_and_without_a_mention(tmp_path: Path) -> None:
    rec = {"sentence": "头颅MRI未见异常，血常规正常", "ner": [[0, 5, "影像检查", "头颅MRI"], [10, 13, "实验室检验"]]}
    loaded = read(jsonl(tmp_path, rec), AUTO)
    assert mentions(loaded) == [("头颅MRI", "影像检查"), ("血常规", "实验室检验")]
    assert loaded.notes == ["span ends read as exclusive (checked on 1 spans with a mention)"]


def test_json_array_and_jsonl_give_the_same_records_with_their_own_places(tmp_path: Path) -> None:
    recs = [{"text": "左膝关节疼痛", "entities": [{"start": 0, "end": 4, "label": "解剖部位"}]},
            {"text": "行阑尾切除术", "entities": [{"start": 1, "end": 6, "label": "手术"}, {"start": 9, "end": 12, "label": "手术"}]}]
    p = jsonl(tmp_path, *recs)
    p.write_text("\ufeff" + p.read_text(encoding="utf-8").replace("\n", "\n\n", 1), encoding="utf-8")  # BOM, blank line
    from_lines, from_array = read(p, AUTO), read(array(tmp_path, *recs), AUTO)
    assert [(r.id, r.text, r.entities) for r in from_lines.records] == [("data.jsonl:1", "左膝关节疼痛", [Entity(0, 4, "解剖部位")])]
    assert [r.id for r in from_array.records] == ["data.json:1"]
    assert [r.entities for r in from_array.records] == [r.entities for r in from_lines.records]
    assert from_lines.skipped[0].startswith(f"{p}:3: record left out")
    assert from_lines.skipped[0].endswith(f"{p}:3: span 2 [9, 12, '手术']: outside the text (length 6)")
    where = f"{tmp_path / 'data.json'}: record 2"
    assert from_array.skipped[0].startswith(f"{where}: record left out")
    assert from_array.skipped[0].endswith(f"{where}: span 2 [9, 12, '手术']: outside the text (length 6)")


def test_offsets_count_code_points_after_an_emoji_and_an_ext_b_character(tmp_path: Path) -> None:
    text = "😷𠀀患者咳嗽伴发热"
    rec = {"text": text, "entities": [{"start": 4, "end": 6, "label": "症状", "mention": "咳嗽"},
                                      {"start": 7, "end": 9, "label": "症状", "mention": "发热"}]}
    loaded = read(jsonl(tmp_path, rec), AUTO)
    assert loaded.records[0].entities == [Entity(4, 6, "症状"), Entity(7, 9, "症状")]
    assert mentions(loaded) == [("咳嗽", "症状"), ("发热", "症状")]
    assert loaded.skipped == []


# ---------------------------------------------------------------- spans left out, or their records


def test_nested_overlapping_and_repeated_spans_are_dropped_and_reported(tmp_path: Path) -> None:
    text = "急性心肌梗死后心衰"
    rec = {"text": text, "entities": [
        {"start": 0, "end": 6, "label": "疾病"},
        {"start": 2, "end": 4, "label": "解剖部位"},  # nested inside the first
        {"start": 5, "end": 8, "label": "疾病"},  # overlaps the first
        {"start": 7, "end": 9, "label": "疾病"},
        {"start": 0, "end": 6, "label": "疾病"},  # the first, again
    ]}
    loaded = read(jsonl(tmp_path, rec), AUTO)
    assert loaded.records[0].entities == [Entity(0, 6, "疾病"), Entity(7, 9, "疾病")]
    where = f"{tmp_path / 'data.jsonl'}:1"
    overlap = "overlaps an earlier span (nested or overlapping spans cannot be BIO-tagged)"
    assert loaded.skipped == [f"{where}: span 5 [0, 6, '疾病']: repeats an earlier span",
                              f"{where}: span 2 [2, 4, '解剖部位']: {overlap}",
                              f"{where}: span 3 [5, 8, '疾病']: {overlap}"]


@pytest.mark.parametrize("span, why", [
    ({"start": "3", "end": 5, "label": "疾病"}, ": start '3' is not an integer"),
    ({"start": 3, "end": 5.0, "label": "疾病"}, ": end 5.0 is not an integer"),
    ({"start": True, "end": 5, "label": "疾病"}, ": start True is not an integer"),
    ({"start": 3, "end": 5}, ": no label"),
    ({"start": 3, "end": 5, "label": ""}, ": label '' is not a non-empty string"),
    ({"start": 3, "end": 40, "label": "疾病"}, " [3, 40, '疾病']: outside the text (length 9)"),
    ({"start": -1, "end": 2, "label": "疾病"}, " [-1, 2, '疾病']: outside the text (length 9)"),
    ({"start": 5, "end": 5, "label": "疾病"}, " [5, 5, '疾病']: empty or reversed span"),
    ({"start": 6, "end": 3, "label": "疾病"}, " [6, 3, '疾病']: empty or reversed span"),
    ("疾病", ": '疾病' is neither a span object nor [start, end, label(, mention)]"),
])
def test_a_span_that_does_not_fit_leaves_its_record_out_with_the_place(tmp_path: Path, span: object, why: str) -> None:
    """Its record's other spans alone would teach the marked characters as no entity."""
    good = {"start": 3, "end": 6, "label": "疾病"}
    recs = [{"id": 17, "text": "既往有高血压病史十", "entities": [span, good]}, {"id": 18, "text": "既往有高血压病史十", "entities": [good]}]
    loaded = read(jsonl(tmp_path, *recs), AUTO)
    assert [(r.id, r.entities) for r in loaded.records] == [("18", [Entity(3, 6, "疾病")])]
    where = f"{tmp_path / 'data.jsonl'}:1"
    assert loaded.skipped == [f"{where}: record left out: 1 span(s) do not fit its text, and its other spans alone "
                              f"would teach them as no entity; the first: {where}: span 1{why}"]


def test_an_empty_span_list_is_a_record_without_entities(tmp_path: Path) -> None:
    loaded = read(jsonl(tmp_path, {"doc_id": "d-9", "content": "一般情况可", "labels": []}), AUTO)
    assert [(r.id, r.text, r.entities) for r in loaded.records] == [("d-9", "一般情况可", [])]


# ---------------------------------------------------------------- broken files stop the read


def test_a_line_that_is_not_json_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"text": "发热", "entities": []}\n\n{"text": "咳嗽", "entities": [\n', encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{re.escape(str(p))}:3: not valid JSON"):
        read(p, AUTO)


@pytest.mark.parametrize("layout, place", [(jsonl, "data.jsonl:{n}"), (array, "data.json: record {n}")])
def test_a_record_without_a_text_names_its_place(tmp_path: Path, layout, place: str) -> None:
    p = layout(tmp_path, {"text": "头痛", "entities": []}, {"body": "头晕", "entities": []})
    where = re.escape(f"{tmp_path}/{place.format(n=2)}")
    with pytest.raises(DataError, match=rf"^{where}: no text under text / originalText .*keys: body, entities$"):
        read(p, AUTO)
    where = re.escape(f"{tmp_path}/{place.format(n=1)}")
    with pytest.raises(DataError, match=rf"^{where}: the text under 'text' is int, not a string$"):
        read(layout(tmp_path, {"text": 3, "entities": []}), AUTO)


def test_a_record_without_any_span_key_lists_the_keys_it_has(tmp_path: Path) -> None:
    p = jsonl(tmp_path, {"id": "a", "text": "胸闷气短", "labels": ["症状"], "meta": {}})
    with pytest.raises(DataError, match=rf"^{re.escape(str(p))}:1: no span list .*the record has keys: id, text, labels, meta$"):
        read(p, AUTO)


def test_text_key_names_the_text_exactly(tmp_path: Path) -> None:
    rec = {"text": "标题", "note": "右下腹压痛", "entities": [{"start": 0, "end": 3, "label": "解剖部位"}]}
    loaded = read(jsonl(tmp_path, rec), ReadOptions(text_key="note"))
    assert mentions(loaded) == [("右下腹", "解剖部位")]
    with pytest.raises(DataError, match=r"no text under body; the record has keys: text, note, entities"):
        read(jsonl(tmp_path, rec), ReadOptions(text_key="body"))


# ---------------------------------------------------------------- format detection


@pytest.mark.parametrize("obj, expected", [
    ({"originalText": "腹痛", "entities": [{"label_type": "症状", "start_pos": 0, "end_pos": 2}]}, True),
    ({"text": "腹痛", "entities": []}, True),
    ({"raw_text": "腹痛", "annotations": [[0, 2, "症状"]]}, True),
    ({"text": "腹痛", "label": {"症状": {"腹痛": [[0, 1]]}}}, True),
    ({"text": "腹痛", "label": [{"start": 0, "end": 2, "text": "腹痛", "labels": ["症状"]}]}, False),  # JSON-MIN
    ({"text": "腹痛", "labels": ["症状"]}, False),  # a label set, not spans
    ({"text": "腹痛"}, False),
    ({"text": 5, "entities": []}, False),
    ({"data": {"text": "腹痛"}, "annotations": [{"result": []}]}, False),  # a Label Studio task
    (["腹痛"], False),
])
def test_looks_like_spans(obj: object, expected: bool) -> None:
    assert looks_like_spans(obj) is expected


def test_a_line_separator_inside_a_jsonl_string_does_not_split_the_record(tmp_path: Path) -> None:
    # json.dumps(ensure_ascii=False) leaves U+2028 unescaped; a text pasted from a web page can hold one
    rec = {"text": "主诉：\u2028胸痛三天", "entities": [{"start": 4, "end": 6, "label": "症状", "text": "胸痛"}]}
    loaded = read(jsonl(tmp_path, rec), AUTO)
    assert mentions(loaded) == [("胸痛", "症状")] and loaded.skipped == []
