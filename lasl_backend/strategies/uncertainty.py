"""Baselines of §4.2 that need no loss model: random sampling and least confidence."""

from __future__ import annotations

import numpy as np

from .base import PoolScores, QueryStrategy

__all__ = ["RandomSampling", "LeastConfidence"]


class RandomSampling(QueryStrategy):
    """Uniform sampling without replacement: every score is 0, so the base's random tie-break decides."""

    name = "random"
    requires = ()

    def score(self, pool: PoolScores) -> np.ndarray:
        return np.zeros(pool.n, dtype=np.float64)


class LeastConfidence(QueryStrategy):
    """Least confidence: 1 - P(y_max | x) (Culotta & McCallum 2005), from ``pool.p_max``.

    Note: with p_max = exp(-L_min) this is a monotone function of L_min, so in exact arithmetic it
    ranks like "mlp". In float64 it differs for long records: 1 - p_max rounds to exactly 1.0 once
    L_min exceeds about 37 nats, and those ties are broken at random.
    """

    name = "lc"
    requires = ("p_max",)

    def score(self, pool: PoolScores) -> np.ndarray:
        return 1.0 - pool.require("p_max", self.name)
