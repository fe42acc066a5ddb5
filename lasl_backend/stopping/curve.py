"""The learning curve: held-back F1 against the number of annotations, as an inverse power law.

f(n) = a − b·n^(−c) rises towards the ceiling a ever more slowly; extrapolating it answers "what would
500 more annotations buy?" with a number. The fit is a grid over the exponent c and, for each c, a
weighted linear least-squares fit of (a, b), constrained to b ≥ 0 (F1 does not fall with more labels)
and a ≤ 1 (F1 cannot exceed 1); cheap, deterministic, and needing nothing beyond numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["MIN_POINTS", "C_GRID", "CurveFit", "fit_learning_curve"]

#: the fewest usable (n, F1) points a fit needs (it has three parameters)
MIN_POINTS = 4
#: the exponents c tried, log-spaced in [0.02, 2]
C_GRID = np.geomspace(0.02, 2.0, 200)


@dataclass(frozen=True)
class CurveFit:
    """f(n) = a − b·n^(−c), fitted to ``n_points`` points with weighted root-mean-square residual ``rmse``."""

    a: float
    b: float
    c: float
    n_points: int
    rmse: float

    def predict(self, n: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """The curve at n annotations (n > 0), as float64."""
        return self.a - self.b * np.power(np.asarray(n, dtype=np.float64), -self.c)

    def gain(self, n_now: float, extra: float) -> float:
        """Expected F1 gain from ``extra`` more annotations after ``n_now``."""
        return float(self.predict(n_now + extra) - self.predict(n_now))

    def to_dict(self) -> dict[str, float | int]:
        return {"a": self.a, "b": self.b, "c": self.c, "n_points": self.n_points, "rmse": self.rmse}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CurveFit:
        return cls(a=float(d["a"]), b=float(d["b"]), c=float(d["c"]), n_points=int(d["n_points"]),
                   rmse=float(d["rmse"]))


def _usable_points(n: Sequence[float], f1: Sequence[float],
                   weights: Sequence[float] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The points with finite values, n > 0 and a positive weight (a point with none carries nothing)."""
    n_arr = np.asarray(n, dtype=np.float64).reshape(-1)
    y = np.asarray(f1, dtype=np.float64).reshape(-1)
    w = np.ones_like(n_arr) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if not n_arr.size == y.size == w.size:
        raise ValueError(f"n, f1 and weights differ in length: {n_arr.size}, {y.size}, {w.size}")
    keep = np.isfinite(n_arr) & np.isfinite(y) & np.isfinite(w) & (n_arr > 0) & (w > 0)
    return n_arr[keep], y[keep], w[keep]


def _best_line_per_c(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row of x ([n_c, m], x = n^(−c)), the (a, b, weighted SSE) of y ≈ a − b·x with b ≥ 0 and
    a ≤ 1. The problem is convex, so its optimum is the unconstrained one when that is feasible, else
    the best of the optima along the two edges b = 0 and a = 1 (each a clipped 1-D fit)."""
    w_sum = w.sum()
    x_mean = (x * w).sum(axis=1) / w_sum
    y_mean = float((y * w).sum() / w_sum)
    sxx = (w * (x - x_mean[:, None]) ** 2).sum(axis=1)
    sxy = (w * (x - x_mean[:, None]) * (y - y_mean)).sum(axis=1)
    b_free = -sxy / sxx
    a_free = y_mean + b_free * x_mean
    a_flat = np.full_like(x_mean, min(y_mean, 1.0))
    b_flat = np.zeros_like(x_mean)
    a_top = np.ones_like(x_mean)
    b_top = np.maximum(0.0, (w * x * (1.0 - y)).sum(axis=1) / (w * x * x).sum(axis=1))
    candidates = [(a_free, b_free), (a_flat, b_flat), (a_top, b_top)]
    sse = np.stack([(w * (y - (a[:, None] - b[:, None] * x)) ** 2).sum(axis=1) for a, b in candidates])
    feasible = np.stack([(b >= 0) & (a <= 1.0) for a, b in candidates])
    sse = np.where(feasible, sse, np.inf)
    pick = np.argmin(sse, axis=0)
    cols = np.arange(x.shape[0])
    a_all = np.stack([a for a, _ in candidates])[pick, cols]
    b_all = np.stack([b for _, b in candidates])[pick, cols]
    return a_all, b_all, sse[pick, cols]


def fit_learning_curve(n: Sequence[float], f1: Sequence[float],
                       weights: Sequence[float] | None = None) -> CurveFit | None:
    """Fit f(n) = a − b·n^(−c), 0 < c ≤ 2, b ≥ 0, a ≤ 1, by weighted least squares (weights, e.g. the
    held-back records behind each point, default equal). Points with a non-finite value, n ≤ 0 or a
    weight ≤ 0 are dropped; None when fewer than MIN_POINTS remain or fewer than 3 distinct n."""
    n_arr, y, w = _usable_points(n, f1, weights)
    if n_arr.size < MIN_POINTS or np.unique(n_arr).size < 3:
        return None
    x = np.power(n_arr[None, :], -C_GRID[:, None])
    a_all, b_all, sse = _best_line_per_c(x, y, w)
    best = int(np.argmin(sse))
    rmse = math.sqrt(max(0.0, float(sse[best])) / float(w.sum()))
    return CurveFit(a=float(a_all[best]), b=float(b_all[best]), c=float(C_GRID[best]),
                    n_points=int(n_arr.size), rmse=rmse)
