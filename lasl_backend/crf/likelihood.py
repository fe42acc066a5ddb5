"""The differentiable CRF likelihood that training back-propagates through, in the model's dtype.

Parameters follow pytorch-crf (``start_transitions[K]``, ``end_transitions[K]``, ``transitions[K, K]``
with ``transitions[i, j]`` the score of tag i followed by tag j).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .sequences import check_batch


def sequence_score(emissions: Tensor, tags: Tensor, mask: Tensor, start: Tensor, end: Tensor, trans: Tensor) -> Tensor:
    """Score(x, y) = start[y_0] + Σ trans[y_i, y_{i+1}] + Σ emissions[i, y_i] + end[y_last]."""
    check_batch(emissions, mask)
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
    check_batch(emissions, mask)
    alpha = start + emissions[:, 0]
    for t in range(1, emissions.shape[1]):
        nxt = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, t]
        alpha = torch.where(mask[:, t : t + 1], nxt, alpha)
    return torch.logsumexp(alpha + end, dim=1)


def nll(emissions: Tensor, tags: Tensor, mask: Tensor, start: Tensor, end: Tensor, trans: Tensor) -> Tensor:
    """Per-sequence negative log-likelihood, log Z − Score(x, y) (the paper's Eq. 3)."""
    return log_partition(emissions, mask, start, end, trans) - sequence_score(emissions, tags, mask, start, end, trans)
