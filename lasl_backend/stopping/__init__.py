"""When to stop labeling: the numbers each version adds to the signal (held-back F1 with its interval,
agreement with the previous version on the stop set, the learning-curve fit) and the rule that turns
them into a recommendation."""

from __future__ import annotations

from .agreement import char_tags, cohen_kappa, version_kappa
from .bootstrap import F1Interval, RecordCounts, f1_interval, micro_f1, record_counts
from .heldout import holdout_key
from .curve import C_GRID, MIN_POINTS, CurveFit, fit_learning_curve
from .rule import KEEP, NOT_ENOUGH_DATA, SLOWING, STOP, Recommendation, StopRule, VersionSignal, recommend

__all__ = ["char_tags", "cohen_kappa", "version_kappa", "holdout_key",
           "F1Interval", "RecordCounts", "f1_interval", "micro_f1", "record_counts",
           "C_GRID", "MIN_POINTS", "CurveFit", "fit_learning_curve",
           "KEEP", "NOT_ENOUGH_DATA", "SLOWING", "STOP", "Recommendation", "StopRule", "VersionSignal", "recommend"]
