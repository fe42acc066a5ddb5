"""Prediction's steps on their own: batches of chunks, chunk results summed into records."""

from __future__ import annotations

import numpy as np
import pytest

from lasl_backend.ner.batching import Chunk
from lasl_backend.ner.prediction import PEAK_MIN_CHARS, BatchScores, aggregate, peak_total, plan_batches, run_batches
from lasl_backend.ner.spans import LabelScheme

SCHEME = LabelScheme.from_labels(["药物", "手术"])  # tags: O, B-药物, I-药物, B-手术, I-手术


def _scores(l_min, l_max, l_pred, paths, path_p, marginals=None) -> BatchScores:
    path_p = np.asarray(path_p, dtype=np.float64)
    cum = np.concatenate([np.zeros((len(path_p), 1)), np.cumsum(path_p, axis=1)], axis=1)
    return BatchScores(np.asarray(l_min, float), np.asarray(l_max, float), None if l_pred is None else np.asarray(l_pred, float),
                       np.asarray(paths), cum, marginals)


def test_plan_batches_covers_every_chunk_once_within_the_limits():
    texts = ["甲" * 450 + "。" + "乙" * 30, "丙" * 10, "", "丁" * 199]
    batches = plan_batches(texts, lambda t: [2] * len(t), max_len=200, max_batch=2, batch_chars=400)
    chunks = [c for b in batches for c in b]
    assert sorted((c.record, c.start, c.end) for c in chunks) == [(0, 0, 200), (0, 200, 400), (0, 400, 481), (1, 0, 10), (3, 0, 199)]
    assert all(len(b) <= 2 and max(len(c.ids) for c in b) * len(b) <= 400 for b in batches)


def test_aggregate_sums_chunks_and_maps_entities_to_record_offsets():
    """Record 0 is cut in two chunks that land in different batches, its second chunk first."""
    texts = ["阿司匹林口服后行手术", "无"]
    tail = Chunk(0, 5, [1] * 5)  # "服后行手术": 行手术 = B-手术 I-手术 I-手术 at chunk offsets 2..5
    head = Chunk(0, 0, [1] * 5)  # "阿司匹林口": 阿司匹林 = B-药物 I-药物 I-药物 I-药物
    other = Chunk(1, 0, [1])
    marg_tail = np.full((1, 5, 5), 0.2, np.float32)
    b1 = _scores([2.0], [9.0], [0.5], [[0, 0, 3, 4, 4]], [[1.0, 1.0, 0.5, 0.7, 0.9]], marg_tail)
    b2 = _scores([1.25, 0.0], [4.0, 3.0], [0.25, 7.0], [[1, 2, 2, 2, 0], [0, 0, 0, 0, 0]],
                 [[0.8, 0.6, 0.6, 0.6, 1.0], [1.0, 0, 0, 0, 0]], np.full((2, 5, 5), 0.4, np.float32))
    out = aggregate(texts, [[tail], [head, other]], [b1, b2], SCHEME, with_lpred=True, return_marginals=True)
    r0, r1 = out
    assert (r0.l_min, r0.l_max, r0.l_pred, r0.n_chunks, r0.n_chars) == (3.25, 13.0, 0.75, 2, 10)
    assert r0.p_max == pytest.approx(np.exp(-3.25))
    assert [(e.start, e.end, e.label, e.text) for e in r0.entities] == [(0, 4, "药物", "阿司匹林"), (7, 10, "手术", "行手术")]
    assert r0.entities[0].score == pytest.approx((0.8 + 0.6 * 3) / 4)  # the mean marginal of the span's tags
    assert r0.entities[1].score == pytest.approx((0.5 + 0.7 + 0.9) / 3)
    assert r0.marginals.shape == (10, 5)
    assert np.all(r0.marginals[:5] == np.float32(0.4)) and np.all(r0.marginals[5:] == np.float32(0.2))  # text order
    assert (r1.l_min, r1.l_pred, r1.entities, r1.n_chars) == (0.0, 7.0, [], 1)
    assert r1.marginals.shape == (1, 5)


def test_the_peak_is_the_hardest_chunks_loss_per_character():
    """Two 100-character chunks: the second is the harder per character although both sum alike."""
    texts = ["甲" * 200, "乙" * 60 + "丙" * 10]
    c0, c1 = Chunk(0, 0, [1] * 100), Chunk(0, 100, [1] * 100)
    d0, d1 = Chunk(1, 0, [1] * 60), Chunk(1, 60, [1] * 10)  # a 10-character tail counts as PEAK_MIN_CHARS
    flat = [[0] * 100] * 2
    b1 = _scores([3.0, 5.0], [9.0, 9.0], [1.0, -2.0], flat, [[1.0] * 100] * 2)
    b2 = _scores([6.0, 4.0], [9.0, 9.0], [0.6, 4.0], [[0] * 60, [0] * 60], [[1.0] * 60, [1.0] * 60])
    r0, r1 = aggregate(texts, [[c0, c1], [d0, d1]], [b1, b2], SCHEME, with_lpred=True, return_marginals=False)
    assert r0.l_min == 8.0 and r0.l_min_peak == pytest.approx(5.0 / 100) and r0.l_pred_peak == pytest.approx(1.0 / 100)
    assert peak_total(r0.l_min_peak, r0.n_chars) == pytest.approx(10.0)  # above the sum: the hard half counts
    assert r1.l_min_peak == pytest.approx(max(6.0 / 60, 4.0 / PEAK_MIN_CHARS))
    assert r1.l_pred_peak == pytest.approx(4.0 / PEAK_MIN_CHARS)
    assert peak_total(None, 5) is None


def test_aggregate_without_the_loss_net_or_marginals():
    texts = ["无", ""]
    res = _scores([0.5], [1.0], None, [[0]], [[1.0]])
    out = aggregate(texts, [[Chunk(0, 0, [1])]], [res], SCHEME, with_lpred=False, return_marginals=False)
    assert out[0].l_pred is None and out[0].marginals is None and out[0].l_pred_peak is None
    assert (out[1].l_min, out[1].n_chunks, out[1].n_chars, out[1].entities, out[1].l_min_peak) == (0.0, 0, 0, [], 0.0)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_run_batches_keeps_batch_order_whatever_the_workers(workers):
    batches = [[Chunk(i, 0, [1] * (i + 1))] for i in range(5)]
    got = run_batches(batches, lambda cs: _scores([cs[0].record], [0], None, [[0]], [[1.0]]), workers=workers)
    assert [float(r.l_min[0]) for r in got] == [0.0, 1.0, 2.0, 3.0, 4.0]
