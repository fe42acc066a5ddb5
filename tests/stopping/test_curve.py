"""The learning-curve fit against points drawn from known power laws: it recovers them, respects its
constraints, is the best fit on its grid, and refuses when there is too little to fit."""

from __future__ import annotations

import numpy as np
import pytest

from lasl_backend.stopping import C_GRID, MIN_POINTS, CurveFit, fit_learning_curve

SIZES = np.array([50, 100, 200, 400, 800, 1600, 3200], dtype=np.float64)


def _power_law(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a - b * np.power(n, -c)


def _weighted_sse(fit: CurveFit, n: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * (y - fit.predict(n)) ** 2))


def test_recovers_an_exact_power_law() -> None:
    fit = fit_learning_curve(SIZES, _power_law(SIZES, 0.85, 0.9, 0.5))
    assert fit is not None and fit.n_points == SIZES.size
    step = C_GRID[1] / C_GRID[0]  # c is found to within one grid step
    assert 0.5 / step <= fit.c <= 0.5 * step
    assert np.allclose(fit.predict(SIZES), _power_law(SIZES, 0.85, 0.9, 0.5), atol=2e-3)
    assert fit.predict(6400) == pytest.approx(_power_law(np.array(6400.0), 0.85, 0.9, 0.5), abs=5e-3)


def test_an_exponent_on_the_grid_is_recovered_exactly() -> None:
    c = float(C_GRID[120])
    fit = fit_learning_curve(SIZES, _power_law(SIZES, 0.8, 1.5, c))
    assert fit is not None
    assert (fit.a, fit.b, fit.c) == pytest.approx((0.8, 1.5, c), rel=1e-6)
    assert fit.rmse == pytest.approx(0.0, abs=1e-9)


def test_noisy_points_extrapolate_close_to_the_truth() -> None:
    rng = np.random.default_rng(0)
    y = _power_law(SIZES, 0.85, 2.0, 0.5) + rng.normal(0.0, 0.004, SIZES.size)
    fit = fit_learning_curve(SIZES, y)
    assert fit is not None
    true_gain = float(_power_law(np.array(3700.0), 0.85, 2.0, 0.5) - _power_law(np.array(3200.0), 0.85, 2.0, 0.5))
    assert fit.gain(3200, 500) == pytest.approx(true_gain, abs=0.005)
    assert fit.rmse < 0.01


def test_the_fit_beats_every_other_candidate_on_its_grid() -> None:
    rng = np.random.default_rng(1)
    c_true = float(C_GRID[90])
    y = _power_law(SIZES, 0.7, 1.2, c_true) + rng.normal(0.0, 0.01, SIZES.size)
    w = rng.uniform(20, 200, SIZES.size)
    fit = fit_learning_curve(SIZES, y, weights=w)
    assert fit is not None
    best = _weighted_sse(fit, SIZES, y, w)
    assert best <= _weighted_sse(CurveFit(0.7, 1.2, c_true, 0, 0.0), SIZES, y, w) + 1e-12
    for _ in range(2000):  # random feasible parameters: none fits better
        other = CurveFit(rng.uniform(0.3, 1.0), rng.uniform(0.0, 5.0), float(rng.choice(C_GRID)), 0, 0.0)
        assert best <= _weighted_sse(other, SIZES, y, w) + 1e-12
    assert fit.rmse == pytest.approx(np.sqrt(best / w.sum()))


def test_a_ceiling_above_one_is_fitted_on_the_edge_a_equals_one() -> None:
    # points heading for 1.2 want a > 1; the best allowed curve keeps rising (b > 0) towards a = 1
    y = _power_law(SIZES, 1.2, 2.0, 0.3)
    fit = fit_learning_curve(SIZES, y)
    assert fit is not None and fit.a == 1.0 and fit.b > 0.0
    best = _weighted_sse(fit, SIZES, y, np.ones_like(y))
    rng = np.random.default_rng(4)
    for _ in range(2000):  # random allowed curves near the edge: none fits better
        other = CurveFit(rng.uniform(0.9, 1.0), rng.uniform(0.0, 5.0), float(rng.choice(C_GRID)), 0, 0.0)
        assert best <= _weighted_sse(other, SIZES, y, np.ones_like(y)) + 1e-12


def test_falling_points_fit_a_flat_line_at_their_weighted_mean() -> None:
    # with b ≥ 0 nothing can fall; the best flat line is the weighted mean
    y = np.linspace(0.8, 0.6, SIZES.size)
    w = np.arange(1, SIZES.size + 1, dtype=np.float64)
    fit = fit_learning_curve(SIZES, y, weights=w)
    assert fit is not None
    assert fit.b == 0.0 and fit.a == pytest.approx(float(np.sum(w * y) / np.sum(w)))
    assert fit.gain(3200, 500) == 0.0


def test_scaling_all_weights_changes_nothing() -> None:
    y = _power_law(SIZES, 0.85, 2.0, 0.5) + np.random.default_rng(2).normal(0.0, 0.005, SIZES.size)
    plain = fit_learning_curve(SIZES, y)
    scaled = fit_learning_curve(SIZES, y, weights=np.full(SIZES.size, 37.0))
    assert plain is not None and scaled is not None
    assert (scaled.a, scaled.b, scaled.c, scaled.rmse) == pytest.approx((plain.a, plain.b, plain.c, plain.rmse))


def test_a_light_outlier_moves_the_fit_less_than_a_heavy_one() -> None:
    y = _power_law(SIZES, 0.85, 2.0, 0.5)
    y_out = y.copy()
    y_out[3] -= 0.2
    truth = CurveFit(0.85, 2.0, 0.5, 0, 0.0)
    light = fit_learning_curve(SIZES, y_out, weights=[100, 100, 100, 1, 100, 100, 100])
    heavy = fit_learning_curve(SIZES, y_out, weights=[1, 1, 1, 100, 1, 1, 1])
    assert light is not None and heavy is not None
    err = lambda f: float(np.max(np.abs(f.predict(SIZES) - truth.predict(SIZES))))  # noqa: E731
    assert err(light) < err(heavy)


def test_unusable_points_are_dropped() -> None:
    y = _power_law(SIZES, 0.85, 2.0, 0.5)
    clean = fit_learning_curve(SIZES, y)
    dirty = fit_learning_curve(np.r_[SIZES, 0.0, -5.0, 900.0, np.nan, 700.0],
                               np.r_[y, 0.1, 0.1, np.nan, 0.5, 0.2],
                               weights=np.r_[np.ones(SIZES.size), 1, 1, 1, 1, 0])
    assert clean is not None and dirty is not None
    assert dirty == clean


def test_too_few_points_or_sizes_give_no_fit() -> None:
    y = _power_law(SIZES, 0.85, 2.0, 0.5)
    assert fit_learning_curve(SIZES[: MIN_POINTS - 1], y[: MIN_POINTS - 1]) is None
    assert fit_learning_curve(SIZES[:MIN_POINTS], y[:MIN_POINTS]) is not None
    assert fit_learning_curve([100, 100, 200, 200, 200], [0.5, 0.52, 0.6, 0.61, 0.6]) is None  # two sizes
    assert fit_learning_curve([100, 200, np.nan, 400], [0.5, 0.6, 0.65, 0.7]) is None  # three left
    assert fit_learning_curve([], []) is None


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="length"):
        fit_learning_curve([1, 2, 3, 4], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="length"):
        fit_learning_curve([1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4], weights=[1, 1])


def test_gain_is_the_difference_of_predictions_and_shrinks_with_n() -> None:
    fit = CurveFit(a=0.9, b=2.0, c=0.5, n_points=5, rmse=0.0)
    assert fit.gain(400, 500) == pytest.approx((0.9 - 2.0 / 30.0) - (0.9 - 2.0 / 20.0))
    gains = [fit.gain(n, 500) for n in (100, 1000, 10000)]
    assert gains[0] > gains[1] > gains[2] > 0
    assert fit.predict([100, 400]).dtype == np.float64


def test_dict_round_trip() -> None:
    fit = fit_learning_curve(SIZES, _power_law(SIZES, 0.85, 2.0, 0.5))
    assert fit is not None
    assert CurveFit.from_dict(fit.to_dict()) == fit
