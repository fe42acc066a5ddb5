"""Strict entity-level metrics (a predicted entity counts only with exact start, end and label) and the
corrections an annotator makes to pre-annotations."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

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


@dataclass(frozen=True)
class Corrections:
    """What an annotator does to turn a record's pre-annotations into its gold regions: ``add`` a missing
    region, ``delete`` a wrong one, ``change`` one that overlaps a gold region with other bounds or label."""

    add: int = 0
    delete: int = 0
    change: int = 0

    @property
    def total(self) -> int:
        return self.add + self.delete + self.change

    def __add__(self, other: "Corrections") -> "Corrections":
        return Corrections(self.add + other.add, self.delete + other.delete, self.change + other.change)


def corrections(gold: Iterable[Any], pred: Iterable[Any]) -> Corrections:
    """The corrections of one record (objects with ``start``, ``end``, ``label``): exact matches cost
    nothing; each remaining predicted region that overlaps a remaining gold one is paired with it (in order
    of start, one pairing each) as a change; the gold regions left are adds, the predicted ones deletes."""
    gs = {(e.start, e.end, e.label) for e in gold}
    ps = {(e.start, e.end, e.label) for e in pred}
    g_left = sorted(gs - ps)
    p_left = sorted(ps - gs)
    used: set[int] = set()
    change = 0
    for gs_, ge, _ in g_left:
        for j, (ps_, pe, _) in enumerate(p_left):
            if j not in used and ps_ < ge and gs_ < pe:
                used.add(j)
                change += 1
                break
    return Corrections(add=len(g_left) - change, delete=len(p_left) - len(used), change=change)
