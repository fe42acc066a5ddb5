"""The Encoder-CRF tagger: encoder features → linear emissions → linear-chain CRF.

The CRF parameters are pytorch-crf's ``CRF`` module (so its log-likelihood is the reference in tests),
but the math runs in ``lasl_backend.crf``: a differentiable forward algorithm for training and the fused
float64 kernel for active-learning scores.
"""

from __future__ import annotations

from torch import Tensor, nn
from torchcrf import CRF

from .. import crf


class Tagger(nn.Module):
    def __init__(self, encoder: nn.Module, num_tags: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.emit = nn.Linear(encoder.out_dim, num_tags)
        self.crf = CRF(num_tags, batch_first=True)

    def forward(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Emissions [B, T, K] and the encoder's layer outputs (what the loss net reads)."""
        layers = self.encoder(ids, mask)
        return self.emit(layers[-1]), layers

    def _params(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.crf.start_transitions, self.crf.end_transitions, self.crf.transitions

    def nll(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Per-sequence loss log Z − Score(x, y)."""
        return crf.nll(emissions, tags, mask, *self._params())

    def bounds(self, emissions: Tensor, mask: Tensor, with_marginals: bool = True) -> crf.CRFBounds:
        return crf.crf_bounds(emissions, mask, *self._params(), with_marginals=with_marginals)
