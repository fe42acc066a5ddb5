"""The numpy bounds kernel: the reference the C kernel is held to (tests), and the fallback without it.

One loop over time runs four recursions side by side, each as two "slots" of one array:
- the scaled forward algorithm (probability space, renormalised every step) for log Z, and the backward
  pass as the same forward over each sequence reversed within its own length (slot 1);
- the max-Viterbi, and the min-Viterbi as a max-Viterbi over negated scores (slot 1), with vectorised
  back-tracking.
It works in any float dtype; a time step costs ~35 µs of numpy call overhead with K ≈ 13 tags, which is
why the C kernel exists.
"""

from __future__ import annotations

import numpy as np

from .native import BoundsArrays
from .sequences import reverse_index


def bounds_numpy(em: np.ndarray, msk: np.ndarray, st: np.ndarray, en: np.ndarray, tr: np.ndarray, with_marginals: bool, npdt: np.dtype) -> BoundsArrays:
    """log Z, best score and path, worst score and path, marginals (or None) of [B, T, K] emissions."""
    B, T, K = em.shape
    lengths = msk.sum(1)
    min_len = int(lengths.min())
    rev = reverse_index(lengths, T)
    em_rev = em[np.arange(B)[:, None], rev]  # [B, T, K]
    fwd = _ScaledForward(em, em_rev, st, en, tr, npdt, with_marginals)
    vit = _MaxMinViterbi(em, st, tr)
    live = msk.T[:, None, :, None]  # [T, 1, B, 1]
    for t in range(1, T):
        mt = None if t < min_len else live[t]  # None: every sequence still running (the common case)
        fwd.step(t, mt)
        vit.step(t, mt)
    cum_c = fwd.cumulative_log_scale(msk)
    log_z = fwd.log_z(cum_c, en)
    scores, paths = vit.backtrack(en, lengths, min_len)
    marg = fwd.marginals(cum_c, log_z, em, msk, rev) if with_marginals else None
    return log_z, scores[0], paths[0], -scores[1], paths[1], marg


class _ScaledForward:
    """Slot 0: the forward recursion; slot 1: the backward one as a forward over reversed sequences."""

    def __init__(self, em: np.ndarray, em_rev: np.ndarray, st: np.ndarray, en: np.ndarray, tr: np.ndarray, npdt: np.dtype, with_marginals: bool) -> None:
        B, T, K = em.shape
        self.tmax = tr.max()
        self.exp_pair = np.stack([np.exp(tr - self.tmax), np.exp(tr.T - self.tmax)])  # [2, K, K]
        em_pair = np.stack([em, em_rev])  # [2, B, T, K]
        self.em_top = em_pair.max(axis=3, keepdims=True)  # [2, B, T, 1]
        self.p_pair = np.exp(em_pair - self.em_top)  # emission factors, max 1 per position
        init = np.stack([st + em[:, 0], en + em_rev[:, 0]])  # [2, B, K]
        self.top0 = init.max(axis=2, keepdims=True)
        a = np.exp(init - self.top0)
        s0 = a.sum(axis=2, keepdims=True)
        a /= s0
        self.a = a
        self.scale = np.ones((2, B, T), npdt)  # each step's normaliser (1 where the sequence has ended)
        self.scale[:, :, 0] = s0[..., 0]
        self.hist: np.ndarray | None = None
        if with_marginals:
            self.hist = np.empty((2, B, T, K), npdt)
            self.hist[:, :, 0] = a

    def step(self, t: int, mt: np.ndarray | None) -> None:
        """Advance to time t; ``mt`` [1, B, 1] marks the sequences still running (None: all of them)."""
        na = np.matmul(self.a, self.exp_pair)
        na *= self.p_pair[:, :, t]
        s = na.sum(axis=2, keepdims=True)
        na /= s
        if mt is None:
            self.a = na
            self.scale[:, :, t] = s[..., 0]
        else:
            self.a = np.where(mt, na, self.a)
            self.scale[:, :, t] = np.where(mt[..., 0], s[..., 0], 1.0)
        if self.hist is not None:
            self.hist[:, :, t] = self.a

    def cumulative_log_scale(self, msk: np.ndarray) -> np.ndarray:
        """[2, B, T] Σ_{u≤t} log c_u: log alpha_t = log a_t + this (the scaling constants of the recursion)."""
        log_c = np.log(self.scale)
        log_c[:, :, 0] += self.top0[..., 0]
        step_off = self.em_top[..., 0] + self.tmax  # the emission and transition maxima taken out before exp
        log_c[:, :, 1:] += np.where(msk[None, :, 1:], step_off[:, :, 1:], 0.0)
        return np.cumsum(log_c, axis=2)

    def log_z(self, cum_c: np.ndarray, en: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log((self.a[0] * np.exp(en - en.max())).sum(axis=1)) + en.max() + cum_c[0, :, -1]

    def marginals(self, cum_c: np.ndarray, log_z: np.ndarray, em: np.ndarray, msk: np.ndarray, rev: np.ndarray) -> np.ndarray:
        assert self.hist is not None
        bidx = np.arange(em.shape[0])[:, None]
        with np.errstate(divide="ignore"):
            log_alpha = np.log(self.hist[0]) + cum_c[0][:, :, None]
            # slot 1 at reversed step s holds beta_{L-1-s} + em[L-1-s]; un-reverse it and remove the emission
            log_beta = np.log(self.hist[1][bidx, rev]) + cum_c[1][bidx, rev][:, :, None] - em
        return np.exp(np.where(msk[:, :, None], log_alpha + log_beta - log_z[:, None, None], -np.inf))


class _MaxMinViterbi:
    """Slot 0: the max-Viterbi; slot 1: the min-Viterbi as a max over negated scores."""

    def __init__(self, em: np.ndarray, st: np.ndarray, tr: np.ndarray) -> None:
        B, T, K = em.shape
        # transposed, [2, 1, K(to), K(from)]: each step reduces over the contiguous last axis (1.3-1.8x faster
        # per step than over the middle one, measured at B = 3 and 64)
        self.tt = np.ascontiguousarray(np.stack([tr.T, -tr.T]))[:, None]
        self.em2 = np.stack([em, -em])  # [2, B, T, K]
        self.delta = np.stack([st, -st])[:, None, :] + self.em2[:, :, 0]  # [2, B, K]
        self.backptr = np.zeros((T, 2, B, K), np.int64)
        # flat positions: cand[s, b, j, i] is cand.ravel()[base[s, b, j] + i]; backptr[t][s, b, i] is
        # backptr[t].ravel()[row[s, b] + i] (cheaper than take_along_axis inside the loop)
        self.base = (np.arange(2 * B * K) * K).reshape(2, B, K)
        self.row = (np.arange(2 * B) * K).reshape(2, B)

    def step(self, t: int, mt: np.ndarray | None) -> None:
        cand = self.delta[:, :, None, :] + self.tt  # [2, B, K(to), K(from)]
        idx = cand.argmax(axis=3)
        nd = cand.ravel()[self.base + idx] + self.em2[:, :, t]
        self.delta = nd if mt is None else np.where(mt, nd, self.delta)
        self.backptr[t] = idx

    def backtrack(self, en: np.ndarray, lengths: np.ndarray, min_len: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores [2, B] and paths [2, B, T] (0 past each length); sequences shorter than t+1 just wait."""
        final = self.delta + np.stack([en, -en])[:, None, :]
        scores = final.max(axis=2)
        cur = final.argmax(axis=2)  # [2, B]
        T = self.backptr.shape[0]
        paths = np.zeros((2, *cur.shape[1:], T), np.int64)
        row, backptr = self.row, self.backptr
        for t in range(T - 1, -1, -1):
            if t < min_len:
                paths[:, :, t] = cur
                if t > 0:
                    cur = backptr[t].ravel()[row + cur]
                continue
            valid = (t < lengths)[None, :]
            paths[:, :, t] = np.where(valid, cur, 0)
            if t > 0:
                cur = np.where(valid, backptr[t].ravel()[row + cur], cur)
        return scores, paths
