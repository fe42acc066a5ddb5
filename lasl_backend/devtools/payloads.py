"""Requests shaped like Label Studio's and the checks of the backend's answers, for the server benchmarks
and the load test (standard library only)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["annotated_task", "check_predict_response", "near_400", "predict_body"]

def predict_body(pid: int, texts: Sequence[str], label_config: str, first_id: int = 1) -> dict[str, Any]:
    """A /predict body as Label Studio 1.23 sends it: the tasks, ``project`` as "<id>.<timestamp>", the label
    config and empty login params (docs/serving.md, "The protocol")."""
    return {
        "tasks": [{"id": first_id + i, "data": {"text": t}, "project": pid, "annotations": [], "predictions": []} for i, t in enumerate(texts)],
        "project": f"{pid}.1700000000",
        "label_config": label_config,
        "params": {"login": None, "password": None, "context": None},
    }


def check_predict_response(status: int, raw: bytes, texts: Sequence[str], labels: Sequence[str]) -> tuple[str | None, list[str]]:
    """(error or None, model versions seen). An error is a non-200, a body that is not
    ``{"results": [...]}`` with one result per task, or a region whose offsets/text/label are invalid."""
    if status != 200:
        return f"http_{status}", []
    try:
        body = json.loads(raw)
    except ValueError:
        return "bad_json", []
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list) or len(results) != len(texts):
        return "wrong_result_count", []
    versions: list[str] = []
    for text, res in zip(texts, results):
        err = _check_result_fields(res)
        if err:
            return err, versions
        versions.append(res["model_version"])
        err = _check_regions(res["result"], text, labels)
        if err:
            return err, versions
    return None, versions


def _check_result_fields(res: Any) -> str | None:
    """The error of one task's result apart from its regions: a region list, a score in [0, 1], a version."""
    if not isinstance(res, dict) or not isinstance(res.get("result"), list):
        return "bad_result"
    score = res.get("score")
    if not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0:
        return "bad_score"
    v = res.get("model_version")
    if not isinstance(v, str) or not v:
        return "bad_model_version"
    return None


def _check_regions(regions: list[Any], text: str, labels: Sequence[str]) -> str | None:
    """The first invalid region's error: offsets in ``[0, len(text)]``, ``text == data[start:end]``, a known label."""
    for r in regions:
        val = r.get("value") if isinstance(r, dict) else None
        if not isinstance(val, dict):
            return "bad_region"
        s, e = val.get("start"), val.get("end")
        if not (isinstance(s, int) and isinstance(e, int) and 0 <= s < e <= len(text)):
            return "bad_offsets"
        if val.get("text") != text[s:e]:
            return "bad_region_text"
        if not isinstance(val.get("labels"), list) or not val["labels"] or val["labels"][0] not in labels:
            return "bad_label"
    return None


def annotated_task(text: str, entities: Sequence[Any], labels: Sequence[str]) -> dict[str, Any]:
    """A task to import with one annotation holding ``entities`` (those with a label of ``labels``)."""
    result = [
        {"from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": e.start, "end": e.end, "text": text[e.start : e.end], "labels": [e.label]}}
        for e in entities
        if e.label in labels
    ]
    return {"data": {"text": text}, "annotations": [{"result": result, "lead_time": 1.0}]}


def near_400(texts: Sequence[str], n: int) -> list[str]:
    """``n`` texts (cycled if needed) as close to 400 characters as possible: the one-record benchmarks' size."""
    ranked = sorted(texts, key=lambda t: abs(len(t) - 400))[: max(n, 1)]
    return [ranked[i % len(ranked)] for i in range(n)]
