"""The CRF kernel against brute-force enumeration of every tag sequence, and against pytorch-crf."""

from __future__ import annotations

import itertools
import math
import shutil

import pytest
import torch
from torchcrf import CRF

from lasl_backend import crf

# every kernel test runs on both kernels; the C one is skipped only where it could not be built
KERNELS = [
    pytest.param("c", marks=pytest.mark.skipif(crf.kernel_name() != "c", reason=crf.kernel_name())),
    "numpy",
]


def _brute(em, start, end, trans, L):
    K = em.shape[-1]
    scores = {}
    for y in itertools.product(range(K), repeat=L):
        s = float(start[y[0]] + end[y[-1]])
        s += sum(float(em[i, y[i]]) for i in range(L))
        s += sum(float(trans[y[i], y[i + 1]]) for i in range(L - 1))
        scores[y] = s
    log_z = math.log(sum(math.exp(v) for v in scores.values()))
    best = max(scores, key=scores.get)
    worst = min(scores, key=scores.get)
    marg = [[sum(math.exp(v - log_z) for y, v in scores.items() if y[i] == k) for k in range(K)] for i in range(L)]
    return log_z, best, scores[best], worst, scores[worst], marg


def _case(seed, B=4, T=5, K=3, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    em = torch.randn(B, T, K, generator=g, dtype=torch.float64) * scale
    start = torch.randn(K, generator=g, dtype=torch.float64)
    end = torch.randn(K, generator=g, dtype=torch.float64)
    trans = torch.randn(K, K, generator=g, dtype=torch.float64) * scale
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
    return em, start, end, trans, mask, lengths


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bounds_match_brute_force(seed, kernel):
    em, start, end, trans, mask, lengths = _case(seed)
    r = crf.crf_bounds(em, mask, start, end, trans, kernel=kernel)
    assert r.log_z.dtype == torch.float64
    for b in range(em.shape[0]):
        L = int(lengths[b])
        log_z, best, best_s, worst, worst_s, marg = _brute(em[b], start, end, trans, L)
        assert r.log_z[b].item() == pytest.approx(log_z, abs=1e-10)
        assert tuple(r.best_path[b, :L].tolist()) == best
        assert tuple(r.worst_path[b, :L].tolist()) == worst
        assert r.best_score[b].item() == pytest.approx(best_s, abs=1e-10)
        assert r.worst_score[b].item() == pytest.approx(worst_s, abs=1e-10)
        assert r.l_min[b].item() == pytest.approx(log_z - best_s, abs=1e-10)
        assert r.l_max[b].item() == pytest.approx(log_z - worst_s, abs=1e-10)
        assert r.p_max[b].item() == pytest.approx(math.exp(best_s - log_z), rel=1e-9)
        assert torch.allclose(r.marginals[b, :L], torch.tensor(marg, dtype=torch.float64), atol=1e-10)
        assert torch.all(r.marginals[b, L:] == 0)
        assert torch.all(r.best_path[b, L:] == 0)


@pytest.mark.parametrize("kernel", KERNELS)
def test_bounds_order_and_marginals_sum_to_one(kernel):
    em, start, end, trans, mask, lengths = _case(7, B=6, T=9, K=4)
    r = crf.crf_bounds(em, mask, start, end, trans, kernel=kernel)
    gold = torch.randint(0, 4, mask.shape)
    true_loss = crf.nll(em, gold, mask, start, end, trans)
    assert torch.all(r.l_min <= true_loss + 1e-9) and torch.all(true_loss <= r.l_max + 1e-9)
    sums = r.marginals.sum(-1)
    assert torch.allclose(sums[mask], torch.ones(int(mask.sum()), dtype=torch.float64))


def test_sequence_score_and_partition_match_brute_force():
    em, start, end, trans, mask, lengths = _case(3)
    tags = torch.randint(0, 3, mask.shape)
    s = crf.sequence_score(em, tags, mask, start, end, trans)
    z = crf.log_partition(em, mask, start, end, trans)
    for b in range(em.shape[0]):
        L = int(lengths[b])
        y = tuple(tags[b, :L].tolist())
        log_z, *_ = _brute(em[b], start, end, trans, L)
        expect = float(start[y[0]] + end[y[-1]]) + sum(float(em[b, i, y[i]]) for i in range(L)) + sum(float(trans[y[i], y[i + 1]]) for i in range(L - 1))
        assert s[b].item() == pytest.approx(expect, abs=1e-10)
        assert z[b].item() == pytest.approx(log_z, abs=1e-10)


def test_training_loss_agrees_with_pytorch_crf_and_gradients():
    torch.manual_seed(0)
    K = 5
    layer = CRF(K, batch_first=True)
    em = torch.randn(3, 7, K, requires_grad=True)
    tags = torch.randint(0, K, (3, 7))
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] + [0] * 6], dtype=torch.bool)
    ours = crf.nll(em, tags, mask, layer.start_transitions, layer.end_transitions, layer.transitions)
    ref = -layer(em, tags, mask=mask, reduction="none")
    assert torch.allclose(ours, ref, atol=1e-5)
    g1 = torch.autograd.grad(ours.sum(), em)[0]
    g2 = torch.autograd.grad(ref.sum(), em)[0]
    assert torch.allclose(g1, g2, atol=1e-5)


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_matches_pytorch_crf_decode(kernel):
    torch.manual_seed(1)
    layer = CRF(6, batch_first=True)
    em = torch.randn(5, 30, 6) * 3
    mask = torch.arange(30).unsqueeze(0) < torch.tensor([30, 12, 1, 29, 17]).unsqueeze(1)
    r = crf.crf_bounds(em, mask, layer.start_transitions, layer.end_transitions, layer.transitions, with_marginals=False, kernel=kernel)
    ref = layer.decode(em, mask=mask)
    for b, path in enumerate(ref):
        assert r.best_path[b, : len(path)].tolist() == path
    assert r.marginals is None


@pytest.mark.parametrize("kernel", KERNELS)
def test_float64_is_stable_on_long_sequences(kernel):
    """A 1,700-character record: float32 L_min drifts, float64 does not (why the kernel is float64)."""
    g = torch.Generator().manual_seed(0)
    em = (torch.randn(1, 1700, 13, generator=g, dtype=torch.float64) * 4).float()  # a tagger's float32 output
    start, end = torch.zeros(13), torch.zeros(13)
    trans = torch.randn(13, 13, generator=g, dtype=torch.float64).float()
    mask = torch.ones(1, 1700, dtype=torch.bool)
    # reference: the forward algorithm in float64 on the same float32 inputs, minus the brute-free best score
    best = crf.crf_bounds(em, mask, start, end, trans).best_score
    ref = crf.log_partition(em.double(), mask, start.double(), end.double(), trans.double()) - best
    r64 = crf.crf_bounds(em, mask, start, end, trans, kernel=kernel)
    assert r64.l_min.item() == pytest.approx(ref.item(), abs=1e-9)
    r32 = crf.crf_bounds(em, mask, start, end, trans, dtype=torch.float32)
    assert abs(r32.l_min.item() - ref.item()) > 1e-5


def test_c_kernel_is_built_where_a_compiler_is():
    """setup.py builds the extension as optional: a machine with a C compiler must not fall back silently."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler on this machine: the numpy kernel is the expected one")
    assert crf.kernel_name() == "c"


@pytest.mark.skipif(crf.kernel_name() != "c", reason=crf.kernel_name())
@pytest.mark.parametrize("seed", range(40))
def test_c_kernel_equals_numpy_kernel(seed):
    """Random batches, 1 to 13 tags, lengths from 1, large emissions: the same paths and Viterbi scores bit for
    bit (same order of additions, ties to the lowest tag), log Z and marginals to rounding."""
    g = torch.Generator().manual_seed(seed)
    B, T, K = (int(torch.randint(lo, hi, (1,), generator=g)) for lo, hi in ((1, 9), (1, 80), (1, 14)))
    em = torch.randn(B, T, K, generator=g) * float(torch.rand(1, generator=g) * 20)
    if seed % 5 == 0:
        em = em.round()  # integer scores: many exact ties between paths
    start, end = torch.randn(K, generator=g), torch.randn(K, generator=g)
    trans = (torch.randn(K, K, generator=g) * 3).round() if seed % 5 == 0 else torch.randn(K, K, generator=g) * 3
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
    a = crf.crf_bounds(em, mask, start, end, trans, kernel="c")
    b = crf.crf_bounds(em, mask, start, end, trans, kernel="numpy")
    for name in ("best_path", "worst_path", "best_score", "worst_score"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert torch.allclose(a.log_z, b.log_z, rtol=0, atol=1e-9 * float(b.log_z.abs().max() + 1))
    assert torch.allclose(a.marginals, b.marginals, rtol=0, atol=1e-10)


def test_kernel_choice_is_checked():
    em, mask = torch.zeros(1, 2, 3), torch.ones(1, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="kernel must be one of"):
        crf.crf_bounds(em, mask, torch.zeros(3), torch.zeros(3), torch.zeros(3, 3), kernel="fortran")
    with pytest.raises(RuntimeError, match="float64"):
        crf.crf_bounds(em, mask, torch.zeros(3), torch.zeros(3), torch.zeros(3, 3), kernel="c", dtype=torch.float32)


def test_rejects_bad_masks():
    em = torch.zeros(2, 3, 4)
    with pytest.raises(TypeError):
        crf.crf_bounds(em, torch.ones(2, 3), torch.zeros(4), torch.zeros(4), torch.zeros(4, 4))
    with pytest.raises(ValueError):
        crf.crf_bounds(em, torch.tensor([[True] * 3, [False] * 3]), torch.zeros(4), torch.zeros(4), torch.zeros(4, 4))


def test_reverse_within_length():
    x = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]])
    out = crf.reverse_within_length(x, torch.tensor([4, 2]))
    assert out.tolist() == [[4, 3, 2, 1], [6, 5, 0, 0]]


def test_reverse_within_length_moves_whole_feature_rows_and_keeps_gradients():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 2, 4, generator=g, requires_grad=True)  # [B, T, ...] with two feature dims
    lengths = torch.tensor([5, 3, 1])
    out = crf.reverse_within_length(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        for t in range(5):
            src = n - 1 - t if t < n else t  # reversed inside the length, padding in place
            assert torch.equal(out[b, t], x[b, src])
    out.sum().backward()  # every input row lands exactly once
    assert torch.equal(x.grad, torch.ones_like(x))
