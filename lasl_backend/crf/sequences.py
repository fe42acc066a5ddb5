"""Shape checks and index helpers shared by the CRF's two implementations and the Bi-LSTMs.

Masks are boolean and left-aligned: ``mask[b, :len_b]`` is True, the rest False, and every sequence has
at least one position.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def check_batch(emissions: Tensor, mask: Tensor) -> None:
    """Refuse what the recursions cannot handle: wrong shapes, a non-bool mask, an empty sequence."""
    if emissions.dim() != 3 or mask.shape != emissions.shape[:2]:
        raise ValueError(f"emissions must be [B, T, K] and mask [B, T]; got {tuple(emissions.shape)} and {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        raise TypeError("mask must be a bool tensor")
    if emissions.shape[1] == 0 or not bool(mask[:, 0].all()):
        raise ValueError("every sequence needs at least one position (mask[:, 0] must be True)")


def reverse_within_length(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence of x [B, T, ...] inside its own length; padding stays where it is.

    Moves whole feature rows (``index_select`` over the flattened [B*T] axis): 5-11x faster than a
    ``gather`` with a per-element index on a [64, 200, 200] batch, and the Bi-LSTM does this twice per
    layer and batch."""
    B, T = x.shape[:2]
    ar = torch.arange(T, device=x.device).unsqueeze(0)
    lengths = lengths.to(x.device).unsqueeze(1)
    idx = torch.where(ar < lengths, lengths - 1 - ar, ar)
    flat = (idx + torch.arange(B, device=x.device).unsqueeze(1) * T).reshape(-1)
    return x.reshape(B * T, *x.shape[2:]).index_select(0, flat).reshape(x.shape)


def reverse_index(lengths: np.ndarray, T: int) -> np.ndarray:
    """[B, T] time index that reverses each row inside its own length (padding maps to itself)."""
    ar = np.arange(T)[None, :]
    L = lengths[:, None]
    return np.where(ar < L, L - 1 - ar, ar)
