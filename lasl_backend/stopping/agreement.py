"""Agreement between two model versions on the same unlabeled records: Cohen's kappa over character tags.

Stabilizing predictions (Bloodgood & Vijay-Shanker, CoNLL 2009): once consecutive versions agree on a
fixed set of unlabeled records (the stop set) with kappa near 1, more labels change the model little.
A character's tag is its entity label, or none; a region's bounds and its label both count.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["char_tags", "cohen_kappa", "version_kappa"]


def char_tags(n_chars: int, entities: Iterable[Any], labels: Sequence[str]) -> np.ndarray:
    """One int per character: 0 outside every region, 1 + the label's index inside one (later regions win
    where predictions overlap, which a CRF's do not). Unknown labels count as one extra tag."""
    tags = np.zeros(max(0, int(n_chars)), dtype=np.int16)
    index = {lab: i + 1 for i, lab in enumerate(labels)}
    for e in entities:
        tags[max(0, e.start): max(0, min(e.end, tags.size))] = index.get(e.label, len(labels) + 1)
    return tags


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two equal-length tag arrays; 1.0 when both are constant and equal (nothing to
    disagree on), NaN for empty input."""
    a = np.asarray(a).reshape(-1)
    b = np.asarray(b).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"tag arrays differ in length: {a.size} and {b.size}")
    if a.size == 0:
        return float("nan")
    p_obs = float(np.mean(a == b))
    cats = np.union1d(a, b)
    p_exp = float(sum(np.mean(a == c) * np.mean(b == c) for c in cats))
    if p_exp >= 1.0:
        return 1.0 if p_obs >= 1.0 else 0.0
    return (p_obs - p_exp) / (1.0 - p_exp)


def version_kappa(old: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> float:
    """Kappa between two versions' tags of the stop set (record key → tags), over the records both have
    with equal lengths (a task deleted or edited in between drops out); NaN when none."""
    keys = [k for k in new if k in old and old[k].size == new[k].size]
    if not keys:
        return float("nan")
    return cohen_kappa(np.concatenate([old[k] for k in keys]), np.concatenate([new[k] for k in keys]))
