"""Weights on a strategy's score: how typical a record's text is of the pool, and how many entities it holds.

- **Information density.** Uncertainty alone drifts towards outliers as the model improves: the records it
  is least sure of are often the ones least like the rest, and what they teach transfers little. Settles
  & Craven (EMNLP 2008) multiply a record's uncertainty by its mean similarity to the pool.
  :func:`pool_density` is each text's mean cosine similarity to all the texts, on TF-IDF vectors of
  character bigrams; with unit-length vectors that is the dot product with the pool's mean vector, one
  pass over the bigrams and no pairwise matrix. It depends on the texts only.
- **Entity rate.** A record teaches the tagger through its entities, while the annotator pays for its
  characters. :func:`entity_rate` is the entities the model predicts per character (or per unit of cost).
- :class:`LogWeight` adds β times the log of such a value, scaled to the spread of the base scores so that
  β weighs the two terms whatever unit the base strategy scores in (a DBS rank per character varies little
  in absolute terms); frozen from a pool, it scores a record later as it would have inside that pool.
  :class:`DensityWeighted` wraps any strategy with it (the simulator's ``+dens`` and ``+yield``); the
  backend freezes it in the DBS normaliser (``LASL_ENTITY_WEIGHT``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .base import PoolScores, QueryStrategy

__all__ = ["DensityWeighted", "LogWeight", "entity_rate", "pool_density"]

#: the density of a text that shares nothing with the pool (an empty one); its log stays finite
MIN_DENSITY = 1e-6


def _bigram_ids(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """(row, bigram id) of every bigram occurrence, and the number of distinct bigrams."""
    vocab: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for r, text in enumerate(texts):
        for j in range(len(text) - 1):
            rows.append(r)
            cols.append(vocab.setdefault(text[j:j + 2], len(vocab)))
    return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64), len(vocab)


def pool_density(texts: Sequence[str]) -> np.ndarray:
    """Each text's mean cosine similarity to all ``texts`` (itself included), on TF-IDF character bigrams;
    float64 in [MIN_DENSITY, 1]."""
    n = len(texts)
    rows, cols, n_bigrams = _bigram_ids(texts)
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    if n_bigrams == 0:
        return np.full(n, MIN_DENSITY)
    key = rows * n_bigrams + cols  # one entry per (text, bigram), with its count
    uniq, tf = np.unique(key, return_counts=True)
    r, c = uniq // n_bigrams, uniq % n_bigrams
    df = np.bincount(c, minlength=n_bigrams)
    w = (1.0 + np.log(tf)) * (np.log((1.0 + n) / (1.0 + df[c])) + 1.0)
    norm = np.sqrt(np.bincount(r, weights=w * w, minlength=n))
    w = w / norm[r]
    centroid = np.bincount(c, weights=w, minlength=n_bigrams) / n
    density = np.bincount(r, weights=w * centroid[c], minlength=n)
    return np.clip(density, MIN_DENSITY, 1.0)


def entity_rate(n_entities: Sequence[int] | np.ndarray, n_chars: Sequence[int] | np.ndarray) -> np.ndarray:
    """The entities the model predicts per character (or per unit of cost, ``n_chars`` then being the costs),
    smoothed by half an entity so that a record with none predicted keeps a finite weight (the model may be
    missing its entities)."""
    k = np.asarray(n_entities, dtype=np.float64).reshape(-1)
    n = np.asarray(n_chars, dtype=np.float64).reshape(-1)
    return (k + 0.5) / np.maximum(n, 1.0)


def _log_values(values: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(values, dtype=np.float64).reshape(-1), MIN_DENSITY, None))


@dataclass(frozen=True)
class LogWeight:
    """``coef`` · (log value − ``centre``), frozen from a pool so that a record scored on its own later gets
    the term it had inside that pool (as the DBS normaliser freezes its denominators)."""

    coef: float = 0.0
    centre: float = 0.0

    @classmethod
    def from_pool(cls, base: np.ndarray, values: np.ndarray, beta: float) -> LogWeight:
        """β times the spread of the pool's ``base`` scores per unit of spread of its log ``values``; no weight
        (coef 0) where either does not vary."""
        base = np.asarray(base, dtype=np.float64).reshape(-1)
        log_v = _log_values(values)
        finite = base[np.isfinite(base)]
        spread_base = float(np.std(finite)) if finite.size > 1 else 0.0
        spread_v = float(np.std(log_v)) if log_v.size > 1 else 0.0
        if beta == 0 or spread_base == 0 or spread_v == 0:
            return cls()
        return cls(coef=beta * (spread_base / spread_v), centre=float(np.mean(log_v)))

    def term(self, values: np.ndarray) -> np.ndarray:
        """What the weight adds to each record's score."""
        return self.coef * (_log_values(values) - self.centre)


class DensityWeighted(QueryStrategy):
    """``base``'s score + ``beta`` · log of the pool array ``field`` (``density``, or ``entity_rate``),
    scaled to the spread of the base scores (see the module docstring). ``beta`` = 0 is the base strategy."""

    name = "density"

    def __init__(self, base: QueryStrategy, beta: float = 0.5, field: str = "density") -> None:
        if not math.isfinite(beta) or beta < 0:
            raise ValueError(f"beta must be a finite number >= 0, got {beta}")
        self.base = base
        self.beta = float(beta)
        self.field = field
        self.requires = tuple(base.requires) + (field,)

    def score(self, pool: PoolScores) -> np.ndarray:
        base = np.asarray(self.base.score(pool), dtype=np.float64).reshape(-1)
        if self.beta == 0 or pool.n == 0:
            return base
        values = pool.require(self.field, f"{self.base.name}+{self.field}")
        weight = LogWeight.from_pool(base, values, self.beta)
        return base + weight.term(values) if weight.coef else base

    def __repr__(self) -> str:
        return f"DensityWeighted({self.base!r}, beta={self.beta}, field={self.field!r})"
