"""Label Studio tasks as training data: D_L (annotated tasks) and D_U (the rest), pure logic, no network.

Offsets are Python ``str`` indices (code points), ``end`` exclusive, as Label Studio 1.23 stores them,
so a region's ``value.start``/``value.end`` are used as they come; a region that does not slice the
task text exactly is never repaired. Its annotation is then left out of D_L with the reason: the
annotator marked an entity there, and training on the other regions alone would teach its characters
as no entity.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ..data import Entity, Record, drop_overlaps
from .labelconfig import NerConfig

__all__ = ["LabeledTask", "UnlabeledTask", "Dataset", "choose_annotation", "regions_to_entities", "split_tasks"]

log = logging.getLogger(__name__)


@dataclass
class LabeledTask:
    task_id: int
    text: str
    entities: list[Entity]
    annotation_id: int | None
    warnings: list[str] = field(default_factory=list)
    #: the annotation's ``lead_time`` as Label Studio sent it (seconds spent; may be null or nonsense: the
    #: cost model cleans it)
    lead_time: Any = None

    def to_record(self) -> Record:
        return Record(id=str(self.task_id), text=self.text, entities=list(self.entities))


@dataclass
class UnlabeledTask:
    task_id: int
    text: str


@dataclass
class Dataset:
    """D_L (annotated tasks), D_U (the rest) and what was skipped, with reasons."""

    labeled: list[LabeledTask]
    unlabeled: list[UnlabeledTask]
    skipped: list[tuple[int | None, str]]
    warnings: list[str]
    annotation_ids: set[int] = field(default_factory=set)  # every annotation seen, cancelled ones too


def _ts(a: dict[str, Any]) -> tuple[str, str, int]:
    return (str(a.get("updated_at") or ""), str(a.get("created_at") or ""), int(a.get("id") or 0))


def choose_annotation(annotations: Iterable[Any]) -> dict[str, Any] | None:
    """The annotation a task trains on: skip cancelled ones; prefer ground truth, else the latest
    (by ``updated_at``, then ``created_at``, then id). None if nothing usable is left.

    An annotation without a ``result`` field is unusable, not empty: Label Studio 1.23 strips nested
    annotation fields that a task list's ``include`` does not name, and reading that as "no entities"
    once trained every model on blank labels."""
    usable = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled") and isinstance(a.get("result"), list)]
    if not usable:
        return None
    gt = [a for a in usable if a.get("ground_truth")]
    return max(gt or usable, key=_ts)


def regions_to_entities(text: str, result: Sequence[Any], ner: NerConfig) -> tuple[list[Entity], list[str], list[str]]:
    """Entities from an annotation's ``result``, the warnings about the regions left out, and the
    regions that do not fit the text (the annotation is incomplete without them).

    A region is left out when it is not a ``labels`` region of our control, names no label of the
    config, or overlaps an earlier kept region (BIO tags cannot hold overlaps). It does not fit when it
    is no object, has no value or no labels, has non-integer, reversed or out-of-range offsets, or
    carries a ``text`` that differs from ``text[start:end]``.
    """
    warnings: list[str] = []
    misfits: list[str] = []
    candidates: list[Entity] = []
    for i, region in enumerate(result):
        entity, whys, misfit = _read_region(region, text, ner)
        warnings.extend(f"region {i}: {why}" for why in whys)
        if misfit is not None:
            misfits.append(f"region {i}: {misfit}")
        if entity is not None:
            candidates.append(entity)
    kept, overlaps = _drop_overlaps(candidates)
    return kept, warnings + overlaps, misfits


def _read_region(r: Any, text: str, ner: NerConfig) -> tuple[Entity | None, list[str], str | None]:
    """One region as an entity (or None), the warnings about it, and why it does not fit the text (None
    when it does); another control's region gives none of them."""
    if not isinstance(r, dict):
        return None, [], "not an object"
    if r.get("type") not in (None, "labels") or r.get("from_name") not in (None, ner.from_name):
        return None, [], None  # another control's region (e.g. a Choices next to the Labels): not ours
    if r.get("to_name") not in (None, ner.to_name):
        return None, [], None
    v = r.get("value")
    if not isinstance(v, dict):
        return None, [], "no value"
    start, end = v.get("start"), v.get("end")
    if isinstance(start, bool) or isinstance(end, bool) or not isinstance(start, int) or not isinstance(end, int):
        return None, [], "start/end are not integers"
    if not 0 <= start < end <= len(text):
        return None, [], f"offsets [{start}, {end}) are reversed, empty or outside the text (length {len(text)})"
    labels = v.get("labels")
    if not isinstance(labels, list) or not labels:
        return None, [], "no labels"
    known = [lb for lb in labels if isinstance(lb, str) and ner.has_label(lb)]
    if not known:
        return None, [f"label(s) {[str(x)[:40] for x in labels][:3]} not in the label config"], None
    notes = [f"several labels {known}; using {known[0]!r}"] if len(known) > 1 else []
    if "text" in v and v["text"] != text[start:end]:
        return None, notes, f"text {str(v['text'])[:40]!r} differs from the task text at [{start}, {end})"
    return Entity(start, end, known[0]), notes, None


def _drop_overlaps(candidates: list[Entity]) -> tuple[list[Entity], list[str]]:
    """Keep entities in offset order, skipping any that overlaps one kept before it."""
    kept, dropped = drop_overlaps(candidates)
    return kept, [f"region [{e.start}, {e.end}) {e.label!r} overlaps an earlier region; skipped" for e in dropped]


def _task_text(task: dict[str, Any], key: str) -> str | None:
    data = task.get("data")
    if not isinstance(data, dict):
        return None
    text = data.get(key)
    return text if isinstance(text, str) else None


def split_tasks(tasks: Iterable[dict[str, Any]], ner: NerConfig, max_text_chars: int | None = None) -> Dataset:
    """Split raw task dicts into D_L and D_U. Tasks without a usable text are skipped (and reported)."""
    labeled: list[LabeledTask] = []
    unlabeled: list[UnlabeledTask] = []
    skipped: list[tuple[int | None, str]] = []
    warnings: list[str] = []
    ann_ids: set[int] = set()
    for t in tasks:
        tid = t.get("id") if isinstance(t, dict) else None
        if isinstance(t, dict) and isinstance(t.get("annotations"), list):
            ann_ids.update(a["id"] for a in t["annotations"] if isinstance(a, dict) and isinstance(a.get("id"), int))
        if not isinstance(tid, int) or isinstance(tid, bool):
            skipped.append((None, "task without an integer id"))
            continue
        text = _task_text(t, ner.value_key)
        if text is None:
            skipped.append((tid, f"task data has no string field {ner.value_key!r}"))
            continue
        if max_text_chars is not None and len(text) > max_text_chars:
            skipped.append((tid, f"text longer than {max_text_chars} characters"))
            continue
        ann = choose_annotation(t.get("annotations") or [])
        if ann is None:
            unlabeled.append(UnlabeledTask(tid, text))
            continue
        ents, warns, misfits = regions_to_entities(text, ann.get("result") or [], ner)
        for w in warns:
            warnings.append(f"task {tid}, annotation {ann.get('id')}: {w}")
        if misfits:
            why = (f"annotation {ann.get('id')}: {len(misfits)} region(s) do not fit the task text, "
                   f"so its other regions would teach them as no entity; the first: {misfits[0]}")
            skipped.append((tid, why))
            log.warning("task %s left out of training: %s", tid, why)
            continue
        labeled.append(LabeledTask(tid, text, ents, ann.get("id") if isinstance(ann.get("id"), int) else None, warns, ann.get("lead_time")))
    for w in warnings[:50]:
        log.warning("%s", w)
    if len(warnings) > 50:
        log.warning("... and %d more region warnings", len(warnings) - 50)
    return Dataset(labeled, unlabeled, skipped, warnings, ann_ids)
