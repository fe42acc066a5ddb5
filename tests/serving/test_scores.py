"""Queue scores: DBS order mapped into [0, 1], the least-confidence fallback, cold start."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lasl_backend.ner import RecordScore, SpanPrediction
from lasl_backend.serving.scores import (
    UNREADABLE_SCORE,
    cold_start_score,
    dbs_score,
    queue_scores,
    record_entity_rates,
    unit_interval,
)
from lasl_backend.strategies import DBSNormalizer


def record(l_min: float, l_pred: float | None, p_max: float, n: int = 10, entities: int = 0) -> RecordScore:
    spans = [SpanPrediction(i, i + 1, "X", "x", 0.9) for i in range(entities)]
    return RecordScore(spans, l_min=l_min, l_max=l_min + 1.0, p_max=p_max, l_pred=l_pred, n_chars=n)


NORM = DBSNormalizer(lambda_t=0.3, lse_min=5.0, lse_pred=2.0)


def test_with_a_normalizer_scores_follow_dbs_rank() -> None:
    recs = [record(1.0, 0.1, 0.9), record(4.0, 1.5, 0.2), record(2.0, 0.5, 0.6)]
    got = queue_scores(recs, NORM)
    log_rank = NORM.log_rank(np.array([1.0, 4.0, 2.0]), np.array([0.1, 1.5, 0.5]), np.array([10.0] * 3))
    assert got == [dbs_score(-float(x)) for x in log_rank]
    assert np.argsort(got).tolist() == np.argsort(-log_rank).tolist()  # higher rank, lower score: served first
    assert all(0.0 <= s <= 1.0 for s in got)


def test_an_entity_weighted_normalizer_serves_entity_rich_tasks_first() -> None:
    """Same losses and length: the task with more predicted entities per character gets the lower score."""
    weighted = DBSNormalizer(lambda_t=0.3, lse_min=5.0, lse_pred=2.0, normalize_length=True, entity_coef=0.2, entity_centre=-3.0)
    recs = [record(2.0, 0.5, 0.6, n=40, entities=0), record(2.0, 0.5, 0.6, n=40, entities=4)]
    got = queue_scores(recs, weighted)
    assert got[1] < got[0]
    rates = record_entity_rates(recs, np.array([40.0, 40.0]))
    assert rates.tolist() == pytest.approx([0.5 / 40, 4.5 / 40])
    expected = weighted.log_rank(np.array([2.0, 2.0]), np.array([0.5, 0.5]), np.array([40.0, 40.0]), rates)
    assert got == [dbs_score(-float(x)) for x in expected]
    assert queue_scores(recs, NORM)[0] == queue_scores(recs, NORM)[1]  # unweighted: a tie


def test_without_a_normalizer_or_lpn_output_scores_are_least_confidence() -> None:
    recs = [record(1.0, 0.1, 0.9), record(4.0, None, 0.2)]
    assert queue_scores(recs, NORM) == [0.9, 0.2]
    assert queue_scores(recs[:1], None) == [0.9]
    assert queue_scores([record(1.0, 0.1, math.nan)], None) == [UNREADABLE_SCORE]
    assert queue_scores([], NORM) == []


def test_a_failing_dbs_falls_back_to_confidence() -> None:
    recs = [record(math.inf, 0.1, 0.4), record(1.0, 0.2, 0.7)]
    bad = DBSNormalizer(lambda_t=0.5, lse_min=1.0, lse_pred=1.0)
    bad.log_rank = lambda *a: (_ for _ in ()).throw(ValueError("non-finite"))  # type: ignore[method-assign]
    assert queue_scores(recs, bad) == [0.4, 0.7]


def test_cold_start_and_unit_interval() -> None:
    assert [cold_start_score(n) for n in (0, 1, 9, -3)] == [1.0, 0.5, 0.1, 1.0]
    assert unit_interval(1.2) == 1.0 and unit_interval(-1.0) == 0.0 and unit_interval(None) == UNREADABLE_SCORE
    assert unit_interval(math.nan, fallback=0.5) == 0.5
