"""SoftLexicon features (Ma et al., ACL 2020): for each character, the lexicon words it Begins, is in the
Middle of, Ends, or forms Singly, each set pooled into one vector and joined to the character embedding.

A word w in a set S of character c adds z(w)·e(w), and the four sums are scaled by 4/Z where Z sums
z over every word in the character's four sets: ``v(S) = 4/Z Σ_{w∈S} z(w) e(w)``. z(w) is the word's
count in the texts the model was built on plus the lexicon's prior count; e(w) is a trainable vector
(initialised from LAC where it has one).

Matching runs inside the module on the character ids, vectorised, so the tagger's inputs stay plain ids:
per word length L, each window of L ids is hashed (wrapping int64 polynomial), looked up in the sorted
hashes of the lexicon's words of that length, and a hit is verified id by id, so a hash collision can
cost a match but never invent one. A word is stored as its character ids; words with a character
outside the vocabulary are never stored, so ``<unk>`` never matches.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_PRIME = 1_000_003


def window_hash(windows: Tensor) -> Tensor:
    """[..., L] ids → [...] int64 hash (wrapping arithmetic, identical for words and text windows)."""
    h = windows[..., 0].clone()
    for k in range(1, windows.shape[-1]):
        h = h * _PRIME + windows[..., k]
    return h


class SoftLexicon(nn.Module):
    """Word table (``word_chars`` [W, Lmax] ids, 0-padded; ``weight`` [W] = z) and its embeddings."""

    def __init__(self, word_chars: Tensor, weight: Tensor, dim: int, proj: int | None = None) -> None:
        super().__init__()
        self.register_buffer("word_chars", word_chars.long())
        self.register_buffer("weight", weight.float())
        self.embedding = nn.Embedding(max(int(word_chars.shape[0]), 1), dim)
        self.dim = dim
        #: word vectors are projected to ``proj`` wide before pooling (the Bi-LSTM's input cost grows with its
        #: width): the table is projected once per call, so the cost does not grow with the matches
        self.project = nn.Linear(dim, proj) if proj else None
        self.width = proj or dim
        self.out_dim = 4 * self.width
        self._index: dict[tuple[str, int], list[tuple[int, Tensor, Tensor]]] = {}
        self.register_load_state_dict_post_hook(lambda module, _: module._index.clear())

    @classmethod
    def empty(cls, words: int, max_chars: int, dim: int, proj: int | None = None) -> "SoftLexicon":
        """Of the right shapes for a checkpoint's state dict to fill."""
        return cls(torch.zeros(words, max_chars, dtype=torch.long), torch.zeros(words), dim, proj)

    @property
    def num_words(self) -> int:
        return int(self.word_chars.shape[0])

    @property
    def max_chars(self) -> int:
        return int(self.word_chars.shape[1])

    def lengths(self) -> Tensor:
        return (self.word_chars > 0).sum(1)

    def _lookup(self) -> list[tuple[int, Tensor, Tensor]]:
        """Per word length: (L, sorted hashes, word index of each), built once per device and table."""
        key = (str(self.word_chars.device), self.num_words)
        if key not in self._index:
            self._index.clear()
            lengths = self.lengths()
            table = []
            for L in sorted(set(lengths.tolist()) - {0}):  # 0: a row not filled in (an empty table)
                idx = torch.nonzero(lengths == L).flatten()
                hashes, order = torch.sort(window_hash(self.word_chars[idx, :L]))
                table.append((int(L), hashes, idx[order]))
            self._index[key] = table
        return self._index[key]

    def match(self, ids: Tensor) -> list[tuple[int, Tensor]]:
        """Per length L: word index [B, T-L+1] of the word starting at each position, -1 where none."""
        out = []
        T = ids.shape[1]
        for L, hashes, words in self._lookup():
            if L > T:
                continue
            windows = ids.unfold(1, L, 1)  # [B, n, L]
            h = window_hash(windows)
            pos = torch.searchsorted(hashes, h.reshape(-1)).clamp(max=hashes.numel() - 1).reshape(h.shape)
            cand = words[pos]
            hit = (hashes[pos] == h) & (self.word_chars[cand, :L] == windows).all(-1)
            out.append((L, torch.where(hit, cand, torch.full_like(cand, -1))))
        return out

    def forward(self, ids: Tensor) -> Tensor:
        """[B, T] ids → [B, T, out_dim]: the B, M, E, S vectors of every character (projected when ``proj``)."""
        B, T = ids.shape
        bags, words = self._bags(ids)
        d = self.width
        pooled = self.embedding.weight.new_zeros(B * T * 4, d)
        if bags.numel():
            table = self.project(self.embedding.weight) if self.project is not None else self.embedding.weight
            z = self.weight[words]
            total = self.weight.new_zeros(B * T).index_add_(0, bags // 4, z)
            pooled = pooled.index_add(0, bags, table[words] * z.unsqueeze(-1))
            scale = torch.where(total > 0, 4.0 / total.clamp(min=1e-12), torch.zeros_like(total))
            pooled = pooled.view(B * T, 4 * d) * scale.unsqueeze(-1)
        return pooled.view(B, T, 4 * d)

    def _bags(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """Every (character, set) a matched word belongs to, as flat bag ids ((b·T + t)·4 + set, sets
        B=0 M=1 E=2 S=3), and the word of each."""
        T = ids.shape[1]
        bags: list[Tensor] = []
        words: list[Tensor] = []
        for L, widx in self.match(ids):
            b, s = torch.nonzero(widx >= 0, as_tuple=True)
            w = widx[b, s]
            start = b * T + s
            if L == 1:
                bags.append(start * 4 + 3)
                words.append(w)
                continue
            bags += [start * 4, (start + L - 1) * 4 + 2] + [(start + k) * 4 + 1 for k in range(1, L - 1)]
            words += [w] * L
        if not bags:
            return ids.new_zeros(0), ids.new_zeros(0)
        return torch.cat(bags), torch.cat(words)
