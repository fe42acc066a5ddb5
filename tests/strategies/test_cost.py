"""The annotation cost model: cleaning Label Studio's lead times and the robust, non-negative fit of seconds."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from lasl_backend.strategies.cost import MAX_SECONDS, MIN_ANNOTATIONS, CostModel, clean_lead_time, fit_cost_model

# the truth of the synthetic projects: seconds = 20 + 0.05·characters + 3·regions
A, B, C = 20.0, 0.05, 3.0


def synthetic(n: int = 200, seed: int = 0, noise: float = 4.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(characters, regions, seconds) of ``n`` annotations drawn from the truth plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    chars = rng.integers(50, 2000, n).astype(float)
    regions = rng.integers(0, 30, n).astype(float)
    secs = A + B * chars + C * regions + rng.normal(0.0, noise, n)
    return chars, regions, secs


def assert_recovers(m: CostModel | None, rel: float = 0.1) -> None:
    assert m is not None
    assert m.intercept == pytest.approx(A, rel=rel + 0.15)  # the intercept is the least determined
    assert m.per_char == pytest.approx(B, rel=rel)
    assert m.per_region == pytest.approx(C, rel=rel)


# ---------------------------------------------------------------- clean_lead_time


@pytest.mark.parametrize("value", [None, True, False, "", "abc", "12s", "nan", "inf", -1, -0.5, 0, 0.0, -0.0,
                                   float("nan"), float("inf"), -float("inf"), MAX_SECONDS + 1, 5 * 3600, "20000",
                                   [12], {"s": 12}, object(), 3 + 0j])
def test_unusable_lead_times_are_none(value: Any) -> None:
    """Anything that is not a finite number in (0, 4 h] is None: nulls, bools, words, non-positive, NaN, inf, too long."""
    assert clean_lead_time(value) is None


@pytest.mark.parametrize("value, seconds", [(1, 1.0), (42, 42.0), (12.5, 12.5), ("12.5", 12.5), (" 30 ", 30.0),
                                            ("1e2", 100.0), (MAX_SECONDS, MAX_SECONDS), (0.001, 0.001),
                                            (np.float32(2.5), 2.5), (np.int64(7), 7.0), (Decimal("3.25"), 3.25)])
def test_usable_lead_times_are_seconds(value: Any, seconds: float) -> None:
    """Positive finite numbers up to 4 h, and strings of them, come back as float seconds."""
    got = clean_lead_time(value)
    assert isinstance(got, float) and got == pytest.approx(seconds)


def test_max_seconds_is_four_hours() -> None:
    """The cut-off is 4 hours."""
    assert MAX_SECONDS == 4 * 3600.0


def test_an_integer_beyond_float_range_is_none() -> None:
    """A lead time too large for a float is unusable (None), not an exception."""
    assert clean_lead_time(json.loads("1" + "0" * 400)) is None


# ---------------------------------------------------------------- fit_cost_model


def test_recovers_known_coefficients() -> None:
    """On noisy synthetic data the fit finds the true intercept, per-character and per-region seconds."""
    chars, regions, secs = synthetic()
    m = fit_cost_model(chars.tolist(), regions.tolist(), secs.tolist())
    assert_recovers(m, rel=0.05)
    assert m.n == 200 and 180 <= m.n_used <= 200  # Tukey's weight drops only the far tail of Gaussian noise
    assert 0.0 < m.mad_seconds < 3 * 4.0  # median |residual| of N(0, 4) is about 2.7




@pytest.mark.parametrize("outlier", [3 * 3600.0, 0.1])
def test_resists_gross_outliers(outlier: float) -> None:
    """10% of the times set to hours (a task left open) or to 0.1 s (a skip) barely move the fit."""
    chars, regions, secs = synthetic(seed=1)
    bad = np.random.default_rng(2).choice(secs.size, secs.size // 10, replace=False)
    secs[bad] = outlier
    m = fit_cost_model(chars, regions, secs)
    assert_recovers(m, rel=0.1)
    assert m.n_used <= secs.size - bad.size + 5  # the outliers got weight 0


def test_one_overnight_task_does_not_move_the_first_fit() -> None:
    """With MIN_ANNOTATIONS times, one of them 4 hours (a task left open overnight), the fit still finds the truth."""
    chars, regions, secs = synthetic(n=MIN_ANNOTATIONS, seed=1)
    secs[0] = MAX_SECONDS
    m = fit_cost_model(chars, regions, secs)
    assert_recovers(m, rel=0.15)
    assert m.n_used == MIN_ANNOTATIONS - 1


def test_ordinary_least_squares_would_be_pulled_by_those_outliers() -> None:
    """The outlier data really is hard: a plain least-squares fit of it is far from the truth."""
    chars, regions, secs = synthetic(seed=1)
    bad = np.random.default_rng(2).choice(secs.size, secs.size // 10, replace=False)
    secs[bad] = 3 * 3600.0
    x = np.column_stack([np.ones(secs.size), chars, regions])
    ols = np.linalg.lstsq(x, secs, rcond=None)[0]
    assert abs(ols[0] - A) > 100.0


def test_coefficients_stay_non_negative_for_a_negative_slope() -> None:
    """When time falls with length in the data, the per-character cost is clamped at 0, never negative."""
    rng = np.random.default_rng(4)
    chars = rng.integers(100, 2000, 150).astype(float)
    regions = rng.integers(0, 20, 150).astype(float)
    secs = 300.0 - 0.1 * chars + 2.0 * regions + rng.normal(0.0, 3.0, 150)
    assert secs.min() > 0  # all usable
    m = fit_cost_model(chars, regions, secs)
    assert m is not None
    assert m.intercept >= 0.0 and m.per_char >= 0.0 and m.per_region >= 0.0
    assert m.per_char == 0.0


def test_a_negative_intercept_is_clamped_too() -> None:
    """A truth with a negative intercept gives intercept 0 and non-negative slopes."""
    rng = np.random.default_rng(5)
    chars = rng.integers(500, 3000, 120).astype(float)
    regions = rng.integers(0, 10, 120).astype(float)
    secs = -40.0 + 0.1 * chars + 1.0 * regions + rng.normal(0.0, 2.0, 120)
    m = fit_cost_model(chars, regions, secs)
    assert m is not None
    assert m.intercept == 0.0 and m.per_char > 0.0 and m.per_region >= 0.0


def test_too_few_usable_lead_times_give_none() -> None:
    """Below ``min_annotations`` usable times (unusable ones do not count) there is no model; at it there is."""
    chars, regions, secs = synthetic(n=40)
    lead: list[Any] = secs.tolist()
    for i in range(40 - 9):  # 9 usable left
        lead[i] = [None, "x", -3, float("nan"), 10**6][i % 5]
    assert fit_cost_model(chars, regions, lead, min_annotations=10) is None
    lead[0] = 55.0  # 10 usable
    m = fit_cost_model(chars, regions, lead, min_annotations=10)
    assert m is not None and m.n == 40 and m.n_used <= 10
    assert MIN_ANNOTATIONS == 30
    assert fit_cost_model(chars[:29], regions[:29], secs[:29]) is None  # the default needs 30
    assert fit_cost_model(chars[:30], regions[:30], secs[:30]) is not None


def test_at_least_three_usable_times_whatever_min_annotations() -> None:
    """Even with ``min_annotations`` below 3, two usable times give no model (three columns to fit)."""
    assert fit_cost_model([10, 20], [1, 2], [5.0, 9.0], min_annotations=0) is None
    assert fit_cost_model([], [], [], min_annotations=0) is None
    assert fit_cost_model([10, 20, 30], [1, 2, 0], [5.0, 9.0, 12.0], min_annotations=0) is not None


@pytest.mark.parametrize("seed", range(5))
def test_garbage_lead_times_never_raise(seed: int) -> None:
    """Lists of nulls, strings, bools, NaN, negatives and overlong times give a model or None, never an error."""
    rng = np.random.default_rng(seed)
    pool: list[Any] = [None, True, False, "", "abc", "nan", "-5", "12", -1, 0, float("nan"), float("inf"), 1e9,
                       {"a": 1}, [3], 7, 45.5, "300"]
    n = 60
    lead = [pool[int(k)] for k in rng.integers(0, len(pool), n)]
    chars = rng.integers(0, 1000, n)
    regions = rng.integers(0, 10, n)
    m = fit_cost_model(chars.tolist(), regions.tolist(), lead, min_annotations=5)
    usable = sum(clean_lead_time(t) is not None for t in lead)
    if usable < 5:
        assert m is None
    else:
        assert isinstance(m, CostModel)
        assert m.intercept >= 0 and m.per_char >= 0 and m.per_region >= 0
        assert all(math.isfinite(v) for v in (m.intercept, m.per_char, m.per_region))


def test_all_times_equal() -> None:
    """Identical times (no spread to estimate) give that time as the intercept, not NaN."""
    chars = np.arange(40, dtype=float) * 10
    m = fit_cost_model(chars, np.zeros(40), [60.0] * 40)
    assert m is not None
    assert m.seconds([0.0, 390.0], [0.0, 0.0]).tolist() == pytest.approx([60.0, 60.0], abs=1e-6)


# ---------------------------------------------------------------- CostModel


def test_seconds_is_the_linear_model_and_at_least_one() -> None:
    """seconds = a + b·chars + c·regions, floored at one second."""
    m = CostModel(intercept=2.0, per_char=0.5, per_region=4.0, n=10, n_used=9, mad_seconds=1.5)
    assert m.seconds([10, 0, 100], [1, 0, 3]).tolist() == [2 + 5 + 4, 2.0, 2 + 50 + 12]
    zero = CostModel(0.0, 0.0, 0.0, 0, 0, 0.0)
    assert zero.seconds([0, 500], [0, 9]).tolist() == [1.0, 1.0]
    assert CostModel(0.2, 0.001, 0.0, 1, 1, 0.0).seconds([100], [0]).tolist() == [1.0]  # 0.3 s → 1


def test_cost_model_dict_round_trip() -> None:
    """to_dict / from_dict (through JSON) give back an equal model; extra keys are ignored."""
    chars, regions, secs = synthetic(n=60)
    m = fit_cost_model(chars, regions, secs)
    assert m is not None
    d = json.loads(json.dumps(m.to_dict()))
    assert set(d) == {"intercept", "per_char", "per_region", "n", "n_used", "mad_seconds"}
    assert CostModel.from_dict(d) == m
    assert CostModel.from_dict(d | {"unit": "seconds"}) == m
    with pytest.raises(KeyError):
        CostModel.from_dict({"intercept": 1.0})
