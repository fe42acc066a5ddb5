"""Degenerate and hostile inputs for the stopping signal's pieces: kappa of constant or tiny tag arrays,
character tags of regions past the text, bootstrap and micro F1 of zero or impossible counts, and the
learning-curve fit through NaN values or a single annotation count."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from lasl_backend.stopping import char_tags, cohen_kappa, f1_interval, fit_learning_curve, micro_f1, version_kappa


@dataclass
class Span:
    start: int
    end: int
    label: str


# ---- kappa -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("a, b, kappa", [([3], [3], 1.0), ([3], [4], 0.0), ([0] * 5, [0] * 5, 1.0), ([0] * 5, [1] * 5, 0.0),
                                         ([0, 0, 0, 0], [0, 0, 0, 1], 0.0), ([0, 1, 0, 1], [1, 0, 1, 0], -1.0)])
def test_kappa_degenerate_cases(a: list[int], b: list[int], kappa: float) -> None:
    """One record, a single class on both sides, one side constant, perfect disagreement: the usual definition."""
    assert cohen_kappa(np.array(a), np.array(b)) == pytest.approx(kappa)


def test_kappa_of_a_huge_constant_array_is_exactly_one() -> None:
    """p_exp of constant equal arrays is exactly 1 in float64, so no 0/0 on ten million characters."""
    a = np.zeros(10**7, dtype=np.int16)
    assert cohen_kappa(a, a) == 1.0


def test_kappa_mismatched_lengths_and_empty() -> None:
    """Different lengths raise ValueError naming both; empty input is NaN; version_kappa skips edited records."""
    with pytest.raises(ValueError, match="2 and 3"):
        cohen_kappa(np.zeros(2), np.zeros(3))
    assert math.isnan(cohen_kappa(np.zeros(0), np.zeros(0)))
    assert math.isnan(version_kappa({"a": np.zeros(3)}, {"a": np.zeros(4)}))
    assert version_kappa({"a": np.zeros(3), "b": np.array([0, 1])}, {"a": np.zeros(4), "b": np.array([0, 1])}) == 1.0


# ---- char_tags ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("span, tags", [(Span(3, 10, "X"), [0, 0, 0, 1, 1]), (Span(7, 10, "X"), [0] * 5),
                                        (Span(-3, 2, "X"), [1, 1, 0, 0, 0]), (Span(-3, -1, "X"), [0] * 5),
                                        (Span(4, 1, "X"), [0] * 5), (Span(0, 2, "unknown"), [2, 2, 0, 0, 0])])
def test_char_tags_clip_regions_to_the_text(span: Span, tags: list[int]) -> None:
    """Offsets past either end are clipped, reversed regions tag nothing, unknown labels get the extra tag."""
    assert char_tags(5, [span], ["X"]).tolist() == tags


def test_char_tags_negative_length_is_empty() -> None:
    """A negative character count gives no tags rather than an error deep in numpy."""
    assert char_tags(-5, [Span(0, 2, "X")], ["X"]).size == 0


# ---- bootstrap / micro F1 ------------------------------------------------------------------------------------------
def test_f1_interval_all_zero_counts_and_one_record() -> None:
    """Nothing predicted nor gold scores 0 with a zero-width interval; one record's interval is its F1."""
    assert f1_interval([(0, 0, 0)] * 5) == f1_interval([(0, 0, 0)] * 5, seed=3)
    zero = f1_interval([(0, 0, 0)] * 5)
    assert (zero.f1, zero.lo, zero.hi) == (0.0, 0.0, 0.0)
    one = f1_interval([(1, 2, 2)])
    assert (one.f1, one.lo, one.hi, one.n_records) == (0.5, 0.5, 0.5, 1)


@pytest.mark.parametrize("counts", [[[5, 1, 1]], [[0, -1, 1]], [[1, 2]]])
def test_micro_f1_rejects_impossible_counts(counts: list[list[int]]) -> None:
    """micro_f1 (what the replay's rule and CSV read) refuses the counts f1_interval refuses."""
    with pytest.raises(ValueError):
        f1_interval(counts)
    with pytest.raises(ValueError):
        micro_f1(counts)


# ---- learning curve --------------------------------------------------------------------------------------------------
def test_curve_drops_nan_f1_and_needs_distinct_n() -> None:
    """NaN F1 values are dropped (same fit as without them); all n equal, or all F1 NaN, give no fit."""
    n, f1 = [10, 20, 30, 40, 50, 60], [0.1, 0.2, 0.3, 0.35, 0.4, 0.42]
    with_nan = fit_learning_curve(n + [25], f1 + [float("nan")])
    assert with_nan == fit_learning_curve(n, f1)
    assert fit_learning_curve([10] * 5, [0.5, 0.6, 0.5, 0.6, 0.55]) is None
    assert fit_learning_curve([10, 20, 30, 40], [float("nan")] * 4) is None


def test_curve_flat_points_fit_a_flat_line() -> None:
    """A flat curve (all F1 equal, even all 0) is fitted exactly: ceiling at the value, no gain."""
    for value in (0.0, 0.5):
        fit = fit_learning_curve([10, 20, 30, 40], [value] * 4)
        assert fit is not None and fit.a == value and fit.b == 0 and fit.rmse == 0.0 and fit.gain(40, 500) == 0.0


def test_curve_f1_above_one_is_capped() -> None:
    """Values above 1 (not an F1) still give a fit within the constraints a ≤ 1, b ≥ 0."""
    fit = fit_learning_curve([10, 20, 30, 40], [1.5, 2.0, 2.5, 3.0])
    assert fit is not None and fit.a <= 1.0 and fit.b >= 0.0
