"""Property-based: span ↔ tag conversion and chunking on random texts with astral characters,
whitespace and control characters."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lasl_backend.data import Entity
from lasl_backend.ner.spans import LabelScheme, chunk_spans, entities_to_tags, tags_to_entities

SCHEME = LabelScheme.from_labels(["A", "B", "C"])
ALPHABET = st.sampled_from(list("患者糖尿病。；！？，、 \u3000\t\r\n\x00\x1fAbc1*😀𠀀\U0001F9EC\ufeff"))


@st.composite
def text_and_entities(draw):
    text = draw(st.text(alphabet=ALPHABET, min_size=0, max_size=300))
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=20))))
    ents = []
    for a, b in zip(cuts[::2], cuts[1::2]):
        if a < b:
            ents.append(Entity(a, b, draw(st.sampled_from(SCHEME.labels))))
    return text, ents


@settings(max_examples=300, deadline=None)
@given(text_and_entities())
def test_tags_round_trip(te):
    text, ents = te
    tags = entities_to_tags(len(text), ents, SCHEME)
    assert len(tags) == len(text)
    assert tags_to_entities(tags, SCHEME) == ents


@settings(max_examples=300, deadline=None)
@given(text_and_entities(), st.integers(1, 60))
def test_chunks_tile_and_keep_entities_whole(te, max_len):
    text, ents = te
    spans = chunk_spans(text, max_len, ents)
    if not text:
        assert spans == []
        return
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(spans, spans[1:]))
    longest = max([e.end - e.start for e in ents], default=0)
    for s, e in spans:
        assert e - s <= max(max_len, longest + max_len)
    # every entity lies in exactly one chunk, and the chunk-local tags decode back to it
    recovered = []
    for s, e in spans:
        local = entities_to_tags(e - s, ents, SCHEME, offset=s)
        recovered += tags_to_entities(local, SCHEME, offset=s)
    assert recovered == ents


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, SCHEME.num_tags - 1), max_size=80))
def test_any_tag_sequence_decodes_to_valid_spans(tags):
    ents = tags_to_entities(tags, SCHEME)
    prev = 0
    for e in ents:
        assert prev <= e.start < e.end <= len(tags)
        assert tags[e.start] != 0 and all(t != 0 for t in tags[e.start : e.end])
        prev = e.end


def _reference_tags_to_entities(tags: list[int], scheme: LabelScheme) -> list[Entity]:
    """The decoder as a plain loop over the tags (the vectorised one must agree with it everywhere)."""
    out: list[Entity] = []
    start: int | None = None
    label: str | None = None
    for i, tag in enumerate(list(tags) + [0]):
        lab = scheme.label_of(tag)
        is_begin = tag != 0 and (tag - 1) % 2 == 0
        continues = lab is not None and not is_begin and lab == label and start is not None
        if start is not None and not continues:
            out.append(Entity(start, i, label))  # type: ignore[arg-type]
            start, label = None, None
        if lab is not None and not continues:
            start, label = i, lab
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, SCHEME.num_tags - 1), max_size=80), st.integers(0, 500))
def test_vectorised_decoder_agrees_with_the_plain_loop(tags, offset):
    want = [Entity(e.start + offset, e.end + offset, e.label) for e in _reference_tags_to_entities(tags, SCHEME)]
    assert tags_to_entities(tags, SCHEME, offset=offset) == want
    assert tags_to_entities(np.array(tags, dtype=np.int64), SCHEME, offset=offset) == want


def test_decoder_refuses_tags_outside_the_scheme():
    with pytest.raises(ValueError, match="tags must lie in"):
        tags_to_entities([0, SCHEME.num_tags], SCHEME)
