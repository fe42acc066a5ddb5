"""The synthetic EMR generator: tests, the demo and the e2e suite trust its gold spans blindly."""

from __future__ import annotations

import statistics

import pytest

from lasl_backend.data import Record, record_from_json, validate_entities
from lasl_backend.devtools.synthetic import LABELS, SLOTS, demo_records, make_records

CCKS_LABELS = {"疾病和诊断", "影像检查", "实验室检验", "手术", "药物", "解剖部位"}


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return make_records(300, seed=7)


def test_same_seed_same_records_other_seed_differs() -> None:
    a = make_records(20, seed=1)
    b = make_records(20, seed=1)
    c = make_records(20, seed=2)
    assert [(r.id, r.text, r.entities) for r in a] == [(r.id, r.text, r.entities) for r in b]
    assert [r.text for r in a] != [r.text for r in c]


def test_prefix_stability() -> None:
    """Asking for more records must not change the first ones (tests slice pools by count)."""
    assert [r.text for r in make_records(5, seed=3)] == [r.text for r in make_records(12, seed=3)[:5]]


def test_offsets_point_at_surface_and_pass_data_validation(records: list[Record]) -> None:
    for r in records:
        assert r.entities, r.id
        assert validate_entities(r.text, r.entities, r.id) == r.entities  # sorted, in range, no overlap
        for e in r.entities:
            surface = r.text[e.start : e.end]
            assert surface in SLOTS[e.label]
            assert surface == surface.strip()
        # round trip through the JSONL shape keeps the offsets
        back = record_from_json(r.to_json(), r.id)
        assert back.entities == r.entities and back.text == r.text


def test_labels_are_exactly_the_six_ccks_labels(records: list[Record]) -> None:
    assert set(LABELS) == CCKS_LABELS
    assert {e.label for r in records for e in r.entities} == CCKS_LABELS


def test_lengths_roughly_lognormal_around_mean_and_capped() -> None:
    recs = make_records(400, seed=11, mean_chars=390, max_chars=1700)
    lengths = [len(r.text) for r in recs]
    assert max(lengths) <= 1700
    assert 0.8 * 390 <= statistics.mean(lengths) <= 1.25 * 390
    assert statistics.median(lengths) < statistics.mean(lengths)  # right-skewed, like real EMR records
    assert min(lengths) < 250 and max(lengths) > 700  # a spread, not one fixed size

    capped = make_records(100, seed=5, mean_chars=300, max_chars=200)
    assert max(len(r.text) for r in capped) <= 200
    assert all(r.entities for r in capped)


def test_text_has_the_hard_characters(records: list[Record]) -> None:
    """Astral characters before entities, full-width punctuation/space and Latin/digit runs must all occur."""
    texts = [r.text for r in records]
    astral = [r for r in records if any(ord(ch) > 0xFFFF for ch in r.text)]
    assert len(astral) >= 10
    # an astral character before at least one entity in some record (catches UTF-16 offset shifts)
    assert any(any(ord(ch) > 0xFFFF for ch in r.text[: r.entities[-1].start]) for r in astral if r.entities)
    # never inside an entity
    assert not any(ord(ch) > 0xFFFF for r in records for e in r.entities for ch in r.text[e.start : e.end])
    joined = "".join(texts)
    for needle in ("，", "：", "（", "　", "*", "CM"):
        assert needle in joined, needle
    assert any(ch.isascii() and ch.isdigit() for ch in joined)


def test_demo_records_are_short_and_deterministic() -> None:
    a, b = demo_records(40), demo_records(40)
    assert len(a) == 40
    assert [r.text for r in a] == [r.text for r in b]
    assert max(len(r.text) for r in a) <= 420
    assert len({r.id for r in a}) == 40


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        make_records(-1, seed=0)
    assert make_records(0, seed=0) == []
