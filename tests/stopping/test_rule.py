"""The stop recommendation on synthetic histories whose learning curve is a known power law, so the true
gain from more annotations — and hence the right state — follows from construction."""

from __future__ import annotations

from dataclasses import replace

import json
import math

import numpy as np
import pytest

from lasl_backend.stopping.rule import labeling_steps
from lasl_backend.stopping import (KEEP, NOT_ENOUGH_DATA, SLOWING, STOP, StopRule, VersionSignal,
                                   recommend)

A, B, C = 0.85, 2.0, 0.5  # the true curve: f(n) = A − B·n^(−C)

#: the thresholds these histories were built around (the defaults are chosen on replays and may move)
RULE = StopRule(kappa_threshold=0.97, kappa_window=3, stop_gain=0.01, slow_gain=0.03)


def _true_f1(n: float) -> float:
    return A - B * n ** -C


def _true_gain(n: float, extra: float) -> float:
    return _true_f1(n + extra) - _true_f1(n)


def _history(sizes, kappas, noise: float = 0.003, seed: int = 0, records: int = 200) -> list[VersionSignal]:
    rng = np.random.default_rng(seed)
    return [VersionSignal(n_labeled=int(n), heldout_f1=_true_f1(n) + float(rng.normal(0.0, noise)),
                          heldout_records=records, kappa=k) for n, k in zip(sizes, kappas)]


EARLY = [25, 50, 75, 100, 150, 200]
LATE = [100, 200, 400, 800, 1600, 3200, 6400, 12800, 20000]


def test_the_constructed_histories_are_where_the_tests_say() -> None:
    rule = RULE
    assert _true_gain(EARLY[-1], rule.horizon) > 1.4 * rule.slow_gain  # clearly worth labeling on
    assert _true_gain(LATE[-1], rule.horizon) < 0.1 * rule.stop_gain  # clearly flat


@pytest.mark.parametrize("seed", range(5))
def test_early_on_a_rising_curve_keep_labeling(seed: int) -> None:
    rec = recommend(_history(EARLY, [None, 0.70, 0.80, 0.85, 0.88, 0.90], seed=seed), RULE)
    assert rec.state == KEEP
    # five points over a short range pin an extrapolation only roughly (true +500 gain ≈ 0.066)
    assert rec.expected_gain["+500"] == pytest.approx(_true_gain(EARLY[-1], 500), abs=0.02)
    assert rec.expected_gain["+100"] == pytest.approx(_true_gain(EARLY[-1], 100), abs=0.008)


@pytest.mark.parametrize("seed", range(5))
def test_late_on_a_flat_curve_with_stable_predictions_stop(seed: int) -> None:
    kappas = [None, 0.7, 0.8, 0.9, 0.95, 0.96, 0.981, 0.985, 0.990]
    rec = recommend(_history(LATE, kappas, seed=seed), RULE)
    assert rec.state == STOP
    assert rec.expected_gain["+500"] < RULE.stop_gain
    assert "kappa ≥ 0.97 on the last 3 versions (0.981, 0.985, 0.990)" in rec.reasons


def test_a_flat_curve_without_stable_predictions_only_slows() -> None:
    rec = recommend(_history(LATE, [None, 0.7, 0.8, 0.9, 0.95, 0.96, 0.981, 0.93, 0.990]), RULE)
    assert rec.state == SLOWING
    assert any("0.930" in r for r in rec.reasons)


def test_stable_predictions_on_a_rising_curve_only_slow() -> None:
    rec = recommend(_history(EARLY, [None, 0.98, 0.98, 0.98, 0.99, 0.99]), RULE)
    assert rec.state == SLOWING


def test_a_gain_between_the_thresholds_slows() -> None:
    # at n = 3000 the true +500 gain is about 0.0027: between stop_gain and slow_gain it is "slowing";
    # with slow_gain below it too (and unstable kappas) it is still worth labeling on
    sizes = [100, 200, 400, 800, 1600, 3000]
    kappas = [None, 0.5, 0.6, 0.7, 0.8, 0.9]
    gain = _true_gain(3000, 500)
    rec = recommend(_history(sizes, kappas, noise=0.0), replace(RULE, stop_gain=gain / 3, slow_gain=gain * 3))
    assert rec.state == SLOWING
    rec = recommend(_history(sizes, kappas, noise=0.0), replace(RULE, stop_gain=gain / 3, slow_gain=gain / 2))
    assert rec.state == KEEP


@pytest.mark.parametrize("bad", [None, math.nan])
def test_missing_kappas_never_count_as_stable(bad) -> None:
    rec = recommend(_history(LATE, [None, 0.7, 0.8, 0.9, 0.95, 0.96, 0.99, bad, 0.99]), RULE)
    assert rec.state == SLOWING
    assert any("n/a" in r for r in rec.reasons)


def test_fewer_versions_than_the_window_are_not_stable() -> None:
    # a plateau with high kappas everywhere, but a window longer than the history: never stable
    rec = recommend(_history(LATE, [0.99] * len(LATE)), replace(RULE, kappa_window=len(LATE) + 1))
    assert rec.state == SLOWING


def test_fewer_annotations_than_the_minimum_is_not_enough_data() -> None:
    history = _history(LATE, [0.99] * len(LATE))
    rec = recommend(history, replace(RULE, min_annotations=LATE[-1] + 1))
    assert rec.state == NOT_ENOUGH_DATA and rec.fit is None and rec.expected_gain == {}
    assert str(LATE[-1]) in rec.reasons[0]
    assert recommend([], RULE).state == NOT_ENOUGH_DATA


def test_no_curve_fit_is_not_enough_data() -> None:
    # three scored versions (one fewer than a fit needs); the others have no held-back F1
    history = _history([100, 200, 400], [None, 0.99, 0.99])
    history += [VersionSignal(n_labeled=n, heldout_f1=f1, heldout_records=0, kappa=0.99)
                for n, f1 in ((800, None), (1600, math.nan))]
    rec = recommend(history, RULE)
    assert rec.state == NOT_ENOUGH_DATA and rec.fit is None and rec.expected_gain == {}


def test_versions_without_heldout_f1_still_count_for_kappa() -> None:
    history = _history(LATE, [None, 0.7, 0.8, 0.9, 0.95, 0.96, 0.99, 0.99, 0.99])
    history.append(VersionSignal(n_labeled=20500, heldout_f1=None, heldout_records=0, kappa=0.99))
    rec = recommend(history, RULE)
    assert rec.state == STOP and rec.fit is not None and rec.fit.n_points == len(LATE)


def test_points_are_weighted_by_their_heldout_records() -> None:
    # a wild F1 measured on a single record barely moves the curve fitted through 200-record points
    history = _history(EARLY, [None, 0.70, 0.80, 0.85, 0.88, 0.90], noise=0.0)
    base = recommend(history, RULE)
    wild = VersionSignal(n_labeled=60, heldout_f1=0.0, heldout_records=1, kappa=0.75)
    rec = recommend(history[:2] + [wild] + history[2:], RULE)
    assert rec.state == base.state == KEEP
    assert rec.expected_gain["+500"] == pytest.approx(base.expected_gain["+500"], abs=0.003)


def test_recommendation_to_dict_is_json_ready() -> None:
    rec = recommend(_history(LATE, [None, 0.7, 0.8, 0.9, 0.95, 0.96, 0.981, 0.985, 0.990]), RULE)
    d = json.loads(json.dumps(rec.to_dict(), allow_nan=False))
    assert d["state"] == STOP and set(d["expected_gain"]) == {"+100", "+500"}
    assert d["fit"]["n_points"] == len(LATE) and d["reasons"] == list(rec.reasons)


def test_version_signal_round_trip() -> None:
    v = VersionSignal(n_labeled=300, heldout_f1=0.71, heldout_records=120, kappa=0.95)
    assert VersionSignal.from_dict(v.to_dict()) == v
    nan_kappa = VersionSignal(n_labeled=300, heldout_f1=0.71, heldout_records=120, kappa=math.nan)
    assert nan_kappa.to_dict()["kappa"] is None
    assert VersionSignal.from_dict({"n_labeled": 5}) == VersionSignal(5, None, 0, None)


@pytest.mark.parametrize("kwargs", [
    {"min_annotations": -1},
    {"kappa_threshold": 0.0},
    {"kappa_threshold": 1.01},
    {"kappa_window": 0},
    {"stop_gain": -0.01},
    {"stop_gain": 0.05, "slow_gain": 0.03},
    {"horizon": 0},
])
def test_bad_rule_arguments_raise(kwargs) -> None:
    with pytest.raises(ValueError):
        StopRule(**kwargs)


def _follow_up(v: VersionSignal, kappa: float) -> VersionSignal:
    """A follow-up run's version: the same annotations as ``v``, trained longer."""
    return VersionSignal(n_labeled=v.n_labeled, heldout_f1=v.heldout_f1, heldout_records=v.heldout_records, kappa=kappa)


def test_follow_up_versions_on_the_same_annotations_do_not_make_predictions_stable() -> None:
    # a flat curve whose labeling versions disagree; follow-up runs agreeing with kappa 0.999 must not count
    history = _history(LATE, [None, 0.7, 0.8, 0.9, 0.95, 0.96, 0.90, 0.91, 0.92])
    history += [_follow_up(history[-1], 0.999) for _ in range(RULE.kappa_window)]
    rec = recommend(history, RULE)
    assert rec.state == SLOWING
    assert "(0.900, 0.910, 0.920)" in rec.reasons[0]


def test_a_follow_up_inside_the_window_is_skipped_not_a_break() -> None:
    kappas = [None, 0.7, 0.8, 0.9, 0.95, 0.96, 0.981, 0.985, 0.990]
    history = _history(LATE, kappas)
    history.insert(7, _follow_up(history[6], 0.5))  # a follow-up after the 0.981 version, far from stable
    rec = recommend(history, RULE)
    assert rec.state == STOP
    assert "(0.981, 0.985, 0.990)" in rec.reasons[0]


def test_versions_after_deleted_annotations_are_not_labeling_steps() -> None:
    history = _history([100, 200, 300, 250, 400], [None, 0.9, 0.95, 0.99, 0.96])
    assert [v.n_labeled for v in labeling_steps(history)] == [100, 200, 300, 400]
    assert labeling_steps([]) == []


def test_too_few_labeling_steps_say_so() -> None:
    history = _history([100, 200, 400], [None, 0.99, 0.99])
    history += [_follow_up(history[-1], 0.99) for _ in range(5)]
    rec = recommend(history, replace(RULE, kappa_window=4))
    assert rec.reasons[0] == "only 3 version(s) with new annotations; kappa stability needs 4"
