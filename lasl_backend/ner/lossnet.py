"""Loss prediction: the LASL loss prediction net (LPN), the Yoo & Kweon learning-loss module, and
the pairwise ranking loss that trains both (the paper's Eq. 5).

Both nets are ``LossNet``s: training and scoring call ``predict_loss(layers, mask, bounds)`` with every
layer output of the tagger's encoder and the chunk's CRF bounds, and each net reads what it needs (the LPN
the last layer and [L_min, L_max], the learning-loss net every layer). ``needs_bounds`` tells training
whether the bounds must be computed at all. ``LOSSNETS`` maps the checkpoint's ``lossnet_kind`` to a
builder.

Shapes: ``B`` records, ``T`` time steps (characters), ``D`` feature size. Masks are *prefix* masks:
``mask[b, :len_b]`` is True and the rest False, as produced by right-padding a batch.
"""

from __future__ import annotations

from typing import Callable, ClassVar, Sequence

import torch
from torch import Tensor, nn

from ..crf import CRFBounds
from .encoders import BiLSTM

__all__ = [
    "DEFAULT_LPN_LAYERS",
    "LOSSNETS",
    "LOSSNET_KINDS",
    "LossNet",
    "build_lossnet",
    "lossnet_fits",
    "ranking_loss",
    "masked_mean",
    "masked_max",
    "LossPredictionNet",
    "LearningLossNet",
    "make_lpn_optimizer",
]


def ranking_loss(pred: Tensor, target: Tensor, margin: float = 1.0, reduction: str = "mean") -> Tensor:
    """Pairwise ranking loss of the paper's Eq. 5 (§3.2.2).

    Pairs are ``(i, i+1)`` for ``i < B-1`` and ``(B-1, 0)`` closing the ring, so every batch size,
    odd ones included, gives ``B`` pairs (Yoo & Kweon split the batch in halves and need an even B).
    Each pair costs ``max(0, -E * (pred_i - pred_j) + margin)`` with ``E = +1`` if ``target_i > target_j``
    else ``-1``. A tie counts as ``-1``, as Eq. 5 is written (and as in Yoo & Kweon's code): it asks for
    ``pred_j >= pred_i + margin``, so tied targets always leave some cost (e.g. ``2 * margin`` summed over
    the two pairs of a B = 2 batch).
    Only the ranking matters, which is why the true loss's changing scale does not (the paper's reason
    for not using MSE).

    ``target`` is detached: the true task loss is a label here, its gradient belongs to the tagger.
    ``reduction``: "mean" (sum over the B pairs / B), "sum" or "none" (the [B] pair costs).
    For ``B == 1`` there is no pair; the result is a zero that still carries a graph to ``pred``
    so that ``backward()`` works in a training loop with a last batch of one.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    pred = pred.reshape(-1)
    target = target.detach().reshape(-1).to(pred.dtype)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same number of items: {pred.shape} vs {target.shape}")
    b = pred.shape[0]
    if b <= 1:
        zero = pred.sum() * 0.0
        return zero.reshape(1).expand(b) if reduction == "none" else zero
    nxt = torch.roll(torch.arange(b, device=pred.device), shifts=-1)  # j = i + 1, and 0 for the last
    sign = torch.where(target > target[nxt], 1.0, -1.0).to(pred.dtype)
    cost = torch.clamp(-sign * (pred - pred[nxt]) + margin, min=0.0)
    if reduction == "none":
        return cost
    if reduction == "sum":
        return cost.sum()
    return cost.sum() / b


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` [B, T, D] over the valid steps of ``mask`` [B, T]; an empty record gives zeros."""
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


def masked_max(x: Tensor, mask: Tensor) -> Tensor:
    """Max of ``x`` [B, T, D] over the valid steps of ``mask`` [B, T]; an empty record gives zeros."""
    filled = x.masked_fill(~mask.bool().unsqueeze(-1), float("-inf"))
    out = filled.max(1).values
    return torch.where(torch.isfinite(out), out, torch.zeros_like(out))


_POOLINGS = ("mean", "max", "meanmax")

#: the paper's LPN: a serial encoder of two Bi-LSTM layers (Table 6); 0 = its shared-encoder structure
DEFAULT_LPN_LAYERS = 2


class LossNet(nn.Module):
    """What training and scoring need of a loss net, whichever kind it is (see the module doc)."""

    #: the checkpoint's ``lossnet_kind``
    kind: ClassVar[str]
    #: whether ``predict_loss`` reads the CRF bounds (training computes them only then)
    needs_bounds: bool = False

    def predict_loss(self, layers: Sequence[Tensor], mask: Tensor, bounds: CRFBounds | None) -> Tensor:
        """The predicted loss [B] of each chunk from the encoder's ``layers`` ([B, T, D_i] each)."""
        raise NotImplementedError

    @property
    def lpn_layers(self) -> int | None:
        """The LPN's Bi-LSTM layers (the ``lpn_layers`` setting); None for a net without that setting."""
        return None

    def matches(self, kind: str | None, lpn_layers: int) -> bool:
        """Whether this net is what ``build_lossnet(kind, ..., lpn_layers)`` would build (its weights aside)."""
        return kind == self.kind


class LossPredictionNet(LossNet):
    """LASL's loss prediction net (paper §3.2.2, "serial encoder" of §5.3).

    features h(x) [B, T, D] (the tagger's Bi-LSTM output) → 2-layer Bi-LSTM (``hidden`` per direction,
    dropout between and after layers) → masked pooling over time → concat [log1p L_min, log1p L_max]
    → dropout → one FC layer → L_p [B].

    ``num_layers`` picks among the paper's Table 6 structures: 2 (default, the paper's main setting),
    1 or 3 re-encode h(x) with that many Bi-LSTM layers ("serial encoder"); 0 pools h(x) itself straight
    into the FC layer ("shared encoder"). The Bi-LSTM layers cost 3.7x the tagger's own Bi-LSTM per
    character at 2 layers, so on a CPU they dominate scoring the pool; 0 costs next to nothing
    (docs/results.md, "Speed and the loss net's size").

    Choices (the paper gives none):
    - ``pooling``: "mean" (default; masked mean over valid characters), "max", or "meanmax"
      (concatenation of both). Mean pooling keeps the output independent of padding and of chunk length
      ordering; max is offered because a single badly-predicted entity may dominate a record's loss.
    - The bounds enter as ``log1p(clamp(b, min=0))``. L_min and L_max (Eq. 4) are non-negative sums over
      a whole sequence and reach thousands of nats on long records (docs/method.md, R3); raw values would
      swamp the pooled features (which lie in [-1, 1]) and make the SGD steps of Table 2 diverge. log1p
      is monotone, so the bounds' order is kept. They are detached: the LPN learns to use them, it does
      not push the CRF to change them.
    - Whether ranking-loss gradients reach the tagger's encoder (docs/method.md, R5) is decided by the caller:
      pass ``features.detach()`` to stop them.
    """

    kind = "lpn"

    def __init__(
        self,
        feature_dim: int = 400,
        hidden: int = 200,
        dropout: float = 0.2,
        use_bounds: bool = True,
        num_layers: int = 2,
        pooling: str = "mean",
    ) -> None:
        super().__init__()
        if pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}, got {pooling!r}")
        if num_layers < 0:
            raise ValueError("num_layers must be >= 0 (0 = the shared-encoder structure)")
        self.feature_dim = feature_dim
        self.hidden = hidden
        self.use_bounds = use_bounds
        self.pooling = pooling
        self.num_layers = num_layers
        dims = [feature_dim] + [2 * hidden] * num_layers
        self.layers = nn.ModuleList(BiLSTM(dims[i], hidden) for i in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        width = 2 * hidden if num_layers > 0 else feature_dim
        pooled = width * (2 if pooling == "meanmax" else 1)
        self.fc = nn.Linear(pooled + (2 if use_bounds else 0), 1)

    @property
    def needs_bounds(self) -> bool:  # type: ignore[override]
        return self.use_bounds

    def forward(self, features: Tensor, mask: Tensor, bounds: Tensor | None = None) -> Tensor:
        """``features`` [B, T, D], ``mask`` [B, T] bool prefix mask, ``bounds`` [B, 2] = (L_min, L_max)
        (required when ``use_bounds``). Returns the predicted loss L_p [B]: a ranking score, its scale
        is arbitrary (only Eq. 5's order is trained)."""
        if features.dim() != 3 or features.shape[-1] != self.feature_dim:
            raise ValueError(f"features must be [B, T, {self.feature_dim}], got {tuple(features.shape)}")
        mask = mask.bool()
        h = features
        for layer in self.layers:
            h = self.dropout(layer(h, mask))
        if self.pooling == "mean":
            pooled = masked_mean(h, mask)
        elif self.pooling == "max":
            pooled = masked_max(h, mask)
        else:
            pooled = torch.cat([masked_mean(h, mask), masked_max(h, mask)], dim=-1)
        if self.use_bounds:
            if bounds is None:
                raise ValueError("this LossPredictionNet uses [L_min, L_max]; pass bounds [B, 2]")
            if bounds.shape != (features.shape[0], 2):
                raise ValueError(f"bounds must be [B, 2], got {tuple(bounds.shape)}")
            b = torch.log1p(bounds.detach().to(pooled.dtype).clamp(min=0.0))
            pooled = torch.cat([pooled, b], dim=-1)
        return self.fc(pooled).squeeze(-1)

    @classmethod
    def build(cls, encoder: nn.Module, lpn_layers: int) -> "LossPredictionNet":
        return cls(feature_dim=encoder.out_dim, num_layers=lpn_layers)

    def predict_loss(self, layers: Sequence[Tensor], mask: Tensor, bounds: CRFBounds | None) -> Tensor:
        """The last layer (the features the emissions read) and [L_min, L_max]."""
        pair = None if bounds is None else torch.stack([bounds.l_min, bounds.l_max], 1).float()
        return self(layers[-1], mask, pair)

    @property
    def lpn_layers(self) -> int | None:
        return int(self.num_layers)

    def matches(self, kind: str | None, lpn_layers: int) -> bool:
        return kind == self.kind and self.num_layers == lpn_layers


class LearningLossNet(LossNet):
    """The loss prediction module of Yoo & Kweon (CVPR 2019), adapted to sequences: the paper's
    "loss sampling" baseline (§4.2), with no [L_min, L_max] inputs.

    For each feature map i ([B, T, D_i], e.g. the embeddings and the Bi-LSTM output), a masked global
    average pool over time (their GAP over space) → FC(``hidden``) + ReLU; the results are concatenated
    → FC → scalar [B]. Trained with :func:`ranking_loss`.
    """

    kind = "learning_loss"

    def __init__(self, feature_dims: Sequence[int], hidden: int = 128) -> None:
        super().__init__()
        if len(feature_dims) == 0:
            raise ValueError("LearningLossNet needs at least one feature map")
        self.feature_dims = list(feature_dims)
        self.branches = nn.ModuleList(nn.Linear(d, hidden) for d in self.feature_dims)
        self.fc = nn.Linear(hidden * len(self.feature_dims), 1)

    def forward(self, features_list: Sequence[Tensor], mask: Tensor) -> Tensor:
        """``features_list``: one [B, T, D_i] tensor per map, in the order of ``feature_dims``;
        ``mask`` [B, T] bool prefix mask shared by all maps. Returns the predicted loss [B]."""
        if len(features_list) != len(self.branches):
            raise ValueError(f"expected {len(self.branches)} feature maps, got {len(features_list)}")
        mask = mask.bool()
        parts = [torch.relu(fc(masked_mean(f, mask))) for fc, f in zip(self.branches, features_list)]
        return self.fc(torch.cat(parts, dim=-1)).squeeze(-1)

    @classmethod
    def build(cls, encoder: nn.Module, lpn_layers: int) -> "LearningLossNet":
        """One branch per encoder layer; ``lpn_layers`` sizes the LPN only."""
        return cls(encoder.layer_dims)

    def predict_loss(self, layers: Sequence[Tensor], mask: Tensor, bounds: CRFBounds | None) -> Tensor:
        """Every layer; no bounds."""
        return self(layers, mask)


#: ``lossnet_kind`` → a builder over the tagger's encoder (``out_dim``, ``layer_dims``) and ``lpn_layers``
LOSSNETS: dict[str, Callable[[nn.Module, int], LossNet]] = {
    LossPredictionNet.kind: LossPredictionNet.build,
    LearningLossNet.kind: LearningLossNet.build,
}
LOSSNET_KINDS = tuple(LOSSNETS)


def build_lossnet(kind: str | None, encoder: nn.Module, lpn_layers: int = DEFAULT_LPN_LAYERS) -> LossNet | None:
    """A fresh loss net of ``kind`` (None: no loss net) over ``encoder``'s features."""
    if kind is None:
        return None
    if kind not in LOSSNETS:
        raise ValueError(f"unknown loss net {kind!r}; choose one of {LOSSNET_KINDS}")
    return LOSSNETS[kind](encoder, lpn_layers)


def lossnet_fits(net: LossNet | None, kind: str | None, lpn_layers: int) -> bool:
    """Whether ``net`` is what ``build_lossnet(kind, ..., lpn_layers)`` would build: fine-tuning keeps it then."""
    if net is None or kind is None:
        return net is None and kind is None
    return net.matches(kind, lpn_layers)


def make_lpn_optimizer(params, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4) -> torch.optim.SGD:
    """SGD with the LPN's settings from the paper's Table 2 (lr 0.01, momentum 0.9, weight decay 5e-4)."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
