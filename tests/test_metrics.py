from lasl_backend.data import Entity as E
from lasl_backend.metrics import entity_prf


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
