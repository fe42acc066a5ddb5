"""The replay's model of Label Studio's queue: the order a version pushes and how annotators are served from it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lasl_backend.data import Entity
from lasl_backend.sim.ls_queue import PushedVersion, push, serve
from lasl_backend.strategies import PoolScores, get_strategy

Span = tuple[int, int, str]


def version(order: list[int]) -> PushedVersion:
    return PushedVersion(list(order), {i: [] for i in order})


# ---------------------------------------------------------------- push


def test_push_orders_by_score_and_maps_pool_positions_to_records() -> None:
    """The pushed order is the strategy's highest score first, as record indices; regions follow their records."""
    pool = PoolScores(n=4, l_min=[2.0, 9.0, 0.5, 4.0])
    pool_idx = [10, 11, 12, 13]
    regions: list[list[Span]] = [[(0, 2, "A")], [], [(1, 3, "B"), (4, 5, "C")], [(2, 4, "A")]]
    v = push(get_strategy("mlp"), pool, pool_idx, regions, np.random.default_rng(0))
    # l_min 9 (pos 1 → record 11), 4 (pos 3 → 13), 2 (pos 0 → 10), 0.5 (pos 2 → 12)
    assert v.order == [11, 13, 10, 12]
    assert v.regions == {10: [(0, 2, "A")], 11: [], 12: [(1, 3, "B"), (4, 5, "C")], 13: [(2, 4, "A")]}


def test_push_matches_the_strategys_query_order() -> None:
    """On distinct scores the pushed order is the strategy's own query order, mapped to record indices."""
    rng = np.random.default_rng(3)
    pool = PoolScores(n=15, l_min=rng.uniform(0, 30, 15))
    pool_idx = sorted(rng.choice(1000, 15, replace=False).tolist())
    s = get_strategy("mlp")
    v = push(s, pool, pool_idx, [[] for _ in range(15)], np.random.default_rng(1))
    assert v.order == [pool_idx[j] for j in s.query(pool, 15, np.random.default_rng(0))]


def test_push_breaks_ties_at_random_and_repeatably() -> None:
    """Tied scores are ordered by the rng: the same seed gives the same order, seeds differ."""
    pool = PoolScores(n=6, l_min=np.ones(6))
    orders = [push(get_strategy("mlp"), pool, list(range(6)), [[]] * 6, np.random.default_rng(seed)).order for seed in range(10)]
    assert all(sorted(o) == list(range(6)) for o in orders)
    assert len({o[0] for o in orders}) > 1
    assert orders[3] == push(get_strategy("mlp"), pool, list(range(6)), [[]] * 6, np.random.default_rng(3)).order


# ---------------------------------------------------------------- serve


def test_serve_takes_the_first_unlabeled_of_the_newest_version() -> None:
    """One annotator: each pick is the first record of the order not labeled and not picked yet."""
    picks = serve([version([5, 3, 8, 1])], labeled={3}, k=3, lag=0, annotators=1, rng=np.random.default_rng(0))
    assert picks == [(5, 0), (8, 0), (1, 0)]


def test_serve_uses_the_older_version_for_the_first_lag_picks() -> None:
    """With two versions the first ``lag`` picks come from the older one, the rest from the newest, no record twice."""
    old, new = version([1, 2, 3, 4]), version([2, 5, 1, 6, 3])
    picks = serve([old, new], labeled=set(), k=4, lag=2, annotators=1, rng=np.random.default_rng(0))
    # old serves 1, 2; new skips 2 (picked), serves 5, skips 1, serves 6
    assert picks == [(1, 0), (2, 0), (5, 1), (6, 1)]
    assert serve([old, new], set(), k=2, lag=0, annotators=1, rng=np.random.default_rng(0)) == [(2, 1), (5, 1)]
    assert serve([old, new], set(), k=3, lag=5, annotators=1, rng=np.random.default_rng(0)) == [(1, 0), (2, 0), (3, 0)]


def test_lag_needs_two_versions() -> None:
    """With a single version every pick, lagged or not, comes from it."""
    picks = serve([version([4, 0, 2])], labeled=set(), k=3, lag=2, annotators=1, rng=np.random.default_rng(0))
    assert picks == [(4, 0), (0, 0), (2, 0)]


def test_serve_skips_labeled_records_and_does_not_change_the_labeled_set() -> None:
    """Labeled records are never served, and the caller's labeled set is left as it was."""
    labeled = {0, 2, 4}
    picks = serve([version([0, 1, 2, 3, 4, 5])], labeled, k=10, lag=0, annotators=1, rng=np.random.default_rng(0))
    assert picks == [(1, 0), (3, 0), (5, 0)]
    assert labeled == {0, 2, 4}


def test_serve_stops_when_the_order_is_exhausted() -> None:
    """Asking for more picks than unlabeled records returns only those; none are left → nothing."""
    assert serve([version([1, 2])], {1}, k=5, lag=0, annotators=1, rng=np.random.default_rng(0)) == [(2, 0)]
    assert serve([version([1, 2])], {1, 2}, k=5, lag=0, annotators=3, rng=np.random.default_rng(0)) == []
    assert serve([version([])], set(), k=3, lag=0, annotators=1, rng=np.random.default_rng(0)) == []


@pytest.mark.parametrize("annotators", [2, 3, 5])
def test_several_annotators_pick_among_the_first_annotators_plus_one(annotators: int) -> None:
    """With n > 1 annotators a pick is one of the first n + 1 unlabeled records; over many seeds each of them."""
    order = list(range(20))
    labeled = {1, 3}
    head = [i for i in order if i not in labeled][: annotators + 1]
    seen: set[int] = set()
    for seed in range(200):
        (pick, v), = serve([version(order)], labeled, k=1, lag=0, annotators=annotators, rng=np.random.default_rng(seed))
        assert v == 0 and pick in head
        seen.add(pick)
    assert seen == set(head)


def test_several_annotators_later_picks_slide_over_the_order() -> None:
    """Each later pick is drawn among the first annotators + 1 records not labeled or picked before it."""
    order = list(range(30))
    for seed in range(50):
        picks = serve([version(order)], set(), k=8, lag=0, annotators=2, rng=np.random.default_rng(seed))
        assert len(picks) == 8 and len({p for p, _ in picks}) == 8
        taken: set[int] = set()
        for pick, _ in picks:
            assert pick in [i for i in order if i not in taken][:3]
            taken.add(pick)


def test_one_annotator_ignores_the_rng() -> None:
    """A single annotator is served deterministically, whatever the seed."""
    order = [9, 4, 7, 1, 0]
    got = {tuple(serve([version(order)], set(), 4, 0, 1, np.random.default_rng(seed))) for seed in range(10)}
    assert got == {((9, 0), (4, 0), (7, 0), (1, 0))}


def test_several_annotators_repeat_for_a_seed() -> None:
    """The random picks repeat for the same rng seed."""
    args = ([version(list(range(12)))], {2}, 6, 0, 3)
    assert serve(*args, rng=np.random.default_rng(8)) == serve(*args, rng=np.random.default_rng(8))


# ---------------------------------------------------------------- PushedVersion


def test_pushed_version_round_trips_through_json() -> None:
    """to_dict, json.dumps, json.loads and from_dict give back an equal version (int keys, tuple spans)."""
    v = PushedVersion([3, 0, 12], {3: [(0, 2, "药物"), (5, 9, "手术")], 0: [], 12: [(1, 4, "疾病和诊断")]})
    back = PushedVersion.from_dict(json.loads(json.dumps(v.to_dict(), ensure_ascii=False)))
    assert back == v
    assert back.order == [3, 0, 12]
    assert all(isinstance(k, int) for k in back.regions)
    assert back.regions[3][1] == (5, 9, "手术")
    assert PushedVersion.from_dict(json.loads(json.dumps(PushedVersion([]).to_dict()))) == PushedVersion([], {})


def test_entities_of_a_record() -> None:
    """entities(i) are the record's regions as Entity objects; a record without regions gives none."""
    v = PushedVersion([1, 2], {1: [(0, 2, "A"), (3, 5, "B")], 2: []})
    assert v.entities(1) == [Entity(0, 2, "A"), Entity(3, 5, "B")]
    assert v.entities(2) == [] and v.entities(99) == []
