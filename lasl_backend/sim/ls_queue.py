"""The queue as Label Studio serves it, for the replay's ``queue`` protocol.

Label Studio 1.23.2's uncertainty sampling serves the unlabeled task with the lowest score among the
predictions of ``project.model_version``; with several annotators it picks at random among the first
(annotators + 1). The backend pushes a new version's scores only after a training run, which starts
every ``train_every`` annotations and takes a while: the annotations made during it still follow the old
version's order. So a round here is one version: its first ``lag`` picks come from the order pushed
before (stale), the rest from the latest one, and each pick is shown the pre-annotations of the version
whose order served it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data import Entity
from ..strategies import PoolScores, QueryStrategy

__all__ = ["PushedVersion", "push", "serve"]

Span = tuple[int, int, str]


@dataclass
class PushedVersion:
    """One version as Label Studio holds it: the pool in served order (lowest score first) and the regions
    of each record's prediction."""

    order: list[int]
    regions: dict[int, list[Span]] = field(default_factory=dict)

    def entities(self, i: int) -> list[Entity]:
        return [Entity(s, e, lab) for s, e, lab in self.regions.get(i, [])]

    def to_dict(self) -> dict[str, Any]:
        return {"order": self.order, "regions": {str(i): [list(r) for r in rs] for i, rs in self.regions.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PushedVersion:
        return cls(list(d["order"]), {int(i): [(int(s), int(e), str(lab)) for s, e, lab in rs] for i, rs in d["regions"].items()})


def push(strategy: QueryStrategy, pool: PoolScores, pool_idx: list[int], regions: list[list[Span]], rng: np.random.Generator) -> PushedVersion:
    """The order the backend's scores put the pool in: the strategy's highest first (lowest pushed score),
    ties broken at random as in :meth:`QueryStrategy.query`."""
    scores = np.asarray(strategy.score(pool), dtype=np.float64).reshape(-1)
    order = np.lexsort((rng.random(pool.n), -scores))
    return PushedVersion([pool_idx[j] for j in order], {pool_idx[j]: regions[j] for j in range(pool.n)})


def serve(versions: list[PushedVersion], labeled: set[int], k: int, lag: int, annotators: int,
          rng: np.random.Generator) -> list[tuple[int, int]]:
    """``k`` picks as (record, index into ``versions`` of the version that served it): the first ``lag``
    from the older version when there are two, the rest from the newest; each the first unlabeled record of
    that order, or with several annotators a random one of the first ``annotators + 1``."""
    taken = set(labeled)
    picks: list[tuple[int, int]] = []
    for j in range(k):
        v = 0 if (j < lag and len(versions) > 1) else len(versions) - 1
        head = [i for i in _unlabeled(versions[v].order, taken, annotators + 1 if annotators > 1 else 1)]
        if not head:
            break
        pick = head[0] if len(head) == 1 else head[int(rng.integers(len(head)))]
        taken.add(pick)
        picks.append((pick, v))
    return picks


def _unlabeled(order: list[int], taken: set[int], n: int) -> list[int]:
    out: list[int] = []
    for i in order:
        if i not in taken:
            out.append(i)
            if len(out) == n:
                break
    return out
