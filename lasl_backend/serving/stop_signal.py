"""A version's entry in the stopping signal, measured inside its training run, and the recommendation.

Each run adds, from numbers it already has (no extra training): F1 on the held-back tasks with a
bootstrap interval and per label, the labels' distribution in the annotations, Λ_t, and Cohen's kappa
between this version's and the previous version's character tags on the project's stop set (unlabeled
tasks drawn once, at the first run; the tags of its tasks that are later labeled or deleted are still
compared while their text is unchanged). :func:`recommendation` turns the stored entries into "keep
labeling", "gains slowing" or "stop" with the rule of ``stopping.rule``; it reads numbers only.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from ..config import Settings
from ..data import Entity
from ..labelstudio import Dataset, LabeledTask
from ..metrics import entity_prf
from ..ner import NerModel
from ..stopping import Recommendation, StopRule, VersionSignal, char_tags, f1_interval, recommend, record_counts, version_kappa
from ..stopping.rule import finite_number

__all__ = ["draw_stop_set", "measure_version", "recommendation", "stop_rule", "version_signal"]


def stop_rule(settings: Settings) -> StopRule:
    """The rule's thresholds from the settings (a bad combination raises ValueError at start-up)."""
    s = settings
    return StopRule(min_annotations=s.stop_min_annotations, kappa_threshold=s.stop_kappa, kappa_window=s.stop_window,
                    stop_gain=s.stop_gain, slow_gain=s.slow_gain, horizon=s.stop_horizon)


def draw_stop_set(data: Dataset, size: int, seed: int, project_id: int) -> list[int]:
    """Up to ``size`` unlabeled task ids, a seeded draw per project."""
    ids = sorted(u.task_id for u in data.unlabeled)
    if size <= 0 or not ids:
        return []
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(project_id) & 0xFFFFFFFF, 7919])
    return sorted(int(i) for i in rng.choice(ids, min(size, len(ids)), replace=False))


def _texts(data: Dataset, ids: Sequence[int]) -> dict[int, str]:
    by_id = {t.task_id: t.text for t in data.labeled} | {u.task_id: u.text for u in data.unlabeled}
    return {i: by_id[i] for i in ids if i in by_id}


def measure_version(model: NerModel, data: Dataset, held: Sequence[LabeledTask], stop_ids: Sequence[int],
                    previous_tags: dict[str, np.ndarray] | None, predict_batch: int = 64) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(the version's signal entry without its name and time, the stop set's tags to keep for the next one)."""
    labels = list(model.labels)
    entry: dict[str, Any] = {"n_labeled": len(data.labeled), "n_held_out": len(held)}
    if held:
        preds = [[Entity(e.start, e.end, e.label) for e in p.entities]
                 for p in model.predict([t.text for t in held], max_batch=predict_batch, with_lossnet=False)]
        counts = [record_counts(t.entities, p) for t, p in zip(held, preds)]
        iv = f1_interval(counts)
        prf = entity_prf([t.entities for t in held], preds)
        entry |= {"f1_held_out": iv.f1, "f1_lo": iv.lo, "f1_hi": iv.hi,
                  "per_label": {lab: {"f1": v["f1"], "support": v["support"]} for lab, v in prf["per_label"].items()}}
    entry["label_counts"] = dict(sorted(Counter(e.label for t in data.labeled for e in t.entities).items()))
    texts = _texts(data, stop_ids)
    tags: dict[str, np.ndarray] = {}
    if texts:
        preds = model.predict(list(texts.values()), max_batch=predict_batch, with_lossnet=False)
        tags = {str(i): char_tags(len(t), p.entities, labels) for (i, t), p in zip(texts.items(), preds)}
    entry["stop_set"] = len(tags)
    entry["kappa"] = version_kappa(previous_tags, tags) if previous_tags and tags else None
    return entry, tags


def _count(value: Any) -> int | None:
    """A non-negative whole number (an int or a float or numeric string holding one), else None."""
    x = finite_number(value)
    return int(x) if x is not None and x >= 0 and x == int(x) else None


def _share(value: Any, low: float) -> float | None:
    """An F1 in [0, 1] or a kappa in [-1, 1] (``low``), else None."""
    x = finite_number(value)
    return x if x is not None and low <= x <= 1.0 else None


def version_signal(entry: Any) -> VersionSignal | None:
    """A stored entry as the rule reads it; None for one without a usable annotation count (a file edited
    by hand or written by something else). A value out of its range is read as missing."""
    if not isinstance(entry, dict):
        return None
    n = _count(entry.get("n_labeled"))
    if n is None:
        return None
    return VersionSignal(n_labeled=n, heldout_f1=_share(entry.get("f1_held_out"), 0.0),
                         heldout_records=_count(entry.get("n_held_out")) or 0, kappa=_share(entry.get("kappa"), -1.0))


def recommendation(signals: Sequence[Any], rule: StopRule) -> Recommendation:
    """The rule over the stored entries, oldest first (unreadable ones are skipped)."""
    history = [v for v in map(version_signal, signals) if v is not None]
    return recommend(history, rule)
