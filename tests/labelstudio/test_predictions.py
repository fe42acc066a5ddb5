"""Predictions out: spans as Label Studio regions (code-point offsets, known labels only), the import shape."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lasl_backend.labelstudio import parse_label_config, prediction_import, span_regions, task_prediction

CFG = """<View><Labels name="ner" toName="emr"><Label value="疾病"/><Label value="药物"/></Labels>
<Text name="emr" value="$note"/></View>"""
NER = parse_label_config(CFG)
TEXT = "患者😀因𠀀糖尿病\r\n服用　二甲双胍。"


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str
    score: float | None


def test_regions_slice_the_exact_text_after_astral_characters() -> None:
    s, m = TEXT.index("糖尿病"), TEXT.index("二甲双胍")
    regions = span_regions(TEXT, [Span(s, s + 3, "疾病", 0.9), Span(m, m + 4, "药物", 0.6)], NER)
    assert [r["value"] for r in regions] == [
        {"start": s, "end": s + 3, "text": "糖尿病", "labels": ["疾病"]},
        {"start": m, "end": m + 4, "text": "二甲双胍", "labels": ["药物"]},
    ]
    assert s == 5 and len(TEXT[:s].encode("utf-16-le")) // 2 == 7  # code points, not UTF-16 units
    assert {(r["from_name"], r["to_name"], r["type"]) for r in regions} == {("ner", "emr", "labels")}
    assert [r["score"] for r in regions] == [0.9, 0.6]


def test_unusable_spans_are_left_out_and_ids_keep_their_positions() -> None:
    spans = [Span(0, 2, "手术", 0.5), Span(3, 2, "疾病", 0.5), Span(0, len(TEXT) + 1, "疾病", 0.5), Span(0, 2, "疾病", 0.5)]
    regions = span_regions(TEXT, spans, NER)
    assert [r["id"] for r in regions] == ["lasl3"] and regions[0]["value"]["text"] == TEXT[:2]


def test_region_scores_are_clamped_into_the_unit_interval() -> None:
    scores = [1.5, -0.2, math.nan, math.inf, None, 0.25]
    regions = span_regions(TEXT, [Span(0, 1, "疾病", x) for x in scores], NER)
    assert [r["score"] for r in regions] == [1.0, 0.0, 0.0, 0.0, 0.0, 0.25]


def test_prediction_shapes() -> None:
    p = task_prediction([{"id": "lasl0"}], 0.75, "lasl-v0001-20261126T051200")
    assert p == {"result": [{"id": "lasl0"}], "score": 0.75, "model_version": "lasl-v0001-20261126T051200"}
    item = prediction_import(42, p)
    assert list(item) == ["task", "model_version", "score", "result"]  # what LS 1.23.2's bulk import keeps
    assert item == {"task": 42, "model_version": p["model_version"], "score": 0.75, "result": p["result"]}
