"""Property-based: span ↔ tag conversion and chunking on random texts with astral characters,
whitespace and control characters."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lasl_backend.data import Entity
from lasl_backend.spans import LabelScheme, chunk_spans, entities_to_tags, tags_to_entities

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
