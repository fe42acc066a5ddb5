"""Query-strategy base: the pool's per-record scores, the strategy interface and its errors.

Modelled on small-text's ``query_strategies`` (a strategy scores, the base selects) and baal's
heuristics (higher score = more informative). Strategies work on numbers the model has already
computed for each unlabeled record, so they are pure numpy and need no model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np

__all__ = ["PoolScores", "QueryStrategy", "QueryError", "PoolTooSmallError", "MissingScoreError", "SCORE_FIELDS", "per_char"]


class QueryError(ValueError):
    """A query that cannot be answered."""


class PoolTooSmallError(QueryError):
    """``k`` is below 1 or above the number of unlabeled records."""


class MissingScoreError(QueryError):
    """The pool lacks a per-record array that the strategy needs (named in the message)."""


# The optional per-record arrays of PoolScores.
SCORE_FIELDS: tuple[str, ...] = ("l_min", "l_max", "p_max", "l_pred", "l_pred_vanilla", "n_chars", "n_chunks", "tod", "cost", "group", "density", "entity_rate")


@dataclass
class PoolScores:
    """Per-record numbers for the unlabeled pool, one entry per record, in pool order.

    - ``l_min``, ``l_max``: the paper's Eq. 4 bounds of the record's loss, summed over its chunks (docs/method.md, R4).
    - ``p_max``: P(y_max | x) = exp(-l_min).
    - ``l_pred``: the LPN's output; ``l_pred_vanilla``: the learning-loss net's output.
    - ``n_chars``: record length in characters; ``n_chunks``: how many chunks the model cut it into
      (the loss nets' outputs are sums over chunks). ``tod``: temporal output discrepancy (see ``tod.py``).
    - ``cost``: what labeling the record costs the annotator (expected seconds, or its characters; ``cost.py``).
    - ``group``: a group of near-identical texts (``diversity.py``), an integer id stored as a float.
    - ``density``: how typical the record's text is of the pool, in (0, 1] (``density.py``); ``entity_rate``:
      the entities the model predicts per character (``density.py``).
    - ``round``: the active-learning round t, for Λ schedules (Eq. 11-12).
    Arrays are stored as float64; each must have ``n`` entries.
    """

    n: int
    l_min: np.ndarray | None = None
    l_max: np.ndarray | None = None
    p_max: np.ndarray | None = None
    l_pred: np.ndarray | None = None
    l_pred_vanilla: np.ndarray | None = None
    n_chars: np.ndarray | None = None
    n_chunks: np.ndarray | None = None
    tod: np.ndarray | None = None
    cost: np.ndarray | None = None
    group: np.ndarray | None = None
    density: np.ndarray | None = None
    entity_rate: np.ndarray | None = None
    round: int = 0

    def __post_init__(self) -> None:
        if int(self.n) != self.n or self.n < 0:
            raise ValueError(f"n must be a non-negative integer, got {self.n!r}")
        self.n = int(self.n)
        for name in SCORE_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.asarray(value, dtype=np.float64).reshape(-1)
            if arr.shape[0] != self.n:
                raise ValueError(f"PoolScores.{name} has {arr.shape[0]} entries, expected n = {self.n}")
            setattr(self, name, arr)

    def require(self, name: str, strategy: str = "this strategy") -> np.ndarray:
        """The array ``name``, or :class:`MissingScoreError` naming it."""
        if name not in SCORE_FIELDS:
            raise KeyError(f"unknown pool score {name!r}; known: {', '.join(SCORE_FIELDS)}")
        value = getattr(self, name)
        if value is None:
            raise MissingScoreError(f"{strategy} needs pool score '{name}', which this pool does not carry")
        return value

    def has(self, name: str) -> bool:
        return getattr(self, name, None) is not None

    def subset(self, idx: Sequence[int] | np.ndarray) -> "PoolScores":
        """The same pool restricted to the records ``idx`` (e.g. what is left after a query)."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        kw: dict[str, Any] = {name: (None if getattr(self, name) is None else getattr(self, name)[idx])
                              for name in SCORE_FIELDS}
        return PoolScores(n=len(idx), round=self.round, **kw)

    @classmethod
    def from_scores(
        cls,
        scores: Iterable[Any],
        round: int = 0,
        l_pred_vanilla: np.ndarray | None = None,
        tod: np.ndarray | None = None,
        cost: np.ndarray | None = None,
        group: np.ndarray | None = None,
    ) -> "PoolScores":
        """Build from objects with ``l_min``, ``l_max``, ``p_max``, ``l_pred``, ``n_chars``, ``n_chunks``
        attributes (``model.RecordScore``). An attribute that is None or missing on any record leaves that
        array out."""
        scores = list(scores)
        kw: dict[str, Any] = {}
        for name in ("l_min", "l_max", "p_max", "l_pred", "n_chars", "n_chunks"):
            vals = [getattr(s, name, None) for s in scores]
            kw[name] = None if any(v is None for v in vals) else np.asarray(vals, dtype=np.float64)
        return cls(n=len(scores), round=round, l_pred_vanilla=l_pred_vanilla, tod=tod, cost=cost, group=group, **kw)


class QueryStrategy(ABC):
    """Scores the pool (higher = more informative) and picks the top ``k``.

    Subclasses set ``name`` and ``requires`` (the pool arrays they read) and implement :meth:`score`.
    """

    name: ClassVar[str] = "base"
    #: pool arrays read by :meth:`score`; an instance may extend it (e.g. "n_chars" with normalize_length)
    requires: tuple[str, ...] = ()

    @abstractmethod
    def score(self, pool: PoolScores) -> np.ndarray:
        """One float per pool record; higher = queried first. NaN is not allowed; -inf is lowest."""

    def query(self, pool: PoolScores, k: int, rng: np.random.Generator) -> np.ndarray:
        """Indices of the ``k`` highest-scoring records, best first, all distinct.

        Ties are broken by a random key drawn from ``rng`` (one draw of ``pool.n`` uniforms per call),
        so a given seed always gives the same answer, and tied records are not biased toward pool order.
        """
        if k != int(k) or k < 1:
            raise PoolTooSmallError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        if k > pool.n:
            raise PoolTooSmallError(f"cannot query {k} records from a pool of {pool.n}")
        scores = np.asarray(self.score(pool), dtype=np.float64).reshape(-1)
        if scores.shape[0] != pool.n:
            raise QueryError(f"{self.name} returned {scores.shape[0]} scores for a pool of {pool.n}")
        if np.isnan(scores).any():
            raise QueryError(f"{self.name} produced NaN scores for {int(np.isnan(scores).sum())} records")
        tie = rng.random(pool.n)
        order = np.lexsort((tie, -scores))  # last key is primary: highest score first, then the random key
        return order[:k].astype(np.int64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def per_char(values: np.ndarray, pool: PoolScores, strategy: str) -> np.ndarray:
    """``values / n_chars`` (an empty record counts as one character): the length-normalised variant of
    docs/method.md, R3, for sums over a record such as L_min and L_p."""
    n = pool.require("n_chars", strategy)
    return values / np.maximum(n, 1.0)
