"""What a record costs its annotator: seconds ≈ a + b·characters + c·regions, fitted from Label Studio's
``lead_time`` once a project has enough of them, and characters until then.

``lead_time`` is noisy: an annotator leaves a task open over lunch, a client sends null, a negative or a
string. :func:`fit_cost_model` therefore keeps only finite positive times under :data:`MAX_SECONDS`, fits
by iteratively reweighted least squares with Tukey's biweight (a time far from the fit gets weight 0,
so one overnight task does not move it), and keeps every coefficient non-negative (an extra character
never saves time). Below ``min_annotations`` usable times it returns None: rank per character.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["MAX_SECONDS", "MIN_ANNOTATIONS", "CostModel", "clean_lead_time", "fit_cost_model"]

#: a lead time above this (4 hours) is not a measurement of one task
MAX_SECONDS = 4 * 3600.0
#: usable lead times needed before seconds replace characters
MIN_ANNOTATIONS = 30
_BISQUARE_C = 4.685


def clean_lead_time(value: Any) -> float | None:
    """A lead time in seconds, or None for anything that is not a finite number in (0, MAX_SECONDS]."""
    if isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return x if math.isfinite(x) and 0.0 < x <= MAX_SECONDS else None


@dataclass(frozen=True)
class CostModel:
    """seconds = intercept + per_char·characters + per_region·regions, fitted on ``n`` annotations
    (``n_used`` kept by the robust fit); ``mad_seconds``: the median absolute residual of those."""

    intercept: float
    per_char: float
    per_region: float
    n: int
    n_used: int
    mad_seconds: float

    def seconds(self, n_chars: np.ndarray | Sequence[float], n_regions: np.ndarray | Sequence[float]) -> np.ndarray:
        """Expected seconds per record (at least one)."""
        c = np.asarray(n_chars, dtype=np.float64)
        r = np.asarray(n_regions, dtype=np.float64)
        return np.maximum(1.0, self.intercept + self.per_char * c + self.per_region * r)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CostModel:
        return cls(**{k: d[k] for k in ("intercept", "per_char", "per_region", "n", "n_used", "mad_seconds")})


def _nonneg_lstsq(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least squares with every coefficient ≥ 0 (an active set over three columns)."""
    free = list(range(x.shape[1]))
    sw = np.sqrt(w)
    while True:
        beta = np.zeros(x.shape[1])
        if free:
            beta[free] = np.linalg.lstsq(x[:, free] * sw[:, None], y * sw, rcond=None)[0]
        neg = [j for j in free if beta[j] < 0]
        if not neg:
            return beta
        free.remove(min(neg, key=lambda j: beta[j]))


def fit_cost_model(n_chars: Sequence[float], n_regions: Sequence[float], lead_times: Sequence[Any],
                   min_annotations: int = MIN_ANNOTATIONS) -> CostModel | None:
    """The robust fit described in the module docstring, or None with too few usable lead times."""
    if not len(n_chars) == len(n_regions) == len(lead_times):
        raise ValueError(f"one character count, region count and lead time per task: got lengths {len(n_chars)}, "
                         f"{len(n_regions)} and {len(lead_times)}")
    features = np.column_stack([np.asarray(n_chars, np.float64), np.asarray(n_regions, np.float64)]).reshape(-1, 2)
    if not np.all(np.isfinite(features)) or np.any(features < 0):
        i = int(np.argmax(~np.all(np.isfinite(features) & (features >= 0), axis=1)))
        raise ValueError(f"task {i}: character and region counts must be finite and >= 0, got {features[i].tolist()}")
    secs = [clean_lead_time(t) for t in lead_times]
    keep = [i for i, s in enumerate(secs) if s is not None]
    if len(keep) < max(3, min_annotations):
        return None
    y = np.array([secs[i] for i in keep], dtype=np.float64)
    x = np.column_stack([np.ones(len(keep)), features[keep]])
    w = np.ones(len(keep))
    beta = _nonneg_lstsq(x, y, w)
    for _ in range(30):
        resid = y - x @ beta
        centre = float(np.median(resid))  # a first fit pulled up by long times misses most tasks by the same amount
        scale = 1.4826 * float(np.median(np.abs(resid - centre))) or 1e-6
        u = (resid - centre) / (_BISQUARE_C * scale)
        w = np.where(np.abs(u) < 1, (1 - u**2) ** 2, 0.0)
        if w.sum() < 3:
            break
        new = _nonneg_lstsq(x, y, w)
        if np.allclose(new, beta, rtol=1e-6, atol=1e-9):
            beta = new
            break
        beta = new
    used = w > 0
    mad = float(np.median(np.abs((y - x @ beta)[used]))) if used.any() else float("nan")
    return CostModel(float(beta[0]), float(beta[1]), float(beta[2]), len(lead_times), int(used.sum()), mad)
