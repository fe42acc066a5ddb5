"""Held-back F1 with a percentile-bootstrap interval over records.

Which records happen to be held back moves a version's F1 as much as a few hundred more labels do;
resampling the records shows by how much, so a gain inside that noise is not read as progress.
F1 is micro-averaged over strict entity matches: a record contributes its three counts, not its own F1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["RecordCounts", "F1Interval", "f1_interval", "micro_f1", "record_counts"]

#: one held-back record's (true positives, predicted entities, gold entities), strict entity match
RecordCounts = tuple[int, int, int]


@dataclass(frozen=True)
class F1Interval:
    """Micro F1 of the held-back records and its bootstrap interval [lo, hi]; NaN when there are none."""

    f1: float
    lo: float
    hi: float
    n_records: int

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-ready: an undefined (NaN) value becomes None."""
        def clean(x: float) -> float | None:
            return None if math.isnan(x) else float(x)
        return {"f1": clean(self.f1), "lo": clean(self.lo), "hi": clean(self.hi), "n_records": self.n_records}


def record_counts(gold: Iterable[Any], pred: Iterable[Any]) -> RecordCounts:
    """One record's (true positives, predicted, gold) under the strict match (objects with start, end, label;
    a duplicate counts once, as in ``metrics.entity_prf``)."""
    g = {(e.start, e.end, e.label) for e in gold}
    p = {(e.start, e.end, e.label) for e in pred}
    return len(g & p), len(p), len(g)


def micro_f1(counts: Sequence[Sequence[int]]) -> float | None:
    """Micro F1 of the summed counts; None when there is nothing predicted and nothing gold. Counts that
    cannot be entity counts raise ValueError, as in :func:`f1_interval`."""
    if len(counts) == 0:
        return None
    tp, n_pred, n_gold = _counts_array(counts).sum(axis=0)
    return float(2 * tp / (n_pred + n_gold)) if n_pred + n_gold else None


def _counts_array(counts: Sequence[RecordCounts]) -> np.ndarray:
    """The counts as a float64 [n, 3] array, after checking that they can be entity counts."""
    arr = np.asarray(counts, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError("counts must be a sequence of (true positives, predicted, gold) triples")
    if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
        raise ValueError("entity counts must be whole numbers")
    bad = np.any(arr < 0, axis=1)
    if np.any(bad):
        raise ValueError(f"record {int(np.argmax(bad))}: entity counts must not be negative")
    over = arr[:, 0] > np.minimum(arr[:, 1], arr[:, 2])
    if np.any(over):
        i = int(np.argmax(over))
        raise ValueError(f"record {i}: {int(arr[i, 0])} true positives exceed min(predicted={int(arr[i, 1])}, "
                         f"gold={int(arr[i, 2])})")
    return arr


def _micro_f1(tp: np.ndarray, pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """2·tp / (pred + gold), elementwise; 0 where nothing was predicted and nothing was gold."""
    denom = pred + gold
    return np.where(denom > 0, 2.0 * tp / np.where(denom > 0, denom, 1.0), 0.0)


def f1_interval(counts: Sequence[RecordCounts], n_boot: int = 1000, level: float = 0.9,
                seed: int = 0) -> F1Interval:
    """Micro F1 of the records' summed counts, and the central ``level`` percentile interval of the F1s
    of ``n_boot`` resamples of the records (with replacement, one [n_boot, n] index draw)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if len(counts) == 0:
        return F1Interval(f1=math.nan, lo=math.nan, hi=math.nan, n_records=0)
    arr = _counts_array(counts)
    total = arr.sum(axis=0)
    f1 = float(_micro_f1(total[0], total[1], total[2]))
    index = np.random.default_rng(seed).integers(0, arr.shape[0], size=(n_boot, arr.shape[0]))
    sums = [arr[:, j][index].sum(axis=1) for j in range(3)]
    boot = _micro_f1(*sums)
    lo, hi = np.quantile(boot, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return F1Interval(f1=f1, lo=float(lo), hi=float(hi), n_records=int(arr.shape[0]))
