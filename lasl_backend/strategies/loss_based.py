"""Loss-based strategies: the learning-loss baseline, and LASL's two parts alone (MLP, LPN ablations)."""

from __future__ import annotations

import numpy as np

from .base import PoolScores, QueryStrategy, per_char

__all__ = ["LearningLossSampling", "MinimumLossSampling", "LossPredictionSampling"]


class LearningLossSampling(QueryStrategy):
    """"Loss sampling" baseline: Yoo & Kweon's predicted loss (``pool.l_pred_vanilla``), highest first.

    The net predicts one score per chunk, trained by the ranking loss of Eq. 5 alone, which fixes the
    scores' order but not their zero: a constant shift of every chunk score is as good a fit. A record's
    sum over its chunks then moves with that arbitrary shift times its number of chunks (a negative shift
    makes every extra chunk *lower* the score, so the sum picked the shortest records). So
    ``reduction="mean"`` (the default) ranks records by the mean of their chunk scores, an order no shift
    or scale changes; ``"sum"`` is the plain sum (docs/results.md, "Active learning", compares the two).
    """

    name = "loss"
    REDUCTIONS = ("mean", "sum")

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in self.REDUCTIONS:
            raise ValueError(f"reduction must be one of {self.REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self.requires = ("l_pred_vanilla", "n_chunks") if reduction == "mean" else ("l_pred_vanilla",)

    def score(self, pool: PoolScores) -> np.ndarray:
        total = pool.require("l_pred_vanilla", self.name)
        if self.reduction == "sum":
            return total.copy()
        return total / np.maximum(pool.require("n_chunks", self.name), 1.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r})"


class _LengthNormalisable(QueryStrategy):
    field: str = ""

    def __init__(self, normalize_length: bool = False) -> None:
        self.normalize_length = bool(normalize_length)
        self.requires = (self.field, "n_chars") if self.normalize_length else (self.field,)

    def score(self, pool: PoolScores) -> np.ndarray:
        values = pool.require(self.field, self.name)
        return per_char(values, pool, self.name) if self.normalize_length else values.copy()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(normalize_length={self.normalize_length})"


class MinimumLossSampling(_LengthNormalisable):
    """"MLP": the minimum loss L_min of Eq. 4, highest first. ``normalize_length`` divides by n_chars
    (docs/method.md, R3; the paper uses the raw sum, the default)."""

    name = "mlp"
    field = "l_min"


class LossPredictionSampling(_LengthNormalisable):
    """"LPN": the loss prediction net's L_p (§3.2.2), highest first; ``normalize_length`` as for MLP."""

    name = "lpn"
    field = "l_pred"
