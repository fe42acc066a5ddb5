"""Early stopping only acts on a dev set that can tell periods apart, and never before ``min_steps``:
a tiny, noisy dev set must not end a run after a handful of steps."""

from __future__ import annotations

import pytest

from lasl_backend.data import Entity, Record
from lasl_backend.devtools.synthetic import make_records
from lasl_backend.ner.training import MIN_DEV_ENTITIES, TrainConfig, split_dev, train_lasl


def _records(entity_counts: list[int]) -> list[Record]:
    return [Record(f"r{i}", "阿司匹林" * max(k, 1), [Entity(4 * j, 4 * j + 4, "药物") for j in range(k)]) for i, k in enumerate(entity_counts)]


def test_a_dev_split_needs_enough_gold_entities():
    records = _records([2] * 20)  # a dev set of 5 records holds 10 entities
    train, dev = split_dev(records, 0.25, min_records=1, seed=0, min_entities=10)
    assert len(dev) == 5 and len(train) == 15
    assert sum(len(r.entities) for r in dev) == 10
    assert {r.id for r in train} | {r.id for r in dev} == {r.id for r in records} and not {r.id for r in train} & {r.id for r in dev}
    train, dev = split_dev(records, 0.25, min_records=1, seed=0, min_entities=11)
    assert dev == [] and train == records  # too few: everything is trained on


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_entity_floor_counts_the_chosen_dev_records(seed):
    """With uneven records, the floor applies to the entities of the records the split would hold out."""
    records = _records([0, 5, 1, 0, 3, 0, 0, 7, 2, 0, 1, 0])
    train, dev = split_dev(records, 0.5, min_records=1, seed=seed)
    held = sum(len(r.entities) for r in dev)
    assert len(dev) == 6
    assert split_dev(records, 0.5, min_records=1, seed=seed, min_entities=held) == (train, dev)
    assert split_dev(records, 0.5, min_records=1, seed=seed, min_entities=held + 1) == (records, [])


def test_the_record_floor_still_applies():
    records = _records([3] * 8)
    assert split_dev(records, 0.25, min_records=3, seed=0, min_entities=0) == (records, [])
    assert split_dev(records, 0.0, min_records=0, seed=0, min_entities=0) == (records, [])


def test_training_holds_out_no_dev_set_below_the_default_floor():
    records = make_records(12, seed=3, mean_chars=30, max_chars=40)
    assert TrainConfig().min_dev_entities == MIN_DEV_ENTITIES
    assert 0 < sum(len(r.entities) for r in records) < MIN_DEV_ENTITIES
    cfg = TrainConfig(max_epochs=1, min_steps=0, max_steps=1, dev_fraction=0.5, min_dev_records=1)
    res = train_lasl(records, config=cfg)
    assert res.n_dev == 0 and res.dev_f1 is None and res.n_train == 12


def test_no_early_stop_before_min_steps():
    """A dev F1 that never improves (no gold entities: 0.0 every period) with patience 1 would stop the
    run after its second one-step period; it runs until min_steps, and stops there."""
    labeled = make_records(4, seed=3, mean_chars=30, max_chars=40)
    dev = [Record(f"d{i}", r.text, []) for i, r in enumerate(make_records(3, seed=4, mean_chars=30, max_chars=40))]
    cfg = TrainConfig(max_epochs=200, min_steps=40, patience=1, dev_fraction=0.0, seed=0)
    res = train_lasl(labeled, config=cfg, dev=dev)
    assert res.n_dev == 3
    assert [h["dev_f1"] for h in res.history] == [0.0] * len(res.history)
    assert all(h["step"] == i + 1 for i, h in enumerate(res.history))  # one step per period
    assert res.steps >= cfg.min_steps
    assert res.steps == cfg.min_steps < 200  # once allowed, the run does stop early
