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
    """Least confidence: 1 - P(y_max | x) (Culotta & McCallum 2005).

    1 - P(y_max|x) = 1 - exp(-L_min) is monotone in L_min, but in float64 it rounds to exactly 1.0 once
    L_min exceeds about 37 nats, which whole EMR records always do: the strategy would then break ties at
    random and silently become random sampling. It therefore ranks by the exact equivalent key
    ``-log P(y_max|x) = L_min`` (the order exact arithmetic gives, and hence the order of "mlp").
    ``score`` returns 1 - p_max where float64 can still tell records apart, and L_min + 1 beyond that,
    so the ranking follows L_min throughout.
    """

    name = "lc"
    requires = ("p_max", "l_min")

    def score(self, pool: PoolScores) -> np.ndarray:
        pool.require("p_max", self.name)  # the score is 1 - p_max, computed from L_min without cancellation
        l_min = pool.require("l_min", self.name)
        out = -np.expm1(-l_min)  # = 1 - p_max, exact for small L_min
        saturated = l_min > 30.0  # 1 - exp(-30) is 1 - 9e-14: beyond this, rank by L_min itself
        out[saturated] = 1.0 + l_min[saturated]
        return out
