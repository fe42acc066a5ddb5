"""The stop recommendation: turns each version's numbers into "keep labeling", "gains slowing" or "stop".

Two signals must agree before labeling should stop: the predictions have stabilized (consecutive
versions agree on the stop set with kappa near 1) and the learning curve has flattened (the fitted
curve expects little held-back F1 from more annotations). Either one alone only says gains are
slowing. It reads only these numbers, never a model, so it is cheap enough to run on every request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from .curve import MIN_POINTS, CurveFit, fit_learning_curve

__all__ = ["NOT_ENOUGH_DATA", "KEEP", "SLOWING", "STOP", "StopRule", "VersionSignal", "Recommendation",
           "finite_number", "labeling_steps", "recommend"]

NOT_ENOUGH_DATA = "not enough data yet"
KEEP = "keep labeling"
SLOWING = "gains slowing"
STOP = "stop"


@dataclass(frozen=True)
class StopRule:
    """The thresholds: stop once the last ``kappa_window`` versions that added annotations agree with
    kappa ≥ ``kappa_threshold`` and +``horizon`` annotations are expected to gain less than ``stop_gain``
    held-back F1; gains count as slowing below ``slow_gain``. Nothing is recommended before
    ``min_annotations``."""

    min_annotations: int = 100
    kappa_threshold: float = 0.98
    kappa_window: int = 4
    stop_gain: float = 0.05
    slow_gain: float = 0.05
    horizon: int = 500

    def __post_init__(self) -> None:
        if self.min_annotations < 0:
            raise ValueError(f"min_annotations must be ≥ 0, got {self.min_annotations}")
        if not 0.0 < self.kappa_threshold <= 1.0:
            raise ValueError(f"kappa_threshold must be in (0, 1], got {self.kappa_threshold}")
        if self.kappa_window < 1:
            raise ValueError(f"kappa_window must be ≥ 1, got {self.kappa_window}")
        if not 0.0 <= self.stop_gain <= self.slow_gain:
            raise ValueError(f"need 0 ≤ stop_gain ≤ slow_gain, got {self.stop_gain} and {self.slow_gain}")
        if self.horizon < 1:
            raise ValueError(f"horizon must be ≥ 1, got {self.horizon}")


def finite_number(x: Any) -> float | None:
    """A finite float; None for None, NaN, infinities and anything that is not a number."""
    if x is None or isinstance(x, bool):
        return None
    try:
        value = float(x)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class VersionSignal:
    """One model version's numbers: the annotations it was trained on, its held-back F1 over
    ``heldout_records`` records, and its kappa with the previous version on the stop set (None or NaN
    where there is none)."""

    n_labeled: int
    heldout_f1: float | None
    heldout_records: int
    kappa: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: a NaN value becomes None."""
        return {"n_labeled": self.n_labeled, "heldout_f1": finite_number(self.heldout_f1),
                "heldout_records": self.heldout_records, "kappa": finite_number(self.kappa)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VersionSignal:
        return cls(n_labeled=int(d["n_labeled"]), heldout_f1=finite_number(d.get("heldout_f1")),
                   heldout_records=int(d.get("heldout_records") or 0), kappa=finite_number(d.get("kappa")))


@dataclass(frozen=True)
class Recommendation:
    """The state, the sentences that explain it, the curve fit behind it and its expected F1 gains
    (keyed "+100", "+500" and "+horizon"; empty without a fit)."""

    state: str
    reasons: tuple[str, ...]
    fit: CurveFit | None = None
    expected_gain: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "reasons": list(self.reasons),
                "fit": None if self.fit is None else self.fit.to_dict(), "expected_gain": dict(self.expected_gain)}


def labeling_steps(history: Sequence[VersionSignal]) -> list[VersionSignal]:
    """The versions trained on more annotations than the version before them. A follow-up run on the same
    annotations (or one after deletions) agrees with its predecessor however far labeling still has to go,
    so its kappa says nothing about whether more labels change the model."""
    return [v for prev, v in zip([None, *history], history) if prev is None or v.n_labeled > prev.n_labeled]


def _stability(history: Sequence[VersionSignal], rule: StopRule) -> tuple[bool, str]:
    """Whether the last ``kappa_window`` versions that added annotations all agree with their
    predecessors, and why."""
    steps = labeling_steps(history)
    if len(steps) < rule.kappa_window:
        return False, (f"only {len(steps)} version(s) with new annotations; kappa stability needs "
                       f"{rule.kappa_window}")
    kappas = [finite_number(v.kappa) for v in steps[-rule.kappa_window:]]
    shown = ", ".join("n/a" if k is None else f"{k:.3f}" for k in kappas)
    stable = all(k is not None and k >= rule.kappa_threshold for k in kappas)
    relation = "≥" if stable else "not all ≥"
    return stable, f"kappa {relation} {rule.kappa_threshold:g} on the last {rule.kappa_window} versions ({shown})"


def _fit_history(history: Sequence[VersionSignal]) -> CurveFit | None:
    """The learning curve through the versions with a held-back F1, weighted by their record counts."""
    scored = [v for v in history if finite_number(v.heldout_f1) is not None]
    return fit_learning_curve([float(v.n_labeled) for v in scored], [float(v.heldout_f1) for v in scored],
                              weights=[float(v.heldout_records) for v in scored])


def _expected_gains(fit: CurveFit, n_now: int, horizon: int) -> dict[str, float]:
    extras = sorted({100, 500, horizon})
    return {f"+{extra}": fit.gain(n_now, extra) for extra in extras}


def recommend(history: Sequence[VersionSignal], rule: StopRule = StopRule()) -> Recommendation:
    """The recommendation after the versions in ``history`` (oldest first)."""
    if not history:
        return Recommendation(NOT_ENOUGH_DATA, ("no model version yet",))
    n_now = history[-1].n_labeled
    if n_now < rule.min_annotations:
        return Recommendation(NOT_ENOUGH_DATA, (f"{n_now} annotations, fewer than the {rule.min_annotations} "
                                                "needed before any recommendation",))
    fit = _fit_history(history)
    if fit is None:
        return Recommendation(NOT_ENOUGH_DATA, (f"the learning curve needs held-back F1 on at least {MIN_POINTS} "
                                                "versions with 3 different annotation counts",))
    stable, kappa_reason = _stability(history, rule)
    gains = _expected_gains(fit, n_now, rule.horizon)
    gain = gains[f"+{rule.horizon}"]
    plateau = gain < rule.stop_gain
    curve_reason = (f"learning curve through {fit.n_points} versions (ceiling {fit.a:.3f}, rmse {fit.rmse:.3f}) "
                    f"expects +{gain:.3f} held-back F1 from {rule.horizon} more annotations "
                    f"({'<' if plateau else '≥'} {rule.stop_gain:g}{': plateau' if plateau else ''})")
    if stable and plateau:
        state = STOP
    elif stable or plateau or gain < rule.slow_gain:
        state = SLOWING
    else:
        state = KEEP
    return Recommendation(state, (kappa_reason, curve_reason), fit=fit, expected_gain=gains)
