"""Diversity: consecutive queue positions spread over groups of near-identical texts.

EMR records are templated: discharge summaries of one ward share whole sections, so a ranking by
uncertainty alone serves near-copies one after another, and the second copy teaches the model little.

- :func:`text_signature`: a MinHash of a text's character 3-grams (digits folded to one, whitespace
  dropped, so two records that differ in dates and doses look alike). It depends on the text only, is the
  same in every process and version, and is computed once per task.
- :func:`near_duplicate_groups`: records whose signatures collide in any band of ``rows`` hashes share a
  group (locality-sensitive hashing, joined by union-find): with 32 hashes in bands of 4, pairs above a
  3-gram Jaccard similarity of about 0.6 almost always meet and pairs below 0.3 almost never.
- :class:`Diversified`: any strategy, re-ordered greedily so that no group comes back within ``window``
  queue positions while a record of another group is left (``window`` = the annotations between two
  model versions by default). Its scores are the base strategy's own values, permuted into that order,
  so a record scored later on its own lands where the base strategy puts it.
"""

from __future__ import annotations

import hashlib
import heapq
import re
from typing import Sequence

import numpy as np

from .base import PoolScores, QueryStrategy

__all__ = ["Diversified", "N_HASHES", "near_duplicate_groups", "spread_order", "text_signature"]

#: MinHash length; the LSH bands below cut it into N_HASHES // rows bands
N_HASHES = 32
_PRIME = (1 << 31) - 1
_COEF = np.random.default_rng(20_190_401).integers(1, _PRIME, size=(2, N_HASHES), dtype=np.int64).astype(np.uint64)
_FOLD = re.compile(r"\s+")
_DIGIT = re.compile(r"\d")


def text_signature(text: str, n: int = 3) -> np.ndarray:
    """``N_HASHES`` uint32 MinHash values of the text's character ``n``-grams (a stable feature of the text)."""
    if n < 1:
        raise ValueError(f"n (the n-gram length) must be at least 1, got {n}")
    folded = _DIGIT.sub("0", _FOLD.sub("", text))
    if not folded:
        return np.full(N_HASHES, _PRIME, dtype=np.uint32)
    cps = np.frombuffer(folded.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    if cps.size < n:
        grams = np.array([int.from_bytes(hashlib.blake2b(folded.encode("utf-8", "surrogatepass"), digest_size=4).digest(), "big")], dtype=np.uint64)
    else:
        grams = np.zeros(cps.size - n + 1, dtype=np.uint64)
        for j in range(n):  # a polynomial hash of the n code points, mod 2^31 - 1
            grams = (grams * np.uint64(1_000_003) + cps[j: cps.size - n + 1 + j]) % np.uint64(_PRIME)
    hashed = (grams[:, None] * _COEF[0][None, :] + _COEF[1][None, :]) % np.uint64(_PRIME)
    return hashed.min(axis=0).astype(np.uint32)


def near_duplicate_groups(signatures: Sequence[np.ndarray], rows: int = 4) -> np.ndarray:
    """A group id per signature (0, 1, ... in order of first appearance): LSH bands of ``rows`` hashes,
    joined by union-find."""
    if not 1 <= rows <= N_HASHES:
        raise ValueError(f"rows must be in [1, {N_HASHES}] (hashes per LSH band), got {rows}")
    n = len(signatures)
    short = next((i for i, sig in enumerate(signatures) if np.asarray(sig).size != N_HASHES), None)
    if short is not None:
        raise ValueError(f"signature {short} has {np.asarray(signatures[short]).size} hashes, not {N_HASHES} "
                         "(text_signature makes them)")
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for band in range(N_HASHES // rows):
        first: dict[bytes, int] = {}
        for i, sig in enumerate(signatures):
            key = np.asarray(sig, dtype=np.uint32)[band * rows: (band + 1) * rows].tobytes()
            j = first.setdefault(key, i)
            if j != i:
                parent[find(i)] = find(j)
    ids: dict[int, int] = {}
    return np.array([ids.setdefault(find(i), len(ids)) for i in range(n)], dtype=np.int64)


def spread_order(scores: np.ndarray, groups: np.ndarray, window: int) -> np.ndarray:
    """Pool indices, best first: each step takes the best-scored record whose group has not been taken in the
    last ``window`` steps, or, when every group left has, the best record of the group that waited longest."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    groups = np.asarray(groups).reshape(-1).astype(np.int64)
    if groups.size != scores.size:
        raise ValueError(f"one group per score: got {groups.size} groups for {scores.size} scores")
    by_score = np.lexsort((np.arange(scores.size), -scores))
    if window <= 0 or scores.size == 0:
        return by_score
    members: dict[int, list[int]] = {}
    for i in by_score[::-1]:  # stacks: each group's best record on top
        members.setdefault(int(groups[i]), []).append(int(i))
    rank = np.empty(scores.size, dtype=np.int64)
    rank[by_score] = np.arange(scores.size)
    ready = [(int(rank[m[-1]]), g) for g, m in members.items()]
    heapq.heapify(ready)
    cooling: list[tuple[int, int]] = []  # (step at which the group may come back, group)
    order: list[int] = []
    while ready or cooling:
        while cooling and (cooling[0][0] <= len(order) or not ready):
            _, g = heapq.heappop(cooling)
            heapq.heappush(ready, (int(rank[members[g][-1]]), g))
        _, g = heapq.heappop(ready)
        order.append(members[g].pop())
        if members[g]:
            heapq.heappush(cooling, (len(order) + window, g))
    return np.array(order, dtype=np.int64)


class Diversified(QueryStrategy):
    """``base``, re-ordered by :func:`spread_order` over the pool's ``group`` (see the module docstring)."""

    name = "diversified"

    def __init__(self, base: QueryStrategy, window: int = 10) -> None:
        if window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        self.base = base
        self.window = int(window)
        self.requires = tuple(base.requires) + ("group",)

    def score(self, pool: PoolScores) -> np.ndarray:
        base = np.asarray(self.base.score(pool), dtype=np.float64).reshape(-1)
        if self.window == 0 or pool.n == 0:
            return base
        groups = np.asarray(pool.require("group", f"{self.base.name}+diversity")).reshape(-1)
        if groups.size != base.size:
            raise ValueError(f"one group per score: got {groups.size} groups for {base.size} scores")
        ok = np.flatnonzero(~np.isnan(base))  # a NaN stays on its own record, for query() to refuse
        order = spread_order(base[ok], groups[ok], self.window)
        out = base.copy()
        out[ok[order]] = np.sort(base[ok])[::-1]
        return out

    def __repr__(self) -> str:
        return f"Diversified({self.base!r}, window={self.window})"
