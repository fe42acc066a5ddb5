"""Temporal output discrepancy (Huang et al., ICCV 2021), the TOD baseline of §4.2, for a CRF tagger."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import PoolScores, QueryStrategy

__all__ = ["temporal_output_discrepancy", "TemporalOutputDiscrepancy"]


def temporal_output_discrepancy(
    current: Sequence[np.ndarray], previous: Sequence[np.ndarray], reduction: str = "sum"
) -> np.ndarray:
    """Per record, Σ_i ‖m_t[i] − m_{t−1}[i]‖₂ over its characters i, where m[i] is the CRF's marginal
    distribution over the K tags at character i under the current and the previous round's model.

    Huang et al. define TOD as ‖f(x; θ_t) − f(x; θ_{t−1})‖ on a classifier's output vector; a tagger has
    one output distribution per character. We take the L2 norm per character, as they do per output,
    and sum over characters, so a record's TOD aggregates like its loss (docs/method.md, R4: aggregation by sum).
    ``reduction="mean"`` divides by the record's length instead. ``current[r]`` and ``previous[r]`` are
    [n_chars_r, K] arrays; an empty record gives 0.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    if len(current) != len(previous):
        raise ValueError(f"{len(current)} current records vs {len(previous)} previous ones")
    out = np.zeros(len(current), dtype=np.float64)
    for r, (cur, prev) in enumerate(zip(current, previous)):
        cur = np.asarray(cur, dtype=np.float64)
        prev = np.asarray(prev, dtype=np.float64)
        if cur.shape != prev.shape or cur.ndim != 2:
            raise ValueError(f"record {r}: marginals must be matching [n_chars, K] arrays, got {cur.shape} and {prev.shape}")
        if cur.shape[0] == 0:
            continue
        per_char = np.linalg.norm(cur - prev, axis=1)
        out[r] = per_char.sum() if reduction == "sum" else per_char.mean()
    return out


class TemporalOutputDiscrepancy(QueryStrategy):
    """TOD baseline: highest ``pool.tod`` first (computed with :func:`temporal_output_discrepancy`)."""

    name = "tod"
    requires = ("tod",)

    def score(self, pool: PoolScores) -> np.ndarray:
        return pool.require("tod", self.name).copy()
