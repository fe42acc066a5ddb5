"""Task scores: the number Label Studio orders its queue by (``results[i].score``, lowest served first).

Label Studio 1.23.2 drops an imported prediction whose score is outside [0, 1] ("Score must be between
0.00 and 1.00 inclusive", only in its log), so every score is mapped into [0, 1] (docs/serving.md,
"The queue" and "Label Studio facts").

* With a model: x = ``-log rank`` of the paper's Eq. 6, DBS = Λ_t·softmax(L_min) + (1-Λ_t)·softmax(L_pred),
  L_min and L_pred per unit of cost by default (``ranking``: expected seconds, or characters),
  with Λ_t and both softmax denominators frozen from the unlabeled pool of that model version
  (:class:`DBSNormalizer`), then ``score = (1 + x / (1 + |x|)) / 2``: strictly increasing in x, so the
  order is exactly DBS order (higher rank = more informative = lower score), and it keeps float64
  resolution even for the huge x of saturated pools, where a logistic would tie at 1.0. Pool records
  have x >= 0 (scores in [0.5, 1)); a record scored later that beats the whole pool goes below 0.5.
  A record sent to /predict later gets the score it had in the pool.
* Without an LPN output or a normalizer (LASL training always gives both): ``P(y_max|x)``, i.e.
  least-confidence order.
* Cold start (docs/serving.md, "Cold start"): ``1 / (1 + n_chars)`` under version ``lasl-cold-start``:
  before any model exists the best guess for "most to learn from one annotation" is "most text, hence
  most entities"; it is deterministic, so the queue is stable.
* A task that cannot be read gets :data:`UNREADABLE_SCORE` (served last).
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import numpy as np

from ..ner import RecordScore
from ..strategies import DBSNormalizer
from ..strategies.cost import CostModel
from ..strategies.density import entity_rate

__all__ = ["COLD_START_VERSION", "UNREADABLE_SCORE", "cold_start_score", "dbs_score", "queue_scores", "record_costs", "record_entity_rates",
           "unit_interval"]

log = logging.getLogger(__name__)

#: ``model_version`` while a project has no model yet
COLD_START_VERSION = "lasl-cold-start"
#: score of a task that cannot be read: the end of the queue
UNREADABLE_SCORE = 1.0


def cold_start_score(n_chars: int) -> float:
    """Score before any model exists: longer records first."""
    return 1.0 / (1.0 + max(0, int(n_chars)))


def unit_interval(x: float | None, fallback: float = UNREADABLE_SCORE) -> float:
    """Clamp into [0, 1] (Label Studio's accepted range); None or non-finite → ``fallback``."""
    if x is None or not math.isfinite(x):
        return fallback
    return float(min(1.0, max(0.0, x)))


def dbs_score(neg_log_rank: float) -> float:
    """Map x = -log rank (any real) strictly increasingly into (0, 1): ``(1 + x/(1+|x|)) / 2``."""
    if not math.isfinite(neg_log_rank):
        return 0.0 if neg_log_rank == -math.inf else 1.0  # NaN: broken, serve last
    return unit_interval(0.5 * (1.0 + neg_log_rank / (1.0 + abs(neg_log_rank))))


def record_costs(records: Sequence[RecordScore], cost_model: CostModel | None) -> np.ndarray:
    chars = np.array([r.n_chars for r in records], dtype=np.float64)
    if cost_model is None:
        return chars
    return cost_model.seconds(chars, np.array([len(r.entities) for r in records], dtype=np.float64))


def record_entity_rates(records: Sequence[RecordScore], costs: np.ndarray | None) -> np.ndarray:
    """The entities the model predicts per unit of what the queue divides by (``costs``; None: per record)."""
    return entity_rate([len(r.entities) for r in records], np.ones(len(records)) if costs is None else costs)


def queue_scores(records: Sequence[RecordScore], normalizer: DBSNormalizer | None, project_id: int | None = None,
                 cost_model: CostModel | None = None) -> list[float]:
    """One score per record: DBS order under ``normalizer`` (per unit of cost when it is cost-aware: expected
    seconds under ``cost_model``, else characters), else least-confidence order."""
    if not records:
        return []
    fallback = [unit_interval(float(r.p_max)) for r in records]
    if normalizer is None or any(r.l_pred is None for r in records):
        return fallback
    try:
        costs = record_costs(records, cost_model)
        log_rank = normalizer.log_rank(
            np.array([r.l_min for r in records], dtype=np.float64),
            np.array([r.l_pred for r in records], dtype=np.float64),
            costs,
            record_entity_rates(records, costs if normalizer.normalize_length else None),
        )
    except Exception as exc:  # noqa: BLE001 - e.g. a non-finite loss on one record
        log.warning("project %s: DBS score failed (%s); scoring this batch by confidence", project_id, exc)
        return fallback
    return [dbs_score(-float(x)) for x in log_rank]
