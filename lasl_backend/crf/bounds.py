"""The active-learning CRF quantities: log Z, the best and worst paths, the marginals, in float64.

float64 because float32 L_min drifts enough to reorder a ranking of long records. ``crf_bounds`` computes
everything in ONE pass over time and runs on the CPU: in C when the optional extension ``_crfkernel`` was
built at install time (``native``), else in numpy (``numpy_kernel``). With K ≈ 13 tags a time step is
~700 floating-point operations: numpy spends ~35 µs a step in call overhead (one ~400-character record:
7–12 ms), the C loop well under 1 ms for the whole record. (A torch loop took twice numpy's time; a
parallel prefix scan needs K³ work per step instead of K².)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .native import bounds_c, kernel_name, native_available
from .numpy_kernel import bounds_numpy
from .sequences import check_batch

KERNELS = ("auto", "c", "numpy")


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
        """L_min = log Z − Score(y_max): the smallest loss any labelling could give (the paper's Eq. 4)."""
        return (self.log_z - self.best_score).clamp_min(0.0)

    @property
    def l_max(self) -> Tensor:
        """L_max = log Z − Score(y_min): the largest loss any labelling could give (the paper's Eq. 4)."""
        return self.log_z - self.worst_score

    @property
    def p_max(self) -> Tensor:
        """P(y_max | x) = exp(−L_min)."""
        return torch.exp(-self.l_min)


def _use_c(kernel: str, dtype: torch.dtype) -> bool:
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if kernel == "c" and (not native_available() or dtype != torch.float64):
        raise RuntimeError(f"the C CRF kernel runs float64 only and needs the built extension: {kernel_name()}")
    return kernel == "c" or (kernel == "auto" and native_available() and dtype == torch.float64)


@torch.no_grad()
def crf_bounds(
    emissions: Tensor,
    mask: Tensor,
    start: Tensor,
    end: Tensor,
    trans: Tensor,
    with_marginals: bool = True,
    dtype: torch.dtype = torch.float64,
    kernel: str = "auto",
) -> CRFBounds:
    """log Z, best/worst Viterbi paths and scores, and marginals, in one pass over time (see module doc).

    Results are torch tensors on the emissions' device; the arithmetic runs on the CPU in ``dtype``.
    ``kernel``: "auto" (C when built and ``dtype`` is float64, else numpy), "c" (an error without it)
    or "numpy".
    """
    check_batch(emissions, mask)
    use_c = _use_c(kernel, dtype)
    device = emissions.device
    npdt = torch.empty(0, dtype=dtype).numpy().dtype
    em = emissions.detach().to("cpu", dtype).numpy()
    st, en, tr = (np.ascontiguousarray(p.detach().to("cpu", dtype).numpy()) for p in (start, end, trans))
    msk = mask.detach().cpu().numpy()
    if use_c:
        out = bounds_c(em, msk, st, en, tr, with_marginals)
    else:
        out = bounds_numpy(em, msk, st, en, tr, with_marginals, npdt)

    def to_torch(x: np.ndarray | None) -> Tensor | None:
        return None if x is None else torch.from_numpy(np.ascontiguousarray(x)).to(device)

    log_z, best_score, best_path, worst_score, worst_path, marg = (to_torch(x) for x in out)
    return CRFBounds(log_z, best_score, best_path, worst_score, worst_path, marg)  # type: ignore[arg-type]
