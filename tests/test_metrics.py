from types import SimpleNamespace

from lasl_backend.data import Entity as E
from lasl_backend.metrics import Corrections, corrections, entity_prf


def test_strict_micro_and_per_label_by_hand():
    gold = [[E(0, 2, "A"), E(3, 5, "B")], [E(1, 4, "A")]]
    pred = [[E(0, 2, "A"), E(3, 6, "B")], [E(1, 4, "B"), E(6, 7, "A")]]
    r = entity_prf(gold, pred)
    # tp: (0,2,A) -> 1; fp: (3,6,B), (1,4,B), (6,7,A) -> 3; fn: (3,5,B), (1,4,A) -> 2
    m = r["micro"]
    assert (m["tp"], m["fp"], m["fn"]) == (1, 3, 2)
    assert abs(m["precision"] - 1 / 4) < 1e-12
    assert abs(m["recall"] - 1 / 3) < 1e-12
    assert abs(m["f1"] - 2 * (1 / 4) * (1 / 3) / (1 / 4 + 1 / 3)) < 1e-12
    a = r["per_label"]["A"]  # tp 1, fp 1, fn 1
    assert (a["precision"], a["recall"], a["f1"]) == (0.5, 0.5, 0.5)
    b = r["per_label"]["B"]  # tp 0, fp 2, fn 1
    assert (b["precision"], b["recall"], b["f1"]) == (0.0, 0.0, 0.0)
    assert r["n_records"] == 2


def test_empty_prediction_and_perfect():
    gold = [[E(0, 1, "A")]]
    assert entity_prf(gold, [[]])["micro"]["f1"] == 0.0
    assert entity_prf(gold, gold)["micro"]["f1"] == 1.0
    assert entity_prf([[]], [[]])["micro"]["f1"] == 0.0


# ---------------------------------------------------------------- corrections to pre-annotations


def test_exact_match_costs_nothing() -> None:
    """Pre-annotations equal to the gold regions (in any order) need no correction."""
    gold = [E(0, 2, "A"), E(5, 9, "B")]
    assert corrections(gold, list(reversed(gold))) == Corrections(0, 0, 0)
    assert corrections([], []).total == 0


def test_missing_region_is_an_add() -> None:
    """A gold region with no overlapping prediction is one add."""
    assert corrections([E(0, 2, "A"), E(5, 9, "B")], [E(0, 2, "A")]) == Corrections(add=1)
    assert corrections([E(0, 2, "A"), E(5, 9, "B")], []) == Corrections(add=2)


def test_spurious_region_is_a_delete() -> None:
    """A predicted region overlapping no gold region is one delete."""
    assert corrections([E(0, 2, "A")], [E(0, 2, "A"), E(4, 6, "B")]) == Corrections(delete=1)
    assert corrections([], [E(1, 3, "A"), E(4, 6, "B")]) == Corrections(delete=2)
    # touching is not overlapping: [2, 4) and [4, 6) share no character
    assert corrections([E(4, 6, "A")], [E(2, 4, "A")]) == Corrections(add=1, delete=1)


def test_wrong_label_or_boundary_is_a_change() -> None:
    """A prediction overlapping a gold region with another label or other bounds is one change."""
    assert corrections([E(0, 4, "A")], [E(0, 4, "B")]) == Corrections(change=1)  # label
    assert corrections([E(0, 4, "A")], [E(1, 4, "A")]) == Corrections(change=1)  # start
    assert corrections([E(0, 4, "A")], [E(2, 7, "A")]) == Corrections(change=1)  # end, partial overlap
    assert corrections([E(2, 3, "A")], [E(0, 9, "B")]) == Corrections(change=1)  # contains it, other label


def test_one_prediction_over_two_gold_regions() -> None:
    """A predicted region overlapping two gold ones is paired with one of them (a change); the other is an add."""
    c = corrections([E(0, 3, "A"), E(4, 7, "B")], [E(1, 6, "A")])
    assert c == Corrections(add=1, delete=0, change=1) and c.total == 2


def test_two_predictions_over_one_gold_region() -> None:
    """Two predictions over one gold region: one is the change, the other a delete."""
    assert corrections([E(0, 6, "A")], [E(0, 3, "A"), E(3, 6, "A")]) == Corrections(delete=1, change=1)


def test_a_mixed_record_by_hand() -> None:
    """Matches, a change, an add and a delete in one record are counted separately."""
    gold = [E(0, 2, "A"), E(4, 8, "B"), E(10, 12, "C")]
    pred = [E(0, 2, "A"), E(5, 8, "B"), E(14, 16, "A")]
    # (0,2,A) exact; (5,8,B) overlaps (4,8,B): change; (10,12,C) nothing overlaps: add; (14,16,A): delete
    assert corrections(gold, pred) == Corrections(add=1, delete=1, change=1)


def test_duplicates_count_once() -> None:
    """The same region twice (in gold or prediction) is one region."""
    assert corrections([E(0, 2, "A"), E(0, 2, "A")], [E(0, 2, "A")]) == Corrections()
    assert corrections([E(0, 2, "A")], [E(3, 5, "A"), E(3, 5, "A")]) == Corrections(add=1, delete=1)


def test_any_objects_with_start_end_label() -> None:
    """Any objects with start, end and label are accepted, and compared by those three fields only."""
    gold = [SimpleNamespace(start=0, end=3, label="A", text="xyz")]
    pred = [SimpleNamespace(start=0, end=3, label="A", score=0.4), SimpleNamespace(start=5, end=6, label="B", score=0.9)]
    assert corrections(gold, pred) == Corrections(delete=1)
    assert corrections(iter([E(0, 3, "A")]), (e for e in pred)) == Corrections(delete=1)  # iterables, not only lists


def test_corrections_add_up() -> None:
    """Corrections add field by field, and total is their sum."""
    a, b = Corrections(add=1, delete=2, change=3), Corrections(add=10, delete=20, change=30)
    assert a + b == Corrections(11, 22, 33)
    assert (a + b).total == 66 and a.total == 6
    assert Corrections() + a == a
    assert Corrections().total == 0
