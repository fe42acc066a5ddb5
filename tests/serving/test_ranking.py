"""Ranking per unit of effort: diversified queue scores, the project's cost model and cost-aware queue scores."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from lasl_backend.data import Entity
from lasl_backend.labelstudio import LabeledTask
from lasl_backend.ner import RecordScore, SpanPrediction
from lasl_backend.serving.ranking import diversify, fit_project_cost, signatures
from lasl_backend.serving.scores import dbs_score, queue_scores, record_costs
from lasl_backend.strategies import DBSNormalizer
from lasl_backend.strategies.cost import CostModel
from lasl_backend.strategies.diversity import text_signature


def cjk(rng: np.random.Generator, n: int) -> str:
    """``n`` random CJK ideographs: two such texts are unrelated (each its own near-duplicate group)."""
    return "".join(chr(int(c)) for c in rng.integers(0x4E00, 0x9FA6, n))


def predictions(scores: list[float]) -> list[dict[str, Any]]:
    return [{"model_version": "v3", "score": s, "result": [{"id": f"r{i}"}]} for i, s in enumerate(scores)]


def queue_positions(preds: list[dict[str, Any]]) -> list[int]:
    """Each prediction's place in Label Studio's queue (lowest score served first)."""
    order = np.argsort([p["score"] for p in preds], kind="stable")
    pos = np.empty(len(preds), dtype=int)
    pos[order] = np.arange(len(preds))
    return pos.tolist()


# ---------------------------------------------------------------- diversify


def test_two_duplicates_at_the_head_are_spread_apart() -> None:
    """Two tasks with the same text, first and second in the queue, end up more than ``window`` places apart."""
    rng = np.random.default_rng(0)
    dup = cjk(rng, 80)
    texts = [dup, dup] + [cjk(rng, 80) for _ in range(10)]
    scores = [0.5 + 0.01 * i for i in range(12)]  # already in queue order
    preds = predictions(scores)
    meta = diversify(preds, texts, window=3)
    pos = queue_positions(preds)
    assert pos[0] == 0 and pos[1] - pos[0] > 3
    # by construction: task 0, then three others (2, 3, 4), then task 1 comes back; the tail keeps its place
    assert [p["score"] for p in preds] == pytest.approx([0.50, 0.54, 0.51, 0.52, 0.53] + scores[5:])
    assert meta == {"window": 3, "groups": 11, "moved": 4}


def test_diversify_keeps_the_scores_multiset_and_the_rest_of_each_prediction() -> None:
    """Only the scores move, among the predictions: the same values, every other field untouched."""
    rng = np.random.default_rng(1)
    base = [cjk(rng, 60) for _ in range(4)]
    texts = [base[int(k)] for k in rng.integers(0, 4, 30)]  # four groups of exact copies
    scores = rng.uniform(0.5, 1.0, 30).tolist()
    preds = predictions(scores)
    meta = diversify(preds, texts, window=2)
    assert sorted(p["score"] for p in preds) == sorted(scores)
    assert all(isinstance(p["score"], float) for p in preds)
    assert [p["result"] for p in preds] == [[{"id": f"r{i}"}] for i in range(30)]
    assert all(p["model_version"] == "v3" for p in preds)
    assert meta["groups"] == len(set(texts))
    assert meta["moved"] == sum(a != b["score"] for a, b in zip(scores, preds))
    # served order: no group within two places of itself while another group is left
    served = np.argsort([p["score"] for p in preds], kind="stable").tolist()
    for k, i in enumerate(served):
        recent = {texts[j] for j in served[max(0, k - 2): k]}
        left = {texts[j] for j in served[k:]}
        if texts[i] in recent:
            assert left <= recent


def test_window_zero_or_one_prediction_changes_nothing() -> None:
    """With window 0 (or below) or a single prediction the scores stay as they are."""
    texts = ["患者胸闷", "患者胸闷", "右肺占位"]
    preds = predictions([0.6, 0.61, 0.9])
    assert diversify(preds, texts, window=0) == {"window": 0, "groups": None, "moved": 0}
    assert diversify(preds, texts, window=-2)["moved"] == 0
    assert [p["score"] for p in preds] == [0.6, 0.61, 0.9]
    one = predictions([0.7])
    assert diversify(one, ["患者胸闷"], window=5) == {"window": 5, "groups": None, "moved": 0}
    assert one[0]["score"] == 0.7
    assert diversify([], [], window=5)["moved"] == 0


def test_unrelated_texts_keep_their_order() -> None:
    """When every text is its own group nothing moves."""
    rng = np.random.default_rng(2)
    texts = [cjk(rng, 50) for _ in range(8)]
    scores = rng.uniform(0.5, 1.0, 8).tolist()
    preds = predictions(scores)
    assert diversify(preds, texts, window=4) == {"window": 4, "groups": 8, "moved": 0}
    assert [p["score"] for p in preds] == scores


def test_signatures_are_the_texts_minhashes_from_the_cache() -> None:
    """signatures() gives each text's text_signature, the same array again for a text seen before."""
    texts = ["患者胸闷气促三年", "右肺占位建议复查", "患者胸闷气促三年"]
    sigs = signatures(texts)
    for t, s in zip(texts, sigs):
        assert np.array_equal(s, text_signature(t))
    assert sigs[0] is sigs[2]  # cached


def test_a_text_with_a_lone_surrogate_does_not_stop_diversify() -> None:
    """A task text that holds a lone surrogate (possible in JSON) is ranked like any other."""
    texts = [json.loads('"\\ud83d 患者胸闷"'), "患者胸闷", "右肺占位"]
    preds = predictions([0.6, 0.7, 0.8])
    diversify(preds, texts, window=2)
    assert sorted(p["score"] for p in preds) == [0.6, 0.7, 0.8]


# ---------------------------------------------------------------- fit_project_cost


def labeled(n: int, seed: int = 0, noise: float = 2.0) -> list[LabeledTask]:
    """Tasks whose lead time is 15 s + 0.04 s per character + 2.5 s per region, plus noise."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        c = int(rng.integers(40, 1500))
        r = int(rng.integers(0, 12))
        ents = [Entity(3 * k, 3 * k + 2, "药物") for k in range(r)]
        out.append(LabeledTask(task_id=i, text="患" * c, entities=ents, annotation_id=i,
                               lead_time=15.0 + 0.04 * c + 2.5 * r + float(rng.normal(0.0, noise))))
    return out


def test_fit_project_cost_from_lead_times() -> None:
    """Under "auto" with enough lead times the model is fitted on text length and region count."""
    m = fit_project_cost(labeled(120), "auto", min_annotations=30)
    assert isinstance(m, CostModel)
    assert m.per_char == pytest.approx(0.04, rel=0.05)
    assert m.per_region == pytest.approx(2.5, rel=0.1)
    assert m.intercept == pytest.approx(15.0, abs=3.0)
    assert m.n == 120


@pytest.mark.parametrize("unit", ["chars", "none", "seconds", ""])
def test_other_units_never_fit(unit: str) -> None:
    """Any unit other than "auto" gives no model, however many lead times there are."""
    assert fit_project_cost(labeled(100), unit, min_annotations=10) is None


def test_too_few_usable_lead_times_give_no_model() -> None:
    """Under "auto", fewer usable lead times than ``min_annotations`` give None; unusable ones do not count."""
    tasks = labeled(40)
    assert fit_project_cost(tasks[:29], "auto", min_annotations=30) is None
    assert fit_project_cost(tasks[:30], "auto", min_annotations=30) is not None
    for t, bad in zip(tasks[:15], [None, "soon", -4.0, 0, float("nan"), True, 99_999.0] * 3):
        t.lead_time = bad  # 25 usable left
    assert fit_project_cost(tasks, "auto", min_annotations=30) is None
    assert fit_project_cost(tasks, "auto", min_annotations=25) is not None
    assert fit_project_cost([], "auto", min_annotations=1) is None


# ---------------------------------------------------------------- cost-aware queue scores


def rec(l_min: float, l_pred: float, n_chars: int, n_regions: int = 0) -> RecordScore:
    ents = [SpanPrediction(k, k + 1, "药物", "x", 0.9) for k in range(n_regions)]
    return RecordScore(ents, l_min=l_min, l_max=l_min + 1.0, p_max=float(np.exp(-l_min)), l_pred=l_pred, n_chars=n_chars)


def test_record_costs_are_characters_or_seconds() -> None:
    """Without a model a record costs its characters; with one, its expected seconds (at least one)."""
    recs = [rec(1.0, 0.1, 100, 2), rec(1.0, 0.1, 0, 0)]
    assert record_costs(recs, None).tolist() == [100.0, 0.0]
    m = CostModel(intercept=5.0, per_char=0.1, per_region=2.5, n=50, n_used=48, mad_seconds=2.0)
    assert record_costs(recs, m).tolist() == [5.0 + 10.0 + 5.0, 5.0]
    assert record_costs(recs, CostModel(0.0, 0.0, 0.0, 1, 1, 0.0)).tolist() == [1.0, 1.0]


def test_a_costlier_record_with_the_same_losses_ranks_lower() -> None:
    """Per character, a longer record with the same losses is less informative per unit: a higher (later) score."""
    norm = DBSNormalizer(lambda_t=0.4, lse_min=2.0, lse_pred=1.0, normalize_length=True)
    short, long_ = rec(30.0, 6.0, 100), rec(30.0, 6.0, 400)
    scores = queue_scores([short, long_], norm)
    assert scores[1] > scores[0]
    # the whole-record normalizer cannot tell them apart
    plain = DBSNormalizer(lambda_t=0.4, lse_min=2.0, lse_pred=1.0)
    a, b = queue_scores([short, long_], plain)
    assert a == b


def test_with_a_cost_model_seconds_replace_characters() -> None:
    """Under a cost model two records of equal length differ by their regions' seconds; the values by hand."""
    norm = DBSNormalizer(lambda_t=1.0, lse_min=0.0, lse_pred=0.0, normalize_length=True)  # log rank = l_min / cost
    m = CostModel(intercept=5.0, per_char=0.1, per_region=2.5, n=50, n_used=50, mad_seconds=1.0)
    few, many = rec(10.0, 1.0, 100, 2), rec(10.0, 1.0, 100, 42)
    # per character: 10 / 100 = 0.1 for both → x = -0.1 → (1 - 0.1 / 1.1) / 2 = 5/11
    assert queue_scores([few, many], norm) == pytest.approx([5 / 11, 5 / 11])
    # per second: few costs 5 + 10 + 5 = 20 s → 0.5 → (1 - 0.5 / 1.5) / 2 = 1/3;
    # many costs 5 + 10 + 105 = 120 s → 1/12 → (1 - (1/12) / (13/12)) / 2 = 6/13
    got = queue_scores([few, many], norm, cost_model=m)
    assert got == pytest.approx([1 / 3, 6 / 13])
    assert got[1] > got[0]
    assert got == [dbs_score(-10.0 / 20.0), dbs_score(-10.0 / 120.0)]


def test_a_cost_model_does_not_change_whole_record_scores() -> None:
    """A normalizer that is not cost-aware ranks whole records: the cost model has no effect."""
    norm = DBSNormalizer(lambda_t=0.3, lse_min=5.0, lse_pred=2.0)
    m = CostModel(intercept=5.0, per_char=0.1, per_region=2.5, n=50, n_used=50, mad_seconds=1.0)
    recs = [rec(4.0, 1.0, 100, 2), rec(2.0, 3.0, 800, 9)]
    assert queue_scores(recs, norm, cost_model=m) == queue_scores(recs, norm)
