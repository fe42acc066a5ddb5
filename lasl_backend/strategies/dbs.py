"""Dynamic balance strategy (the paper's §3.2.3 and Eq. 6-7), computed in log space.

rank(x_i) = Λ_t · softmax(L_min)_i + (1 − Λ_t) · softmax(L_p)_i, softmax over the unlabeled pool.

docs/method.md, R3: L_min and L_p are sums over whole records, and the softmax of raw values over a big pool
saturates to one-hot (exp overflows/underflows). We therefore keep everything in logs:
log rank_i = logaddexp(log Λ + L_min_i − LSE(L_min), log(1 − Λ) + L_p_i − LSE(L_p)), which is finite
for any finite inputs and ranks exactly like Eq. 6. The two log-sum-exp denominators and Λ are frozen
from the pool in a :class:`DBSNormalizer`, so a record scored later (one /predict call) gets the value
it would have had inside that pool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Union

import numpy as np

from .base import MissingScoreError, PoolScores, PoolTooSmallError, QueryError, QueryStrategy
from .density import LogWeight
from .schedules import Schedule, get_schedule

__all__ = ["DBSNormalizer", "DynamicBalanceSampling", "cost_of", "logsumexp"]


def logsumexp(x: np.ndarray) -> float:
    """log Σ exp(x), stable for large |x| (the max is factored out)."""
    x = np.asarray(x, dtype=np.float64)
    m = float(np.max(x))
    return m + math.log(float(np.sum(np.exp(x - m))))


def _inputs(values: np.ndarray, per: np.ndarray | None, normalize_length: bool, what: str) -> np.ndarray:
    """``values`` as float64, divided by ``per`` (each record's cost or characters) when ``normalize_length``."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(values)):
        raise QueryError(f"{what} has non-finite values")
    if not normalize_length:
        return values
    if per is None:
        raise MissingScoreError("a cost-aware (length-normalised) DBS needs 'n_chars' or 'cost'")
    return values / np.maximum(_per_record(per, values, "per-record costs", what), 1.0)


def _per_record(values: np.ndarray, like: np.ndarray, what: str, against: str) -> np.ndarray:
    """``values`` as float64, one finite value per entry of ``like`` (``against`` names it in the error)."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape != like.shape:
        raise ValueError(f"the {what} have {arr.shape[0]} entries, {against} has {like.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise QueryError(f"the {what} have non-finite values")
    return arr


def cost_of(pool: PoolScores) -> np.ndarray:
    """What a cost-aware DBS divides by: the pool's ``cost`` (expected seconds) when it carries one, else
    its characters."""
    return pool.cost if pool.cost is not None else pool.require("n_chars", "a cost-aware dbs")


@dataclass
class DBSNormalizer:
    """Λ_t and the pool's softmax denominators, frozen so that Eq. 6 can score records one at a time.

    ``lse_min`` = LSE over the pool of L_min (or L_min per unit of cost when ``normalize_length``: per
    expected second, or per character), ``lse_pred`` the same for L_p. ``entity_coef`` and ``entity_centre``
    weigh the log rank by the entities the model predicts per unit of cost (``density.LogWeight``; 0 = off).
    Saved as JSON next to each model version (``to_dict``/``from_dict``).
    """

    lambda_t: float
    lse_min: float
    lse_pred: float
    normalize_length: bool = False
    entity_coef: float = 0.0
    entity_centre: float = 0.0

    def __post_init__(self) -> None:
        self.lambda_t = float(self.lambda_t)
        self.lse_min = float(self.lse_min)
        self.lse_pred = float(self.lse_pred)
        self.normalize_length = bool(self.normalize_length)
        self.entity_coef = float(self.entity_coef)
        self.entity_centre = float(self.entity_centre)
        if not 0.0 <= self.lambda_t <= 1.0:
            raise ValueError(f"lambda_t must be in [0, 1], got {self.lambda_t}")
        if not (math.isfinite(self.lse_min) and math.isfinite(self.lse_pred)):
            raise ValueError("lse_min and lse_pred must be finite")
        if not (math.isfinite(self.entity_coef) and self.entity_coef >= 0 and math.isfinite(self.entity_centre)):
            raise ValueError("entity_coef must be finite and >= 0, entity_centre finite")

    @classmethod
    def from_pool(
        cls,
        pool: PoolScores,
        schedule: Union[str, float, Schedule] = "pool_confidence",
        normalize_length: bool = False,
        entity_beta: float = 0.0,
    ) -> "DBSNormalizer":
        """Λ_t = ``schedule(pool)`` (Eq. 7 by default) and the pool's LSE of L_min and of L_p; with
        ``entity_beta`` > 0, the weight of the pool's ``entity_rate`` frozen from the spread of its ranks."""
        if pool.n == 0:
            raise PoolTooSmallError("cannot build a DBS normalizer from an empty pool")
        l_min = pool.require("l_min", "dbs")
        l_pred = pool.require("l_pred", "dbs")
        n = cost_of(pool) if normalize_length else None
        lam = float(get_schedule(schedule)(pool))
        plain = cls(
            lambda_t=lam,
            lse_min=logsumexp(_inputs(l_min, n, normalize_length, "l_min")),
            lse_pred=logsumexp(_inputs(l_pred, n, normalize_length, "l_pred")),
            normalize_length=normalize_length,
        )
        if entity_beta <= 0:
            return plain
        rates = pool.require("entity_rate", "an entity-weighted dbs")
        weight = LogWeight.from_pool(plain.log_rank(l_min, l_pred, n), rates, entity_beta)
        return replace(plain, entity_coef=weight.coef, entity_centre=weight.centre)

    def log_rank(self, l_min: np.ndarray, l_pred: np.ndarray, n_chars: np.ndarray | None = None,
                 entity_rate: np.ndarray | None = None) -> np.ndarray:
        """log of Eq. 6's rank for each record, with the frozen pool denominators; ``n_chars`` is what a
        cost-aware normalizer divides by (the records' costs, in the unit the pool's were), ``entity_rate``
        what an entity-weighted one weighs by."""
        rank = self._plain_log_rank(l_min, l_pred, n_chars)
        if self.entity_coef == 0:
            return rank
        if entity_rate is None:
            raise MissingScoreError("an entity-weighted DBS needs each record's 'entity_rate'")
        rate = _per_record(entity_rate, rank, "entity rates", "l_min")
        return rank + LogWeight(self.entity_coef, self.entity_centre).term(rate)

    def _plain_log_rank(self, l_min: np.ndarray, l_pred: np.ndarray, n_chars: np.ndarray | None) -> np.ndarray:
        a = _inputs(l_min, n_chars, self.normalize_length, "l_min") - self.lse_min  # log softmax(L_min)_i
        b = _inputs(l_pred, n_chars, self.normalize_length, "l_pred") - self.lse_pred  # log softmax(L_p)_i
        if a.shape != b.shape:
            raise ValueError(f"l_min has {a.shape[0]} entries, l_pred has {b.shape[0]}")
        lam = self.lambda_t
        if lam >= 1.0:
            return a
        if lam <= 0.0:
            return b
        return np.logaddexp(math.log(lam) + a, math.log1p(-lam) + b)

    def rank(self, l_min: np.ndarray, l_pred: np.ndarray, n_chars: np.ndarray | None = None,
             entity_rate: np.ndarray | None = None) -> np.ndarray:
        """Eq. 6's rank itself (may underflow to 0 on saturating pools; rank by :meth:`log_rank`)."""
        return np.exp(self.log_rank(l_min, l_pred, n_chars, entity_rate))

    def to_dict(self) -> dict[str, Any]:
        return {
            "lambda_t": self.lambda_t,
            "lse_min": self.lse_min,
            "lse_pred": self.lse_pred,
            "normalize_length": self.normalize_length,
            "entity_coef": self.entity_coef,
            "entity_centre": self.entity_centre,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DBSNormalizer":
        missing = [k for k in ("lambda_t", "lse_min", "lse_pred") if k not in d]
        if missing:
            raise ValueError(f"DBS normalizer dict lacks {', '.join(missing)}")
        return cls(
            lambda_t=d["lambda_t"],
            lse_min=d["lse_min"],
            lse_pred=d["lse_pred"],
            normalize_length=d.get("normalize_length", False),
            entity_coef=d.get("entity_coef", 0.0),
            entity_centre=d.get("entity_centre", 0.0),
        )


class DynamicBalanceSampling(QueryStrategy):
    """"DBS" (and "lasl": LASL queries exactly like DBS; it differs by Mean-Teacher training).

    ``score`` is log rank (Eq. 6), monotone in rank, with Λ_t from ``schedule``: a name of
    :data:`schedules.SCHEDULES` ("pool_confidence" = Eq. 7, the default; "equal", "linear", "root"
    with ``p``, ...), a number, or a callable. ``normalize_length`` makes it cost-aware: L_min and L_p are
    divided by each record's cost before the softmax, so the rank is loss per unit of annotator effort
    (``cost`` when the pool carries it, else characters; docs/method.md, R3). Raw is the paper's choice. Λ is not length-normalised
    by this flag; use the "pool_confidence_per_char" schedule for that.
    """

    name = "dbs"

    def __init__(
        self,
        schedule: Union[str, float, Schedule] = "pool_confidence",
        normalize_length: bool = False,
        **schedule_kwargs: Any,
    ) -> None:
        self.schedule = get_schedule(schedule, **schedule_kwargs)
        self.normalize_length = bool(normalize_length)
        # a cost-aware DBS divides by ``cost`` when the pool carries it; characters are the fallback it always needs
        self.requires = ("l_min", "l_pred") + (("n_chars",) if self.normalize_length else ())

    def normalizer(self, pool: PoolScores) -> DBSNormalizer:
        """The frozen Λ_t and denominators for this pool (to save next to the model)."""
        return DBSNormalizer.from_pool(pool, self.schedule, self.normalize_length)

    def score(self, pool: PoolScores) -> np.ndarray:
        for name in self.requires:
            pool.require(name, self.name)
        if pool.n == 0:
            return np.zeros(0, dtype=np.float64)
        return self.normalizer(pool).log_rank(pool.l_min, pool.l_pred, cost_of(pool) if self.normalize_length else None)

    def __repr__(self) -> str:
        return f"DynamicBalanceSampling(schedule={self.schedule!r}, normalize_length={self.normalize_length})"
