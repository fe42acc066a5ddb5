"""Held-back F1 and its bootstrap interval: the point value from hand-summed counts, the interval against
cases whose answer follows from construction, and its coverage on records drawn from a known process."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lasl_backend.stopping import F1Interval, f1_interval


def test_f1_is_the_micro_f1_of_the_summed_counts() -> None:
    # sums: tp = 2 + 1 + 0 = 3, predicted = 3 + 1 + 2 = 6, gold = 4 + 1 + 0 = 5 → 2·3 / 11
    got = f1_interval([(2, 3, 4), (1, 1, 1), (0, 2, 0)])
    assert got.f1 == pytest.approx(6 / 11)
    assert got.n_records == 3


def test_nothing_predicted_and_nothing_gold_scores_zero() -> None:
    got = f1_interval([(0, 0, 0), (0, 0, 0)])
    assert (got.f1, got.lo, got.hi) == (0.0, 0.0, 0.0)


def test_empty_input_is_undefined() -> None:
    got = f1_interval([])
    assert math.isnan(got.f1) and math.isnan(got.lo) and math.isnan(got.hi)
    assert got.n_records == 0
    assert got.to_dict() == {"f1": None, "lo": None, "hi": None, "n_records": 0}


def test_identical_records_give_a_zero_width_interval() -> None:
    # every resample of identical records has the same sums, hence the same F1: 2·3 / (4 + 5)
    got = f1_interval([(3, 4, 5)] * 50, n_boot=200)
    assert got.lo == pytest.approx(2 * 3 / 9) and got.hi == pytest.approx(2 * 3 / 9)


def test_interval_is_the_central_percentiles_of_the_resampled_f1() -> None:
    # two records A = (1, 1, 1), B = (0, 1, 1): a resample is AA (F1 1) w.p. 1/4, AB (F1 2·1/4) w.p. 1/2,
    # BB (F1 0) w.p. 1/4. A 60% interval spans the 20th-80th percentiles, so 0 to 1; a 40% one
    # (30th-70th) lies inside AB's mass, so 0.5 to 0.5.
    records = [(1, 1, 1), (0, 1, 1)]
    wide = f1_interval(records, n_boot=4000, level=0.6)
    narrow = f1_interval(records, n_boot=4000, level=0.4)
    assert (wide.lo, wide.hi) == (0.0, 1.0)
    assert (narrow.lo, narrow.hi) == (0.5, 0.5)
    assert wide.f1 == 0.5


def _simulated_records(rng: np.random.Generator, n: int, recall: float, precision: float) -> list[tuple[int, int, int]]:
    """Records with Poisson gold counts; each gold entity found with prob ``recall``; extra false
    positives so that E[tp] / E[pred] = precision."""
    gold = rng.poisson(3.0, size=n)
    tp = rng.binomial(gold, recall)
    fp_rate = 3.0 * recall * (1.0 / precision - 1.0)
    pred = tp + rng.poisson(fp_rate, size=n)
    return list(zip(tp.tolist(), pred.tolist(), gold.tolist()))


def test_interval_covers_the_population_f1_about_level_of_the_time() -> None:
    recall, precision = 0.7, 0.8
    # population micro F1 = 2·E[tp] / (E[pred] + E[gold]) = 2·2.1 / (2.1/0.8 + 3)
    truth = 2 * 3.0 * recall / (3.0 * recall / precision + 3.0)
    rng = np.random.default_rng(12)
    hits = []
    for trial in range(200):
        got = f1_interval(_simulated_records(rng, 150, recall, precision), n_boot=400, level=0.9, seed=trial)
        hits.append(got.lo <= truth <= got.hi)
    assert 0.84 <= np.mean(hits) <= 0.96  # ±3 standard errors of 200 trials


def test_more_records_and_lower_levels_narrow_the_interval() -> None:
    rng = np.random.default_rng(3)
    few = f1_interval(_simulated_records(rng, 40, 0.7, 0.8))
    many = f1_interval(_simulated_records(rng, 1600, 0.7, 0.8))
    assert many.hi - many.lo < (few.hi - few.lo) / 2  # width shrinks like 1/√n: 40 → 1600 is ÷ 6
    records = _simulated_records(rng, 200, 0.7, 0.8)
    wide, narrow = f1_interval(records, level=0.95), f1_interval(records, level=0.5)
    assert wide.lo <= narrow.lo <= narrow.hi <= wide.hi and wide.hi - wide.lo > narrow.hi - narrow.lo


def test_the_seed_fixes_the_interval() -> None:
    records = _simulated_records(np.random.default_rng(5), 60, 0.6, 0.7)
    assert f1_interval(records, seed=1) == f1_interval(records, seed=1)
    assert f1_interval(records, seed=1) != f1_interval(records, seed=2)


def test_to_dict_is_json_ready() -> None:
    got = f1_interval([(2, 3, 4), (1, 1, 1)])
    d = json.loads(json.dumps(got.to_dict(), allow_nan=False))
    assert F1Interval(**d) == got


@pytest.mark.parametrize("counts, message", [
    ([(1, 2, -1)], "negative"),
    ([(-1, 0, 0)], "negative"),
    ([(3, 2, 5)], "exceed"),
    ([(3, 5, 2)], "exceed"),
    ([(1, 1)], "triples"),
    ([(0.5, 1, 1)], "whole"),
])
def test_impossible_counts_raise(counts, message) -> None:
    with pytest.raises(ValueError, match=message):
        f1_interval(counts)


@pytest.mark.parametrize("level", [0.0, 1.0, -0.1, 1.5])
def test_level_must_be_inside_zero_one(level) -> None:
    with pytest.raises(ValueError, match="level"):
        f1_interval([(1, 1, 1)], level=level)
