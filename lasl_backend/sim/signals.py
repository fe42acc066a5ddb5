"""What a replay measures besides test F1, as the backend would see it: the effort of each batch (characters
read, corrections to the pre-annotations) and the stopping signal's inputs (F1 on a held-back slice of the
labeled records, agreement with the previous version on a fixed stop set of unlabeled records)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..atomic import atomic_file
from ..data import Entity, Record
from ..metrics import Corrections, corrections
from ..stopping import char_tags, holdout_key, record_counts, version_kappa

__all__ = ["HOLDOUT_FRACTION", "HOLDOUT_MIN_LABELED", "batch_corrections", "heldout_counts", "kappa_against", "load_tags",
           "save_tags", "split_heldout", "stop_set", "stop_tags"]

#: the backend's defaults (``LASL_HOLDOUT_FRACTION``, ``LASL_HOLDOUT_MIN_LABELED``; a test keeps them equal)
HOLDOUT_FRACTION = 0.1
HOLDOUT_MIN_LABELED = 20


def split_heldout(labeled: Sequence[int], fraction: float = HOLDOUT_FRACTION, min_labeled: int = HOLDOUT_MIN_LABELED) -> tuple[list[int], list[int]]:
    """(trained on, held back) as the backend splits its annotations, the record index as the task id."""
    if fraction <= 0 or len(labeled) < min_labeled:
        return list(labeled), []
    held = [i for i in labeled if holdout_key(i, 0) < fraction]
    trained = [i for i in labeled if holdout_key(i, 0) >= fraction]
    return (trained, held) if trained else (list(labeled), [])


def heldout_counts(gold: Sequence[Record], pred: Sequence[Sequence[Any]]) -> list[list[int]]:
    """(true positives, predicted, gold) entities per held-back record, strict match: the bootstrap's input."""
    return [list(record_counts(g.entities, p)) for g, p in zip(gold, pred)]


def batch_corrections(gold: Sequence[Record], shown: Sequence[Sequence[Entity]]) -> Corrections:
    """The corrections of a batch, each record against the pre-annotations it was shown."""
    total = Corrections()
    for g, p in zip(gold, shown):
        total = total + corrections(g.entities, p)
    return total


def stop_set(n_records: int, labeled: Sequence[int], size: int, seed: int) -> list[int]:
    """A fixed random sample of the records unlabeled at the start (drawn once per run)."""
    rest = sorted(set(range(n_records)) - set(labeled))
    size = min(size, len(rest))
    return sorted(np.random.default_rng(seed + 7919).choice(rest, size, replace=False).tolist()) if size else []


def stop_tags(records: Sequence[Record], idx: Sequence[int], pred: Sequence[Sequence[Any]], labels: Sequence[str]) -> dict[str, np.ndarray]:
    return {str(i): char_tags(len(records[i].text), p, labels) for i, p in zip(idx, pred)}


def kappa_against(path: Path, tags: dict[str, np.ndarray]) -> float:
    """Kappa of ``tags`` against the previous version's, saved at ``path`` (NaN for the first version)."""
    old = load_tags(path)
    return float("nan") if old is None else version_kappa(old, tags)


def save_tags(path: Path, tags: dict[str, np.ndarray]) -> None:
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **tags)


def load_tags(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    z = np.load(path)
    return {k: z[k] for k in z.files}
