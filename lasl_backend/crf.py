"""Exact linear-chain CRF math: log Z, best and worst paths, marginals.

Parameters follow pytorch-crf (``start_transitions[K]``, ``end_transitions[K]``, ``transitions[K, K]``
with ``transitions[i, j]`` the score of tag i followed by tag j). Masks are boolean, left-aligned, and
every sequence has at least one position.

Two implementations live here on purpose:
- ``log_partition``/``sequence_score``/``nll``: differentiable, used for training in the model's dtype.
- ``crf_bounds``: the active-learning kernel. It runs in float64 (float32 L_min drifts enough to reorder a
  ranking of long records) and computes log Z, the forward-backward marginals, and the max- and min-Viterbi
  paths in ONE loop over time: the backward pass is a forward pass over each sequence reversed within its
  own length, the min-Viterbi is a max-Viterbi over negated scores, the log-sum-exp is a rescaled
matrix product (faster than logsumexp on CPU), and back-tracking is vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def _check(emissions: Tensor, mask: Tensor) -> None:
    if emissions.dim() != 3 or mask.shape != emissions.shape[:2]:
        raise ValueError(f"emissions must be [B, T, K] and mask [B, T]; got {tuple(emissions.shape)} and {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        raise TypeError("mask must be a bool tensor")
    if emissions.shape[1] == 0 or not bool(mask[:, 0].all()):
        raise ValueError("every sequence needs at least one position (mask[:, 0] must be True)")


def sequence_score(emissions: Tensor, tags: Tensor, mask: Tensor, start: Tensor, end: Tensor, trans: Tensor) -> Tensor:
    """Score(x, y) = start[y_0] + Σ trans[y_i, y_{i+1}] + Σ emissions[i, y_i] + end[y_last]."""
    _check(emissions, mask)
    B, T, _ = emissions.shape
    maskf = mask.to(emissions.dtype)
    em = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # [B, T]
    score = start[tags[:, 0]] + (em * maskf).sum(1)
    if T > 1:
        tr = trans[tags[:, :-1], tags[:, 1:]]  # [B, T-1]
        score = score + (tr * maskf[:, 1:]).sum(1)
    last = mask.long().sum(1) - 1
    score = score + end[tags.gather(1, last.unsqueeze(1)).squeeze(1)]
    return score


def log_partition(emissions: Tensor, mask: Tensor, start: Tensor, end: Tensor, trans: Tensor) -> Tensor:
    """log Z(x) by the forward algorithm (differentiable)."""
    _check(emissions, mask)
    alpha = start + emissions[:, 0]
    for t in range(1, emissions.shape[1]):
        nxt = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, t]
        alpha = torch.where(mask[:, t : t + 1], nxt, alpha)
    return torch.logsumexp(alpha + end, dim=1)


def nll(emissions: Tensor, tags: Tensor, mask: Tensor, start: Tensor, end: Tensor, trans: Tensor) -> Tensor:
    """Per-sequence negative log-likelihood, log Z − Score(x, y) (METHOD.md Eq. 3)."""
    return log_partition(emissions, mask, start, end, trans) - sequence_score(emissions, tags, mask, start, end, trans)


@dataclass
class CRFBounds:
    """Per-sequence CRF quantities in float64.

    ``best_path``/``worst_path`` are [B, T] (0 past each length); ``marginals`` is [B, T, K] or None.
    """

    log_z: Tensor
    best_score: Tensor
    best_path: Tensor
    worst_score: Tensor
    worst_path: Tensor
    marginals: Tensor | None

    @property
    def l_min(self) -> Tensor:
        """L_min = log Z − Score(y_max): the smallest loss any labelling could give (Eq. 4)."""
        return (self.log_z - self.best_score).clamp_min(0.0)

    @property
    def l_max(self) -> Tensor:
        """L_max = log Z − Score(y_min): the largest loss any labelling could give (Eq. 4)."""
        return self.log_z - self.worst_score

    @property
    def p_max(self) -> Tensor:
        """P(y_max | x) = exp(−L_min)."""
        return torch.exp(-self.l_min)


def reverse_within_length(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence of x [B, T, ...] inside its own length; padding stays where it is."""
    B, T = x.shape[:2]
    ar = torch.arange(T, device=x.device).unsqueeze(0).expand(B, T)
    idx = torch.where(ar < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - ar, ar)
    if x.dim() == 2:
        return x.gather(1, idx)
    view = idx.view(B, T, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, view)


@torch.no_grad()
def crf_bounds(
    emissions: Tensor,
    mask: Tensor,
    start: Tensor,
    end: Tensor,
    trans: Tensor,
    with_marginals: bool = True,
    dtype: torch.dtype = torch.float64,
) -> CRFBounds:
    """log Z, best/worst Viterbi paths and scores, and marginals, in one pass over time (see module doc)."""
    _check(emissions, mask)
    em = emissions.detach().to(dtype)
    start, end, trans = (p.detach().to(dtype) for p in (start, end, trans))
    B, T, K = em.shape
    lengths = mask.long().sum(1)
    maskc = mask.unsqueeze(2)

    # Forward (slot 0) and backward-as-reversed-forward (slot 1) share one batched matrix product per step.
    em_rev = reverse_within_length(em, lengths)
    tmax = trans.max()
    exp_t = torch.exp(trans - tmax)
    exp_pair = torch.stack([exp_t, exp_t.t()])  # [2, K, K]
    em_pair = torch.stack([em, em_rev])  # [2, B, T, K]
    alpha = torch.stack([start + em[:, 0], end + em_rev[:, 0]])  # [2, B, K]
    if with_marginals:
        hist = em.new_empty(2, B, T, K)
        hist[:, :, 0] = alpha

    # Max-Viterbi (slot 0) and min-Viterbi as max over negated scores (slot 1).
    sign = em.new_tensor([1.0, -1.0]).view(2, 1, 1)
    tt = sign.view(2, 1, 1, 1) * trans.view(1, 1, K, K)  # [2, 1, K, K]
    em2 = sign.unsqueeze(1) * em.unsqueeze(0)  # [2, B, T, K]
    delta = sign * start.view(1, 1, K) + em2[:, :, 0]  # [2, B, K]
    backptr = torch.zeros(T, 2, B, K, dtype=torch.long)
    min_len = int(lengths.min())

    for t in range(1, T):
        m = alpha.amax(dim=2, keepdim=True)
        new_alpha = torch.log(torch.bmm(torch.exp(alpha - m), exp_pair)) + m + tmax + em_pair[:, :, t]
        best, idx = (delta.unsqueeze(3) + tt).max(dim=2)
        new_delta = best + em2[:, :, t]
        if t < min_len:  # every sequence is still running: no masking needed (the common case)
            alpha, delta = new_alpha, new_delta
        else:
            mt = maskc[:, t].unsqueeze(0)
            alpha = torch.where(mt, new_alpha, alpha)
            delta = torch.where(mt, new_delta, delta)
        if with_marginals:
            hist[:, :, t] = alpha
        backptr[t] = idx

    log_z = torch.logsumexp(alpha[0] + end, dim=1)
    final = delta + sign * end.view(1, 1, K)
    scores, cur = final.max(dim=2)  # [2, B]

    # Vectorised back-tracking: walk t = T-1..0; sequences shorter than t+1 just wait.
    paths = torch.zeros(2, B, T, dtype=torch.long)
    for t in range(T - 1, -1, -1):
        if t < min_len:
            paths[:, :, t] = cur
            if t > 0:
                cur = backptr[t].gather(2, cur.unsqueeze(2)).squeeze(2)
            continue
        valid = (t < lengths).unsqueeze(0)  # [1, B]
        paths[:, :, t] = torch.where(valid, cur, torch.zeros_like(cur))
        if t > 0:
            prev = backptr[t].gather(2, cur.unsqueeze(2)).squeeze(2)
            cur = torch.where(valid, prev, cur)

    marg = None
    if with_marginals:
        # hist[1] at reversed step s holds beta_{L-1-s} + em[L-1-s]; un-reverse, remove the emission.
        beta = reverse_within_length(hist[1], lengths) - em
        marg = torch.exp(hist[0] + beta - log_z.view(B, 1, 1))
        marg = marg * maskc.to(dtype)
    return CRFBounds(
        log_z=log_z,
        best_score=scores[0],
        best_path=paths[0],
        worst_score=-scores[1],
        worst_path=paths[1],
        marginals=marg,
    )
