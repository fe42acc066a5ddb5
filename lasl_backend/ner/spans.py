"""Text ↔ chunks ↔ character BIO tags.

Every character keeps exactly one position (whitespace, full-width characters, Latin and digit runs,
emoji and CJK Ext-B alike), so a tag index is a ``str`` index and predicted spans map back to record
offsets by adding the chunk start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ..data import Entity

SENTENCE_ENDS = frozenset("。；！？;!?\n\r")
SOFT_BREAKS = frozenset("，,、：: \u3000\t")


@dataclass(frozen=True)
class LabelScheme:
    """Character BIO over a label set: tag 0 is O, then B-label and I-label for each label in order."""

    labels: tuple[str, ...]

    @classmethod
    def from_labels(cls, labels: Iterable[str]) -> "LabelScheme":
        labs = tuple(labels)
        if not labs:
            raise ValueError("a label scheme needs at least one label")
        if len(set(labs)) != len(labs):
            raise ValueError(f"duplicate labels in {labs}")
        return cls(labs)

    @property
    def num_tags(self) -> int:
        return 1 + 2 * len(self.labels)

    @property
    def tags(self) -> list[str]:
        out = ["O"]
        for lab in self.labels:
            out += [f"B-{lab}", f"I-{lab}"]
        return out

    def begin(self, label: str) -> int:
        return 1 + 2 * self.labels.index(label)

    def label_of(self, tag: int) -> str | None:
        return None if tag == 0 else self.labels[(tag - 1) // 2]


def entities_to_tags(length: int, entities: Iterable[Entity], scheme: LabelScheme, offset: int = 0) -> list[int]:
    """BIO tags for ``text[offset:offset+length]``; entities outside that window are ignored,
    entities crossing its edges are clipped (chunking avoids creating those)."""
    tags = [0] * length
    for e in entities:
        s, t = max(e.start - offset, 0), min(e.end - offset, length)
        if s >= t:
            continue
        b = scheme.begin(e.label)
        tags[s] = b
        for i in range(s + 1, t):
            tags[i] = b + 1
    return tags


def tags_to_entities(tags: Sequence[int] | np.ndarray, scheme: LabelScheme, offset: int = 0) -> list[Entity]:
    """Decode BIO; an I- tag that does not continue an entity of its label starts a new one
    (the CRF rarely produces that, and dropping it would lose a confident span)."""
    starts, ends, labs = entity_spans(tags, scheme)
    labels = scheme.labels
    return [Entity(a + offset, z + offset, labels[lab]) for a, z, lab in zip(starts.tolist(), ends.tolist(), labs.tolist())]


def entity_spans(tags: Sequence[int] | np.ndarray, scheme: LabelScheme) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The entities of ``tags`` as int64 arrays: starts, ends (exclusive) and label indices, in order.

    Vectorised (a pool push decodes millions of characters): tag i continues the entity open before it
    exactly when it is an I- tag, tag i-1 is not O, and both carry the same label; every other non-O tag
    starts an entity, and an entity ends before the first tag that does not continue it.
    """
    t = np.asarray(tags, dtype=np.int64).reshape(-1)
    if t.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    if int(t.min()) < 0 or int(t.max()) >= scheme.num_tags:
        raise ValueError(f"tags must lie in [0, {scheme.num_tags}); got {int(t.min())}..{int(t.max())}")
    ext = np.append(t, 0)  # a final O closes the last entity
    inside = ext != 0
    lab = (ext - 1) // 2
    is_begin = inside & ((ext - 1) % 2 == 0)
    cont = np.zeros(ext.size, dtype=bool)
    cont[1:] = inside[1:] & ~is_begin[1:] & inside[:-1] & (lab[1:] == lab[:-1])
    starts = np.flatnonzero(inside & ~cont)
    was_inside = np.concatenate(([False], inside[:-1]))
    ends = np.flatnonzero(was_inside & ~cont)
    return starts, ends, lab[starts]


def chunk_spans(text: str, max_len: int = 200, entities: Iterable[Entity] = ()) -> list[tuple[int, int]]:
    """Cut ``text`` into consecutive ``[start, end)`` chunks of at most ``max_len`` characters.

    Sentences (ending in 。；！？ or a newline) are packed greedily; an over-long sentence is cut at a
    comma-like break, then anywhere. No cut ever falls strictly inside a given entity: when one entity is
    longer than ``max_len`` its chunk grows to hold it whole. The chunks tile the text exactly.
    """
    if max_len < 1:
        raise ValueError("max_len must be positive")
    n = len(text)
    if n == 0:
        return []
    inside = [False] * (n + 1)  # inside[c]: cutting before character c would split an entity
    span_end = [0] * (n + 1)
    for e in entities:
        for c in range(max(e.start + 1, 0), min(e.end, n + 1)):
            inside[c] = True
            span_end[c] = max(span_end[c], e.end)
    spans: list[tuple[int, int]] = []
    s = 0
    while s < n:
        limit = s + max_len
        if limit >= n:
            spans.append((s, n))
            break
        cut = _best_cut(text, s, limit, inside)
        if cut is None:  # an entity longer than max_len covers every candidate: keep it whole
            cut = span_end[limit]
        spans.append((s, cut))
        s = cut
    return spans


def _best_cut(text: str, s: int, limit: int, inside: list[bool]) -> int | None:
    soft = hard = None
    for c in range(limit, s, -1):
        if inside[c]:
            continue
        if text[c - 1] in SENTENCE_ENDS:
            return c
        if soft is None and text[c - 1] in SOFT_BREAKS:
            soft = c
        if hard is None:
            hard = c
    return soft if soft is not None else hard
