"""Strict entity-level metrics: a predicted entity counts only with exact start, end and label."""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

from .data import Entity


def _prf(tp: int, fp: int, fn: int) -> dict[str, float | int]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "fp": fp, "fn": fn, "support": tp + fn}


def entity_prf(gold: Sequence[Iterable[Entity]], pred: Sequence[Iterable[Entity]]) -> dict:
    """Micro and per-label precision/recall/F1 over records (duplicates within a record count once)."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold records but {len(pred)} predicted")
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for g, p in zip(gold, pred):
        gs = {(e.start, e.end, e.label) for e in g}
        ps = {(e.start, e.end, e.label) for e in p}
        for *_, lab in gs & ps:
            tp[lab] += 1
        for *_, lab in ps - gs:
            fp[lab] += 1
        for *_, lab in gs - ps:
            fn[lab] += 1
    labels = sorted(set(tp) | set(fp) | set(fn))
    return {
        "micro": _prf(sum(tp.values()), sum(fp.values()), sum(fn.values())),
        "per_label": {lab: _prf(tp[lab], fp[lab], fn[lab]) for lab in labels},
        "n_records": len(gold),
    }
