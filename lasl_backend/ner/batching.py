"""Records → chunks → length-sorted batches.

Records run to 1,700 characters; the tagger sees chunks of at most ``max_len`` characters cut at
sentence ends (``spans.chunk_spans``). Batching chunks of similar length keeps padding (and the time
the CRF loop spends on it) small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..data import Entity
from .spans import LabelScheme, chunk_spans, entities_to_tags


@dataclass
class Chunk:
    record: int  # index of the record (or text) it came from
    start: int  # offset of the chunk in the record
    ids: list[int]
    tags: list[int] | None = None

    @property
    def end(self) -> int:
        return self.start + len(self.ids)


def make_chunks(
    texts: Sequence[str],
    encode: Callable[[str], list[int]],
    max_len: int,
    entities: Sequence[Sequence[Entity]] | None = None,
    scheme: LabelScheme | None = None,
) -> list[Chunk]:
    """Chunk every text; with entities, cuts avoid them and each chunk carries its BIO tags."""
    out: list[Chunk] = []
    for i, text in enumerate(texts):
        ents = entities[i] if entities is not None else ()
        ids = encode(text)
        for s, e in chunk_spans(text, max_len, ents):
            tags = entities_to_tags(e - s, ents, scheme, offset=s) if (entities is not None and scheme is not None) else None
            out.append(Chunk(i, s, ids[s:e], tags))
    return out


def length_batches(
    chunks: Sequence[Chunk], max_batch: int = 16, max_chars: int | None = None, rng: np.random.Generator | None = None
) -> list[list[int]]:
    """Indices grouped into batches of similar length. With ``rng`` the batches come in random order and
    lengths are jittered slightly so epochs differ; without it the order is deterministic."""
    lengths = np.array([len(c.ids) for c in chunks], dtype=np.float64)
    if rng is not None:
        lengths = lengths + rng.uniform(0, 8, size=len(lengths))
    order = np.argsort(-lengths, kind="stable")
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = len(chunks[cur[0]].ids) if cur else len(chunks[i].ids)
        if cur and (len(cur) >= max_batch or (max_chars is not None and longest * (len(cur) + 1) > max_chars)):
            batches.append(cur)
            cur = []
        cur.append(int(i))
    if cur:
        batches.append(cur)
    if rng is not None:
        rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


def collate(chunks: Sequence[Chunk], device: torch.device | str = "cpu") -> tuple[Tensor, Tensor, Tensor | None]:
    """Pad to the longest chunk: ids [B, T] long, mask [B, T] bool, tags [B, T] long or None."""
    T = max(len(c.ids) for c in chunks)
    B = len(chunks)
    ids = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.bool)
    tags = torch.zeros(B, T, dtype=torch.long) if all(c.tags is not None for c in chunks) else None
    for b, c in enumerate(chunks):
        n = len(c.ids)
        ids[b, :n] = torch.tensor(c.ids, dtype=torch.long)
        mask[b, :n] = True
        if tags is not None:
            tags[b, :n] = torch.tensor(c.tags, dtype=torch.long)
    return ids.to(device), mask.to(device), (tags.to(device) if tags is not None else None)
