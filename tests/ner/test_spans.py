from __future__ import annotations

import pytest

from lasl_backend.data import Entity
from lasl_backend.ner.spans import LabelScheme, chunk_spans, entities_to_tags, tags_to_entities

SCHEME = LabelScheme.from_labels(["DIS", "DRUG"])


def test_scheme_tags_and_errors():
    assert SCHEME.tags == ["O", "B-DIS", "I-DIS", "B-DRUG", "I-DRUG"]
    assert SCHEME.num_tags == 5
    with pytest.raises(ValueError):
        LabelScheme.from_labels([])
    with pytest.raises(ValueError):
        LabelScheme.from_labels(["A", "A"])


@pytest.mark.parametrize(
    "text, ents",
    [
        ("患者因2型糖尿病入院，予二甲双胍。", [Entity(3, 8, "DIS"), Entity(12, 16, "DRUG")]),
        ("😀𠀀糖尿病 HbA1c 4*2.8*2.5CM\u3000阿司匹林", [Entity(2, 5, "DIS"), Entity(6, 11, "DIS"), Entity(24, 28, "DRUG")]),
        ("AB", [Entity(0, 1, "DIS"), Entity(1, 2, "DIS")]),  # adjacent entities of one label stay two
    ],
)
def test_round_trip_keeps_one_position_per_character(text, ents):
    tags = entities_to_tags(len(text), ents, SCHEME)
    assert len(tags) == len(text)
    assert tags_to_entities(tags, SCHEME) == ents
    for e in ents:
        assert text[e.start : e.end]  # offsets are str indices


def test_decoding_stray_inside_tag_starts_an_entity():
    # O I-DIS I-DIS O B-DRUG I-DIS  -> DIS(1,3), DRUG(4,5), DIS(5,6)
    tags = [0, 2, 2, 0, 3, 2]
    assert tags_to_entities(tags, SCHEME) == [Entity(1, 3, "DIS"), Entity(4, 5, "DRUG"), Entity(5, 6, "DIS")]


def test_tags_with_offset_window_clip():
    ents = [Entity(5, 8, "DIS")]
    assert entities_to_tags(4, ents, SCHEME, offset=4) == [0, 1, 2, 2]
    assert tags_to_entities([0, 1, 2, 2], SCHEME, offset=4) == [Entity(5, 8, "DIS")]


def test_chunks_tile_text_and_prefer_sentence_ends():
    text = "甲" * 50 + "。" + "乙" * 50 + "；" + "丙" * 30
    spans = chunk_spans(text, max_len=60)
    assert spans == [(0, 51), (51, 102), (102, 132)]


def test_chunk_falls_back_to_comma_then_hard_cut():
    text = "甲" * 30 + "，" + "乙" * 60
    assert chunk_spans(text, max_len=40) == [(0, 31), (31, 71), (71, 91)]


def test_chunk_never_splits_an_entity():
    text = "甲" * 35 + "肺癌。伴转移" + "乙" * 40
    ent = Entity(33, 41, "DIS")  # crosses the sentence end at 38 and the hard cut at 40
    spans = chunk_spans(text, max_len=40, entities=[ent])
    assert spans[0][1] <= ent.start or spans[0][1] >= ent.end
    for s, e in spans:
        assert not (s < ent.start < e < ent.end) and not (ent.start < s < ent.end)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


def test_entity_longer_than_max_len_is_kept_whole():
    text = "前" + "长" * 30 + "后" * 5
    ent = Entity(1, 31, "DIS")
    spans = chunk_spans(text, max_len=10, entities=[ent])
    assert (0, 31) in spans or any(s <= 1 and e >= 31 for s, e in spans)
    assert all(not (s < ent.start < e < ent.end) for s, e in spans)


def test_empty_text_and_bad_max_len():
    assert chunk_spans("", 10) == []
    with pytest.raises(ValueError):
        chunk_spans("abc", 0)
