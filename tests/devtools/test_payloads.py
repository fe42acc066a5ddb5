"""The /predict bodies the benchmarks send and the check of the backend's answers: the load test counts an
answer as an error exactly when this check says so."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lasl_backend.data import Entity
from lasl_backend.devtools.payloads import annotated_task, check_predict_response, near_400, predict_body
from lasl_backend.devtools.synthetic import LABELS

TEXT = "😀患者诊断为肺腺癌。"


def _region(start: int, end: int, text: str | None = None, label: str = "疾病和诊断") -> dict[str, Any]:
    return {"from_name": "label", "to_name": "text", "type": "labels",
            "value": {"start": start, "end": end, "text": TEXT[start:end] if text is None else text, "labels": [label]}}


def _answer(*results: dict[str, Any]) -> bytes:
    return json.dumps({"results": list(results)}).encode()


def _result(regions: list[dict[str, Any]], score: Any = 0.5, version: Any = "lasl-v1") -> dict[str, Any]:
    return {"result": regions, "score": score, "model_version": version}


def test_a_valid_answer_has_no_error_and_names_its_versions() -> None:
    start = TEXT.index("肺腺癌")
    raw = _answer(_result([_region(start, start + 3)]), _result([], version="lasl-v2"))
    assert check_predict_response(200, raw, [TEXT, TEXT], LABELS) == (None, ["lasl-v1", "lasl-v2"])


@pytest.mark.parametrize("status, raw, error", [
    (500, b"oops", "http_500"),
    (200, b"not json", "bad_json"),
    (200, b"[]", "wrong_result_count"),
    (200, _answer(), "wrong_result_count"),
    (200, _answer({"result": "x", "score": 0.5, "model_version": "v"}), "bad_result"),
    (200, _answer(_result([], score=1.5)), "bad_score"),
    (200, _answer(_result([], score="0.5")), "bad_score"),
    (200, _answer(_result([], version="")), "bad_model_version"),
    (200, _answer(_result(["region"])), "bad_region"),  # type: ignore[list-item]
    (200, _answer(_result([_region(3, 3)])), "bad_offsets"),
    (200, _answer(_result([_region(5, len(TEXT) + 1)])), "bad_offsets"),
    (200, _answer(_result([_region(6, 9, text="肺腺")])), "bad_region_text"),
    (200, _answer(_result([_region(6, 9, label="症状")])), "bad_label"),
])
def test_each_kind_of_bad_answer_is_named(status: int, raw: bytes, error: str) -> None:
    assert check_predict_response(status, raw, [TEXT], LABELS)[0] == error


def test_an_offset_counted_in_utf16_units_is_caught() -> None:
    """😀 is one code point but two UTF-16 units: a region shifted by one is not the entity's text."""
    start = TEXT.index("肺腺癌")
    err, versions = check_predict_response(200, _answer(_result([_region(start + 1, start + 4, text="肺腺癌")])), [TEXT], LABELS)
    assert err == "bad_region_text" and versions == ["lasl-v1"]


def test_predict_body_is_shaped_like_label_studios() -> None:
    body = predict_body(7, ["a", "b"], "<View/>", first_id=10)
    assert [t["id"] for t in body["tasks"]] == [10, 11]
    assert [t["data"]["text"] for t in body["tasks"]] == ["a", "b"]
    assert all(t["project"] == 7 for t in body["tasks"])
    assert body["project"].split(".")[0] == "7" and body["label_config"] == "<View/>"


def test_annotated_task_keeps_only_entities_of_the_projects_labels() -> None:
    task = annotated_task(TEXT, [Entity(6, 9, "疾病和诊断"), Entity(1, 3, "症状")], LABELS)
    (ann,) = task["annotations"]
    assert [(r["value"]["start"], r["value"]["end"], r["value"]["text"]) for r in ann["result"]] == [(6, 9, "肺腺癌")]


def test_near_400_takes_the_closest_lengths_and_cycles_when_short() -> None:
    texts = ["a" * 100, "b" * 390, "c" * 1000, "d" * 420]
    assert near_400(texts, 2) == ["b" * 390, "d" * 420]
    assert near_400(texts[:1], 3) == ["a" * 100] * 3
