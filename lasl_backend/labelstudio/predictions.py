"""Predictions out: a model's spans as Label Studio regions, one prediction per task.

A region's ``value.start``/``value.end`` are code-point offsets into the task text, ``end`` exclusive,
as Label Studio 1.23 stores them; ``value.text`` is the exact slice. A span whose label the config
does not have, or whose offsets do not slice the text, is left out: Label Studio would show it in
the wrong place or refuse the whole prediction. Scores are clamped into [0, 1], the only range Label
Studio 1.23.2 accepts (docs/serving.md, "Label Studio facts").
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Protocol

from .labelconfig import NerConfig

__all__ = ["ScoredSpan", "span_regions", "task_prediction", "prediction_import"]


class ScoredSpan(Protocol):
    """What a region is made of: ``text[start:end]`` tagged ``label``, with the model's confidence."""

    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...

    @property
    def label(self) -> str: ...

    @property
    def score(self) -> float | None: ...


def _confidence(score: float | None) -> float:
    """A region's score: the span's confidence clamped into [0, 1]; unknown or non-finite → 0."""
    conf = float(score) if score is not None and math.isfinite(score) else 0.0
    return min(1.0, max(0.0, conf))


def span_regions(text: str, spans: Iterable[ScoredSpan], ner: NerConfig) -> list[dict[str, Any]]:
    """The ``result`` of a prediction: one ``labels`` region per usable span, in the spans' order.

    Region ids are ``lasl<i>`` with ``i`` the span's position among all spans, so a span left out
    leaves a gap and the ids of the others do not depend on which were dropped."""
    out = []
    for i, span in enumerate(spans):
        if span.label not in ner.labels or not 0 <= span.start < span.end <= len(text):
            continue
        out.append(
            {
                "id": f"lasl{i}",
                "from_name": ner.from_name,
                "to_name": ner.to_name,
                "type": "labels",
                "value": {"start": int(span.start), "end": int(span.end), "text": text[span.start : span.end], "labels": [span.label]},
                "score": _confidence(span.score),
            }
        )
    return out


def task_prediction(result: list[dict[str, Any]], score: float, model_version: str) -> dict[str, Any]:
    """One task's prediction as /predict answers it (label-studio-ml's shape)."""
    return {"result": result, "score": score, "model_version": model_version}


def prediction_import(task_id: int, prediction: dict[str, Any]) -> dict[str, Any]:
    """A prediction as the bulk import takes it: Label Studio 1.23.2 keeps only ``task``,
    ``result``, ``score`` and ``model_version`` of an imported prediction."""
    return {"task": task_id, "model_version": prediction["model_version"], "score": prediction["score"], "result": prediction["result"]}
