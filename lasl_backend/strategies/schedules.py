"""Λ_t schedules for the dynamic balance strategy (the paper's Eq. 7, 11, 12; §3.2.3, §5.2.2).

A schedule is a callable ``schedule(pool) -> float`` in [0, 1]; Λ_t weights softmax(L_min) in Eq. 6
(docs/method.md, R2: following Eq. 6, a growing Λ shifts weight toward MLP). ``pool.round`` is the round t.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Union

import numpy as np

from .base import MissingScoreError, PoolScores

__all__ = [
    "Schedule",
    "PoolConfidence",
    "Constant",
    "Linear",
    "Root",
    "SCHEDULES",
    "get_schedule",
    "clamp01",
    "schedule_to_dict",
]

Schedule = Callable[[PoolScores], float]


def clamp01(x: float) -> float:
    """Clamp to [0, 1]: Λ is a convex weight. (Linear and Root exceed 1 once t > T.)"""
    return float(min(1.0, max(0.0, x)))


@dataclass(frozen=True)
class PoolConfidence:
    """Eq. 7: Λ_t = mean over the unlabeled pool of P(y_max | x) = mean of exp(-L_min).

    Uses ``pool.p_max`` when present, else ``exp(-pool.l_min)``.
    ``per_char=True`` is this project's option, not the paper's: mean of exp(-L_min / n_chars), the
    geometric mean of per-character confidence. L_min is a sum over the record (docs/method.md, R3 and R4), so for long
    records exp(-L_min) underflows toward 0 and the raw Eq. 7 then pins Λ near 0 (DBS ≈ LPN alone)
    however good the decoder is.
    """

    per_char: bool = False

    def __call__(self, pool: PoolScores) -> float:
        if pool.n == 0:
            raise MissingScoreError("pool_confidence needs a non-empty pool")
        if self.per_char:
            l_min = pool.require("l_min", "pool_confidence(per_char)")
            n = np.maximum(pool.require("n_chars", "pool_confidence(per_char)"), 1.0)
            return clamp01(float(np.mean(np.exp(-l_min / n))))
        if pool.p_max is not None:
            return clamp01(float(np.mean(pool.p_max)))
        if pool.l_min is not None:
            return clamp01(float(np.mean(np.exp(-pool.l_min))))
        raise MissingScoreError("pool_confidence needs pool score 'p_max' or 'l_min', which this pool does not carry")


@dataclass(frozen=True)
class Constant:
    """A fixed Λ; the paper's "equal" schedule is ``Constant(0.5)``."""

    value: float = 0.5

    def __call__(self, pool: PoolScores) -> float:
        return clamp01(self.value)


@dataclass(frozen=True)
class Linear:
    """Eq. 11: Λ_t = t (1 - c0) / T + c0 (c0 = 0.001, T = 100 in the paper), clamped to [0, 1]."""

    c0: float = 0.001
    T: float = 100.0

    def __call__(self, pool: PoolScores) -> float:
        t = float(pool.round)
        return clamp01(t * (1.0 - self.c0) / self.T + self.c0)


@dataclass(frozen=True)
class Root:
    """Eq. 12: Λ_t = (t (1 - c0^p) / T + c0^p)^(1/p) (Platanios et al.'s root curriculum), clamped."""

    p: float = 2.0
    c0: float = 0.001
    T: float = 100.0

    def __call__(self, pool: PoolScores) -> float:
        t = float(pool.round)
        c0p = self.c0**self.p
        base = t * (1.0 - c0p) / self.T + c0p
        return clamp01(max(base, 0.0) ** (1.0 / self.p))


SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "pool_confidence": PoolConfidence,
    "pool_confidence_per_char": lambda **kw: PoolConfidence(per_char=True, **kw),
    "equal": lambda **kw: Constant(0.5, **kw),
    "constant": Constant,
    "linear": Linear,
    "root": Root,
}


def get_schedule(spec: Union[str, float, Schedule], **kwargs: Any) -> Schedule:
    """A schedule from a name in :data:`SCHEDULES` (with its keyword arguments, e.g. ``p`` for "root"),
    a number (a constant Λ), or a callable (returned as is)."""
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Constant(float(spec))
    if isinstance(spec, str):
        if spec not in SCHEDULES:
            raise KeyError(f"unknown schedule {spec!r}; known: {', '.join(sorted(SCHEDULES))}")
        return SCHEDULES[spec](**kwargs)
    if callable(spec):
        return spec
    raise TypeError(f"a schedule is a name, a number or a callable, got {type(spec).__name__}")


def schedule_to_dict(schedule: Schedule) -> dict[str, Any]:
    """A JSON-able description of a dataclass schedule (for logs and model metadata)."""
    d: dict[str, Any] = {"type": type(schedule).__name__}
    try:
        d.update(asdict(schedule))  # type: ignore[arg-type]
    except TypeError:
        pass
    return d
