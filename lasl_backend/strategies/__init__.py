"""Active-learning query strategies (paper §3.2 and the baselines of §4.2).

``get_strategy("dbs", schedule="root", p=2).query(pool, k, rng)`` → indices into the pool.
"""

from __future__ import annotations

from typing import Any

from .base import MissingScoreError, PoolScores, PoolTooSmallError, QueryError, QueryStrategy
from .dbs import DBSNormalizer, DynamicBalanceSampling
from .loss_based import LearningLossSampling, LossPredictionSampling, MinimumLossSampling
from .schedules import SCHEDULES, Constant, Linear, PoolConfidence, Root, get_schedule
from .tod import TemporalOutputDiscrepancy, temporal_output_discrepancy
from .uncertainty import LeastConfidence, RandomSampling

# name → class. "lasl" is DBS at query time: LASL's difference is Mean-Teacher training (§3.3).
STRATEGIES: dict[str, type[QueryStrategy]] = {
    "random": RandomSampling,
    "lc": LeastConfidence,
    "tod": TemporalOutputDiscrepancy,
    "loss": LearningLossSampling,
    "mlp": MinimumLossSampling,
    "lpn": LossPredictionSampling,
    "dbs": DynamicBalanceSampling,
    "lasl": DynamicBalanceSampling,
}


def get_strategy(name: str, **kwargs: Any) -> QueryStrategy:
    """An instance of the strategy registered as ``name``, built with ``kwargs``."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}") from None
    return cls(**kwargs)


__all__ = [
    "STRATEGIES",
    "SCHEDULES",
    "get_strategy",
    "get_schedule",
    "PoolScores",
    "QueryStrategy",
    "QueryError",
    "PoolTooSmallError",
    "MissingScoreError",
    "DBSNormalizer",
    "RandomSampling",
    "LeastConfidence",
    "TemporalOutputDiscrepancy",
    "temporal_output_discrepancy",
    "LearningLossSampling",
    "MinimumLossSampling",
    "LossPredictionSampling",
    "DynamicBalanceSampling",
    "PoolConfidence",
    "Constant",
    "Linear",
    "Root",
]
