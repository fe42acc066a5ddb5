"""What a replay measures besides F1: the held-back split, its counts, batch corrections and the stop-set agreement."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lasl_backend.config import Settings
from lasl_backend.data import Entity as E
from lasl_backend.data import Record
from lasl_backend.labelstudio import LabeledTask
from lasl_backend.metrics import Corrections
from lasl_backend.serving.training_run import split_holdout
from lasl_backend.sim.signals import (
    HOLDOUT_FRACTION,
    HOLDOUT_MIN_LABELED,
    batch_corrections,
    heldout_counts,
    kappa_against,
    load_tags,
    save_tags,
    split_heldout,
    stop_set,
    stop_tags,
)
from lasl_backend.stopping import holdout_key


def tasks(ids: list[int]) -> list[LabeledTask]:
    return [LabeledTask(task_id=i, text="患者胸闷", entities=[], annotation_id=1000 + i) for i in ids]


def backend_split(ids: list[int], settings: Settings) -> tuple[list[int], list[int]]:
    train, held = split_holdout(tasks(ids), settings)
    return [t.task_id for t in train], [t.task_id for t in held]


# ---------------------------------------------------------------- the held-back split


def test_defaults_equal_the_backends() -> None:
    """The replay holds back the same share, from the same count, with the same seed as the backend by default."""
    s = Settings()
    assert HOLDOUT_FRACTION == s.holdout_fraction
    assert HOLDOUT_MIN_LABELED == s.holdout_min_labeled
    assert s.seed == 0  # split_heldout hashes with seed 0


def test_split_is_by_the_hash_of_the_id() -> None:
    """A record is held back exactly when holdout_key(id, 0) is below the fraction; both parts keep input order."""
    ids = list(range(200, 0, -3))
    train, held = split_heldout(ids)
    assert held == [i for i in ids if holdout_key(i, 0) < HOLDOUT_FRACTION]
    assert train == [i for i in ids if holdout_key(i, 0) >= HOLDOUT_FRACTION]
    assert 0 < len(held) < len(ids)


def test_nothing_is_held_back_below_the_minimum() -> None:
    """Below HOLDOUT_MIN_LABELED records, or with fraction 0, everything is trained on."""
    ids = list(range(HOLDOUT_MIN_LABELED - 1))
    assert split_heldout(ids) == (ids, [])
    assert split_heldout(list(range(500)), fraction=0.0) == (list(range(500)), [])
    assert split_heldout([]) == ([], [])
    assert split_heldout(list(range(10)), fraction=0.5, min_labeled=5)[1] == [i for i in range(10) if holdout_key(i, 0) < 0.5]


@pytest.mark.parametrize("seed", range(6))
def test_split_matches_the_backend(seed: int) -> None:
    """On random id sets (sizes around the minimum) the replay's split is the backend's split_holdout."""
    rng = np.random.default_rng(seed)
    for n in (0, 5, HOLDOUT_MIN_LABELED - 1, HOLDOUT_MIN_LABELED, 37, 150):
        ids = rng.choice(10_000, n, replace=False).tolist()
        assert split_heldout(ids) == backend_split(ids, Settings())
        for fraction, minimum in ((0.3, 10), (0.5, 2)):
            s = Settings(holdout_fraction=fraction, holdout_min_labeled=minimum)
            assert split_heldout(ids, fraction, minimum) == backend_split(ids, s)


def test_split_matches_the_backend_when_every_id_hashes_below_the_fraction() -> None:
    """Even when every labeled id hashes below the fraction, the replay splits like the backend (nothing held back)."""
    ids = [i for i in range(2000) if holdout_key(i, 0) < HOLDOUT_FRACTION][:HOLDOUT_MIN_LABELED + 5]
    assert len(ids) == HOLDOUT_MIN_LABELED + 5
    assert backend_split(ids, Settings()) == (ids, [])
    assert split_heldout(ids) == (ids, [])


# ---------------------------------------------------------------- counts and corrections


def test_heldout_counts_by_hand() -> None:
    """Per record: strict true positives, predicted and gold entities (a duplicate counts once)."""
    gold = [Record("a", "患者胸闷气促", [E(0, 2, "A"), E(2, 4, "B")]), Record("b", "无", []), Record("c", "右肺", [E(0, 2, "C")])]
    pred = [[E(0, 2, "A"), E(2, 5, "B"), E(0, 2, "A")], [E(0, 1, "A")], []]
    assert heldout_counts(gold, pred) == [[1, 2, 2], [0, 1, 0], [0, 0, 1]]
    assert heldout_counts([], []) == []


def test_batch_corrections_sum_over_records() -> None:
    """A batch's corrections are the sum of each record's against the pre-annotations it was shown."""
    gold = [Record("a", "x" * 20, [E(0, 2, "A"), E(5, 9, "B")]), Record("b", "x" * 20, [E(1, 3, "A")]), Record("c", "x" * 20, [])]
    shown = [[E(0, 2, "A"), E(5, 8, "B")],  # one change
             [],  # one add
             [E(4, 6, "A"), E(7, 9, "B")]]  # two deletes
    assert batch_corrections(gold, shown) == Corrections(add=1, delete=2, change=1)
    assert batch_corrections([], []) == Corrections()


# ---------------------------------------------------------------- the stop set


def test_stop_set_is_drawn_outside_the_initial_labeled_set() -> None:
    """The stop set is ``size`` distinct, sorted records, none of them labeled at the start."""
    labeled = list(range(0, 100, 4))
    ids = stop_set(100, labeled, 30, seed=5)
    assert len(ids) == 30 and ids == sorted(set(ids))
    assert not set(ids) & set(labeled)
    assert all(0 <= i < 100 for i in ids)


def test_stop_set_is_deterministic_per_seed() -> None:
    """The same seed draws the same set; other seeds draw other sets."""
    a = stop_set(1000, [1, 2, 3], 50, seed=0)
    assert a == stop_set(1000, [3, 2, 1], 50, seed=0)
    assert len({tuple(stop_set(1000, [1, 2, 3], 50, seed=s)) for s in range(5)}) == 5


def test_stop_set_is_capped_by_the_pool() -> None:
    """Asking for more than the unlabeled records gives all of them; none left or size 0 gives none."""
    assert stop_set(30, list(range(10)), 200, seed=1) == list(range(10, 30))
    assert stop_set(10, list(range(10)), 5, seed=1) == []
    assert stop_set(10, [], 0, seed=1) == []


# ---------------------------------------------------------------- tags and agreement


def test_stop_tags_are_char_tags_per_record() -> None:
    """Each stop record's tags: 0 outside predicted regions, 1 + the label's index inside; keyed by record index."""
    records = [Record("a", "患者胸闷"), Record("b", "右肺占位")]
    tags = stop_tags(records, [1, 0], [[E(2, 4, "B")], [E(0, 1, "A")]], ["A", "B"])
    assert set(tags) == {"0", "1"}
    assert tags["1"].tolist() == [0, 0, 2, 2] and tags["0"].tolist() == [1, 0, 0, 0]


def test_save_and_load_tags(tmp_path: Path) -> None:
    """Saved tags load back equal, with their dtype, at exactly the path given; no temporary file is left."""
    tags = {"3": np.array([0, 1, 1, 0], dtype=np.int16), "17": np.array([], dtype=np.int16), "5": np.array([2, 2, 0], dtype=np.int16)}
    path = tmp_path / "sub" / "stop_tags_r0.npz"
    save_tags(path, tags)
    back = load_tags(path)
    assert back is not None and set(back) == set(tags)
    for k, v in tags.items():
        assert back[k].dtype == v.dtype and back[k].tolist() == v.tolist()
    assert sorted(p.name for p in path.parent.iterdir()) == ["stop_tags_r0.npz"]
    assert load_tags(tmp_path / "missing.npz") is None


def test_kappa_against_the_previous_version(tmp_path: Path) -> None:
    """NaN without a previous file; 1.0 for identical tags; Cohen's kappa by hand otherwise."""
    path = tmp_path / "prev.npz"
    tags = {"0": np.array([0, 0, 1, 1], dtype=np.int16), "1": np.array([2, 0], dtype=np.int16)}
    assert math.isnan(kappa_against(path, tags))
    save_tags(path, tags)
    assert kappa_against(path, tags) == 1.0
    # old (0, 0, 1, 1) vs new (0, 1, 1, 1): p_obs = 3/4, p_exp = 1/2 · 1/4 + 1/2 · 3/4 = 1/2 → (3/4 - 1/2) / (1/2) = 1/2
    save_tags(path, {"0": np.array([0, 0, 1, 1], dtype=np.int16)})
    assert kappa_against(path, {"0": np.array([0, 1, 1, 1], dtype=np.int16)}) == pytest.approx(0.5)
