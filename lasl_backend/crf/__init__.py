"""Exact linear-chain CRF math.

- ``likelihood``: the differentiable log Z, sequence score and NLL that training back-propagates through;
- ``bounds``: the float64 active-learning quantities (``CRFBounds``) from one fused kernel, in C
  (``native``, the optional ``_crfkernel`` extension) or numpy (``numpy_kernel``);
- ``sequences``: shape checks and the within-length reversal the Bi-LSTMs use too.

Parameters follow pytorch-crf (``start_transitions[K]``, ``end_transitions[K]``, ``transitions[K, K]``
with ``transitions[i, j]`` the score of tag i followed by tag j); masks are boolean and left-aligned.
"""

from .bounds import CRFBounds, crf_bounds
from .likelihood import log_partition, nll, sequence_score
from .native import kernel_name
from .sequences import reverse_within_length

__all__ = ["CRFBounds", "crf_bounds", "kernel_name", "log_partition", "nll", "reverse_within_length", "sequence_score"]
