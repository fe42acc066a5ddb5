"""A Label Studio export (JSON or JSON-MIN) as records: each annotated task's chosen annotation.

The same reading the backend applies to the tasks it fetches (``labelstudio.tasks``): cancelled
annotations are left out, ground truth wins, else the latest; a region that names a label the config
lacks is skipped with its reason, and a task with a region that does not slice its text exactly is
left out with it. Without the project's
labeling config (``ReadOptions.label_config``) the Labels control and its labels are taken from the
regions themselves, and the text from the task field ``text`` or the task's only text field.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ..data import DataError
from ..labelstudio.labelconfig import LabelConfigError, NerConfig, parse_label_config
from ..labelstudio.tasks import split_tasks
from .jsonfile import read_objects
from .base import Loaded, ReadOptions


#: the fields JSON-MIN adds to a task's data fields
_MIN_META = frozenset({"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time"})


def is_full_task(obj: object) -> bool:
    """A task of the JSON export: its data and its annotations."""
    return isinstance(obj, dict) and isinstance(obj.get("data"), dict) and isinstance(obj.get("annotations"), list)


def is_min_task(obj: object) -> bool:
    """A task of the JSON-MIN export: its data fields at the top, each control's regions under its name.
    An annotation without regions has no control key at all; its annotator fields still mark it."""
    if not isinstance(obj, dict) or is_full_task(obj):
        return False
    return bool(_min_controls(obj)) or ("annotation_id" in obj or "annotator" in obj)


def read(path: Path, options: ReadOptions) -> Loaded:
    tasks = _tasks(read_objects(path))
    ner = _ner_config(path, tasks, options)
    dataset = split_tasks(tasks, ner)
    records = [t.to_record() for t in dataset.labeled]
    skipped = [f"{path}: task {tid}: {why}" for tid, why in dataset.skipped]
    skipped += [f"{path}: {w}" for w in dataset.warnings]
    notes = [f"Labels {ner.from_name!r} over the task field {ner.value_key!r}, labels: {', '.join(ner.labels)}"]
    if dataset.unlabeled:
        notes.append(f"{len(dataset.unlabeled)} tasks without a usable annotation (none, or all cancelled) left out")
    return Loaded(records, "label-studio", skipped, notes)


def _tasks(objects: list[tuple[str, str, object]]) -> list[dict[str, Any]]:
    """The export's tasks in the JSON export's shape (``split_tasks`` reads that one). JSON-MIN writes one
    row per annotation: the rows of one task become one task with all its annotations, so its latest is
    chosen as for any task."""
    tasks: list[dict[str, Any]] = []
    by_id: dict[Any, dict[str, Any]] = {}
    for where, _, obj in objects:
        if is_full_task(obj):
            tasks.append(obj)  # type: ignore[arg-type]
            continue
        if not is_min_task(obj):
            raise DataError(f"{where}: not a Label Studio task (no 'data' and 'annotations', no regions with 'labels')")
        assert isinstance(obj, dict)
        if obj.get("id") in by_id:
            by_id[obj.get("id")]["annotations"].append(_min_annotation(obj))
            continue
        by_id[obj.get("id")] = task = {"id": obj.get("id"), "data": _min_data(obj), "annotations": [_min_annotation(obj)]}
        tasks.append(task)
    return tasks


def _min_data(obj: dict[str, Any]) -> dict[str, str]:
    controls = _min_controls(obj)
    return {k: v for k, v in obj.items() if k not in controls and k not in _MIN_META and isinstance(v, str)}


def _min_annotation(obj: dict[str, Any]) -> dict[str, Any]:
    result = [{"from_name": name, "type": "labels", "value": region} for name in _min_controls(obj) for region in obj[name]]
    return {"id": obj.get("annotation_id"), "result": result, "updated_at": obj.get("updated_at"),
            "created_at": obj.get("created_at"), "lead_time": obj.get("lead_time")}


def _min_controls(obj: dict[str, Any]) -> list[str]:
    """The keys of a JSON-MIN task that hold labels regions."""
    return [k for k, v in obj.items() if isinstance(v, list) and v
            and all(isinstance(r, dict) and "labels" in r and "start" in r for r in v)]


def _ner_config(path: Path, tasks: list[dict[str, Any]], options: ReadOptions) -> NerConfig:
    """The project's config when given, else the Labels control the regions name and the labels they use."""
    if options.label_config is not None:
        try:
            return parse_label_config(options.label_config)
        except LabelConfigError as exc:
            raise DataError(f"the label config: {exc}") from None
    regions = [r for t in tasks for a in t["annotations"] if isinstance(a, dict) and isinstance(a.get("result"), list)
               for r in a["result"] if isinstance(r, dict) and r.get("type") in (None, "labels")]
    names = Counter(r.get("from_name") for r in regions if isinstance(r.get("value"), dict))
    if not names:
        raise DataError(f"{path}: no labels regions in any annotation, so the labels are unknown; give --label-config")
    from_name = names.most_common(1)[0][0]
    mine = [r for r in regions if r.get("from_name") == from_name]
    to_names = Counter(r.get("to_name") for r in mine if r.get("to_name") is not None)
    labels = [lb for r in mine for lb in (r["value"].get("labels") or []) if isinstance(lb, str)]
    return NerConfig(from_name=from_name, to_name=to_names.most_common(1)[0][0] if to_names else None,  # type: ignore[arg-type]
                     value_key=_text_key(path, tasks, options), labels=tuple(dict.fromkeys(labels)))


def _text_key(path: Path, tasks: list[dict[str, Any]], options: ReadOptions) -> str:
    """The task field holding the text: as given, else ``text``, else the only string field of every task."""
    if options.text_key is not None:
        return options.text_key
    keys = [{k for k, v in t["data"].items() if isinstance(v, str)} for t in tasks if isinstance(t.get("data"), dict)]
    if keys and all("text" in k for k in keys):
        return "text"
    common = set.intersection(*keys) if keys else set()
    if len(common) == 1:
        return common.pop()
    raise DataError(f"{path}: cannot tell which task field holds the text (string fields: {sorted(common) or 'none in all tasks'}); "
                    "give --text-key or --label-config")
