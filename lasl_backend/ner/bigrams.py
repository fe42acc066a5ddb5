"""Character bigram embeddings: each character also reads a vector for the pair it starts (c_t, c_t+1).

The pairs are stored as character-id pairs (``pairs`` [N, 2]); lookup is a search in their sorted keys,
on the ids the tagger already gets. Row 0 is the zero vector of unknown pairs and of a chunk's last character.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_SHIFT = 1 << 32


def pair_keys(first: Tensor, second: Tensor) -> Tensor:
    return first.long() * _SHIFT + second.long()


class BigramEmbedding(nn.Module):
    def __init__(self, pairs: Tensor, dim: int) -> None:
        super().__init__()
        self.register_buffer("pairs", pairs.long().reshape(-1, 2))
        self.embedding = nn.Embedding(int(self.pairs.shape[0]) + 1, dim, padding_idx=0)
        self.dim = dim
        self._index: dict[tuple[str, int], tuple[Tensor, Tensor]] = {}
        self.register_load_state_dict_post_hook(lambda module, _: module._index.clear())

    @classmethod
    def empty(cls, count: int, dim: int) -> "BigramEmbedding":
        return cls(torch.zeros(count, 2, dtype=torch.long), dim)

    @property
    def count(self) -> int:
        return int(self.pairs.shape[0])

    def _lookup(self) -> tuple[Tensor, Tensor]:
        key = (str(self.pairs.device), self.count)
        if key not in self._index:
            self._index.clear()
            keys, order = torch.sort(pair_keys(self.pairs[:, 0], self.pairs[:, 1]))
            self._index[key] = (keys, order + 1)
        return self._index[key]

    def forward(self, ids: Tensor) -> Tensor:
        """[B, T] ids → [B, T, dim]."""
        keys, rows = self._lookup()
        if keys.numel() == 0:
            return self.embedding(torch.zeros_like(ids))
        k = pair_keys(ids, F.pad(ids[:, 1:], (0, 1)))
        pos = torch.searchsorted(keys, k.reshape(-1)).clamp(max=keys.numel() - 1).reshape(k.shape)
        idx = torch.where(keys[pos] == k, rows[pos], torch.zeros_like(pos))
        return self.embedding(idx)
