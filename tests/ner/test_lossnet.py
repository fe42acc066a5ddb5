"""Ranking loss (Eq. 5), LPN and learning-loss net: hand-computed values, padding invariance, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lasl_backend.crf import crf_bounds
from lasl_backend.ner.encoders import CharBiLSTMEncoder
from lasl_backend.ner.lossnet import (
    LOSSNET_KINDS,
    LearningLossNet,
    LossPredictionNet,
    build_lossnet,
    lossnet_fits,
    make_lpn_optimizer,
    masked_max,
    masked_mean,
    ranking_loss,
)


# ---------------------------------------------------------------- ranking loss, Eq. 5


def test_ranking_loss_b2_correct_order_with_margin_is_zero():
    # pairs (0,1) and (1,0). target 3 > 1 → E(0,1)=+1: max(0, -(2-0.5)+1) = max(0,-0.5) = 0
    #                                    E(1,0)=-1: max(0, +(0.5-2)+1) = 0
    pred = torch.tensor([2.0, 0.5])
    assert ranking_loss(pred, torch.tensor([3.0, 1.0])).item() == pytest.approx(0.0)


def test_ranking_loss_b2_inside_margin_and_wrong_order():
    # pred (0.5, 0.2): both pairs cost -(0.5-0.2)+1 = 0.7 → mean 0.7, sum 1.4
    t = torch.tensor([3.0, 1.0])
    assert ranking_loss(torch.tensor([0.5, 0.2]), t).item() == pytest.approx(0.7)
    assert ranking_loss(torch.tensor([0.5, 0.2]), t, reduction="sum").item() == pytest.approx(1.4)
    # wrong order (0, 1): -(0-1)+1 = 2 for both pairs → mean 2
    assert ranking_loss(torch.tensor([0.0, 1.0]), t).item() == pytest.approx(2.0)


def test_ranking_loss_b3_odd_batch_ring():
    # pred (1, 0.5, 2), target (5, 2, 3), margin 1; pairs (0,1), (1,2), (2,0):
    # (0,1): 5>2, E=+1: -(1-0.5)+1 = 0.5
    # (1,2): 2>3 no, E=-1: (0.5-2)+1 = -0.5 → 0
    # (2,0): 3>5 no, E=-1: (2-1)+1 = 2
    # sum 2.5, mean 2.5/3
    pred = torch.tensor([1.0, 0.5, 2.0], requires_grad=True)
    target = torch.tensor([5.0, 2.0, 3.0], requires_grad=True)
    per_pair = ranking_loss(pred, target, reduction="none")
    assert per_pair.detach().tolist() == pytest.approx([0.5, 0.0, 2.0])
    loss = ranking_loss(pred, target)
    assert loss.item() == pytest.approx(2.5 / 3)
    loss.backward()
    # active pairs: (0,1) cost -(p0-p1)+1 → d/dp0 -1, d/dp1 +1; (2,0) cost (p2-p0)+1 → d/dp2 +1, d/dp0 -1
    # → (-2, 1, 1) / 3; the target gets no gradient (detached)
    assert pred.grad.tolist() == pytest.approx([-2 / 3, 1 / 3, 1 / 3])
    assert target.grad is None


def test_ranking_loss_margin_and_ties():
    # margin 0.25, pred (0.5, 0.2), target 3 > 1: both pairs -(0.3)+0.25 < 0 → 0
    assert ranking_loss(torch.tensor([0.5, 0.2]), torch.tensor([3.0, 1.0]), margin=0.25).item() == 0.0
    # tie counts as E=-1. pred (0.3, 0.1, 0), target (1, 1, 2):
    # (0,1): tie, E=-1: (0.3-0.1)+1 = 1.2;  (1,2): 1>2 no, E=-1: (0.1-0)+1 = 1.1;  (2,0): 2>1, E=+1: -(0-0.3)+1 = 1.3
    # (with E=+1 on ties the first pair would cost 0.8)
    per_pair = ranking_loss(torch.tensor([0.3, 0.1, 0.0]), torch.tensor([1.0, 1.0, 2.0]), reduction="none")
    assert per_pair.tolist() == pytest.approx([1.2, 1.1, 1.3])


def test_ranking_loss_b1_is_zero_with_grad():
    pred = torch.tensor([0.7], requires_grad=True)
    loss = ranking_loss(pred, torch.tensor([4.0]))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert pred.grad.tolist() == [0.0]


def test_ranking_loss_rejects_bad_input():
    with pytest.raises(ValueError):
        ranking_loss(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError):
        ranking_loss(torch.zeros(3), torch.zeros(3), reduction="max")


# ---------------------------------------------------------------- helpers


def test_reverse_within_length_by_hand_and_involution():
    """The reversal both Bi-LSTMs (tagger and LPN) use for their backward direction."""
    from lasl_backend.crf import reverse_within_length

    x = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 5.0, 0.0, 0.0], [6.0, 7.0, 8.0, 9.0]]).unsqueeze(-1)
    lengths = torch.tensor([3, 2, 4])
    out = reverse_within_length(x, lengths).squeeze(-1)
    assert out.tolist() == [[3.0, 2.0, 1.0, 0.0], [5.0, 4.0, 0.0, 0.0], [9.0, 8.0, 7.0, 6.0]]
    assert torch.equal(reverse_within_length(reverse_within_length(x, lengths), lengths), x)


def test_masked_pooling_ignores_padding():
    x = torch.tensor([[[1.0], [3.0], [100.0]], [[-2.0], [-100.0], [-100.0]]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert masked_mean(x, mask).squeeze(-1).tolist() == [2.0, -2.0]
    assert masked_max(x, mask).squeeze(-1).tolist() == [3.0, -2.0]
    empty = torch.zeros(1, 3, dtype=torch.bool)
    assert masked_mean(x[:1], empty).tolist() == [[0.0]] and masked_max(x[:1], empty).tolist() == [[0.0]]


# ---------------------------------------------------------------- LPN and learning-loss net


def _padded_pair(d: int, short: int = 5, long: int = 9, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(1, short, d, generator=g)
    b = torch.randn(1, long, d, generator=g)
    batch = torch.cat([torch.cat([a, 50.0 * torch.randn(1, long - short, d, generator=g)], 1), b], 0)  # garbage pad
    mask = torch.arange(long)[None, :] < torch.tensor([[short], [long]])
    return a, batch, mask


@pytest.mark.parametrize("pooling", ["mean", "max", "meanmax"])
@pytest.mark.parametrize("num_layers", [0, 1, 2])
def test_lpn_shape_and_padding_invariance(pooling, num_layers):
    torch.manual_seed(0)
    net = LossPredictionNet(feature_dim=6, hidden=4, pooling=pooling, num_layers=num_layers).eval()
    a, batch, mask = _padded_pair(6)
    bounds = torch.tensor([[3.0, 40.0], [0.5, 7.0]])
    out = net(batch, mask, bounds)
    assert out.shape == (2,)
    alone = net(a, torch.ones(1, a.shape[1], dtype=torch.bool), bounds[:1])
    assert alone.item() == pytest.approx(out[0].item(), abs=1e-5)


def test_lpn_layer_directions_read_within_length():
    # Forward half [:4] at step i has read chars 0..i; backward half [4:] has read chars i..end.
    torch.manual_seed(1)
    net = LossPredictionNet(feature_dim=3, hidden=4, use_bounds=False, num_layers=1).eval()
    x = torch.randn(1, 6, 3)
    lengths = torch.ones(1, 6, dtype=torch.bool)  # the layer takes the [B, T] mask
    layer = net.layers[0]
    h = layer(x, lengths)
    x2 = x.clone()
    x2[0, 0] += 1.0  # change the first char
    h2 = layer(x2, lengths)
    assert not torch.allclose(h[0, -1, :4], h2[0, -1, :4])
    assert torch.equal(h[0, 1:, 4:], h2[0, 1:, 4:])  # backward states after 0 have not read char 0
    assert not torch.allclose(h[0, 0, 4:], h2[0, 0, 4:])
    x3 = x.clone()
    x3[0, -1] += 1.0  # change the last char
    h3 = layer(x3, lengths)
    assert torch.equal(h[0, :-1, :4], h3[0, :-1, :4])  # forward states are causal
    assert not torch.allclose(h[0, 0, 4:], h3[0, 0, 4:])  # backward state at 0 has read the last char


def test_lpn_shared_structure_is_pooled_features_then_fc_by_hand():
    # num_layers=0 is the paper's "shared encoder" (Table 6): the tagger's features, pooled, straight into FC
    torch.manual_seed(0)
    net = LossPredictionNet(feature_dim=3, hidden=5, num_layers=0).eval()
    assert len(net.layers) == 0 and net.fc.in_features == 3 + 2
    x = torch.tensor([[[1.0, 2.0, 3.0], [3.0, 4.0, 5.0], [99.0, 99.0, 99.0]]])  # last step is padding
    mask = torch.tensor([[True, True, False]])
    with torch.no_grad():
        net.fc.weight.copy_(torch.tensor([[1.0, 10.0, 100.0, 0.0, 1.0]]))
        net.fc.bias.fill_(0.25)
    out = net(x, mask, torch.tensor([[5.0, np.e - 1]]))
    # mean over the two valid steps = (2, 3, 4) → 2 + 30 + 400, plus log1p(L_max) = 1, plus the bias
    assert out.item() == pytest.approx(433.25, abs=1e-4)
    with pytest.raises(ValueError):
        LossPredictionNet(feature_dim=3, num_layers=-1)


def test_lpn_bounds_are_required_and_log_scaled():
    torch.manual_seed(0)
    net = LossPredictionNet(feature_dim=4, hidden=3).eval()
    x = torch.randn(2, 5, 4)
    mask = torch.ones(2, 5, dtype=torch.bool)
    with pytest.raises(ValueError):
        net(x, mask, None)
    # With fc weights on the two bound inputs set to 1 and the rest 0, L_p = log1p(L_min) + log1p(L_max) + bias
    with torch.no_grad():
        net.fc.weight.zero_()
        net.fc.weight[0, -2:] = 1.0
        net.fc.bias.fill_(0.5)
    bounds = torch.tensor([[0.0, np.e - 1], [np.e**2 - 1, -3.0]])  # negative bound is clamped to 0
    out = net(x, mask, bounds)
    # record 0: log1p(0) + log1p(e-1) + 0.5 = 0 + 1 + 0.5; record 1: 2 + log1p(0) + 0.5 = 2.5
    assert out.tolist() == pytest.approx([1.5, 2.5], abs=1e-5)


def test_learning_loss_net_shape_and_padding_invariance():
    torch.manual_seed(0)
    net = LearningLossNet([6, 3], hidden=8).eval()
    a, batch, mask = _padded_pair(6, seed=1)
    a2, batch2, _ = _padded_pair(3, seed=2)
    out = net([batch, batch2], mask)
    assert out.shape == (2,)
    alone = net([a, a2], torch.ones(1, a.shape[1], dtype=torch.bool))
    assert alone.item() == pytest.approx(out[0].item(), abs=1e-6)
    with pytest.raises(ValueError):
        net([batch], mask)


def test_learning_loss_net_is_gap_then_fc_by_hand():
    # one map, D=2, hidden=1: GAP of [[1,3],[3,5]] over 2 valid steps = (2, 4); FC(w=(1,1), b=-1) → 5, ReLU → 5;
    # final FC(w=2, b=0.5) → 10.5. The padded third step (100, 100) is ignored.
    net = LearningLossNet([2], hidden=1)
    with torch.no_grad():
        net.branches[0].weight.copy_(torch.tensor([[1.0, 1.0]]))
        net.branches[0].bias.fill_(-1.0)
        net.fc.weight.fill_(2.0)
        net.fc.bias.fill_(0.5)
    x = torch.tensor([[[1.0, 3.0], [3.0, 5.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert net([x], mask).item() == pytest.approx(10.5)


def _encoder_batch(seed: int = 0):
    """A small char encoder's layers on a padded batch, and the CRF bounds of random emissions over it."""
    torch.manual_seed(seed)
    enc = CharBiLSTMEncoder(20, emb_dim=6, hidden=4).eval()
    ids = torch.randint(2, 20, (3, 7))
    mask = torch.arange(7)[None, :] < torch.tensor([[7], [4], [1]])
    layers = enc(ids, mask)
    em = torch.randn(3, 7, 5)
    bounds = crf_bounds(em, mask, torch.zeros(5), torch.zeros(5), torch.randn(5, 5), with_marginals=False)
    return enc, layers, mask, bounds


@pytest.mark.parametrize("kind", LOSSNET_KINDS)
def test_every_registered_loss_net_predicts_through_the_one_interface(kind):
    """``predict_loss(layers, mask, bounds)`` is what training and scoring call: for the LPN it is the net on
    the last layer and [L_min, L_max]; for the learning-loss net the net on every layer, bounds unused."""
    enc, layers, mask, bounds = _encoder_batch()
    net = build_lossnet(kind, enc, lpn_layers=1).eval()
    assert net.kind == kind
    out = net.predict_loss(layers, mask, bounds)
    assert out.shape == (3,)
    if kind == "lpn":
        assert net.needs_bounds and net.lpn_layers == 1
        pair = torch.stack([bounds.l_min, bounds.l_max], 1).float()
        assert torch.equal(out, net(layers[-1], mask, pair))
        with pytest.raises(ValueError, match="bounds"):
            net.predict_loss(layers, mask, None)
    else:
        assert not net.needs_bounds and net.lpn_layers is None
        assert torch.equal(out, net(layers, mask))
        assert torch.equal(out, net.predict_loss(layers, mask, None))


def test_build_lossnet_sizes_the_lpn_and_refuses_an_unknown_kind():
    enc, *_ = _encoder_batch()
    assert build_lossnet(None, enc) is None
    lpn = build_lossnet("lpn", enc)
    assert isinstance(lpn, LossPredictionNet) and lpn.num_layers == 2 and lpn.feature_dim == enc.out_dim
    shared = build_lossnet("lpn", enc, lpn_layers=0)
    assert len(shared.layers) == 0  # type: ignore[union-attr]
    ll = build_lossnet("learning_loss", enc, lpn_layers=0)
    assert isinstance(ll, LearningLossNet) and ll.feature_dims == enc.layer_dims
    with pytest.raises(ValueError, match="unknown loss net 'svm'"):
        build_lossnet("svm", enc)


def test_a_loss_net_fits_a_setting_of_its_kind_and_size():
    """Fine-tuning keeps the loss net when it fits the run's setting and builds a new one when not."""
    enc, *_ = _encoder_batch()
    lpn2, ll = build_lossnet("lpn", enc, 2), build_lossnet("learning_loss", enc)
    assert lossnet_fits(None, None, 2) and lossnet_fits(lpn2, "lpn", 2) and lossnet_fits(ll, "learning_loss", 0)
    assert not lossnet_fits(lpn2, "lpn", 0)  # resized
    assert not lossnet_fits(lpn2, "learning_loss", 2) and not lossnet_fits(ll, "lpn", 2)
    assert not lossnet_fits(None, "lpn", 2) and not lossnet_fits(lpn2, None, 2)


def test_make_lpn_optimizer_table2():
    opt = make_lpn_optimizer(torch.nn.Linear(2, 1).parameters())
    g = opt.param_groups[0]
    assert isinstance(opt, torch.optim.SGD)
    assert (g["lr"], g["momentum"], g["weight_decay"]) == (0.01, 0.9, 5e-4)


# ---------------------------------------------------------------- learning to rank


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def _synthetic(n: int, g: torch.Generator, signal: float, d: int = 8, t: int = 12):
    """Records of 4..12 steps; channel 0 of every valid step carries signal·(2z-1), z the hidden loss
    level; true loss = 10 z. Bounds: L_min a noisy multiple of the true loss, L_max above it."""
    lengths = torch.randint(4, t + 1, (n,), generator=g)
    z = torch.rand(n, generator=g)
    x = 0.5 * torch.randn(n, t, d, generator=g)
    x[:, :, 0] += signal * (2 * z - 1)[:, None]
    mask = torch.arange(t)[None, :] < lengths[:, None]
    x = x * mask[..., None]
    l_min = 10 * z * torch.exp(0.3 * torch.randn(n, generator=g))
    bounds = torch.stack([l_min, 3 * l_min + 5], 1)
    return x, mask, 10 * z, bounds


def _train_and_eval(use_bounds: bool, signal: float, seed: int, epochs: int = 6, num_layers: int = 2) -> tuple[float, float]:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    xtr, mtr, ytr, btr = _synthetic(128, g, signal)
    xte, mte, yte, bte = _synthetic(64, g, signal)
    net = LossPredictionNet(feature_dim=8, hidden=16, use_bounds=use_bounds, num_layers=num_layers)
    opt = make_lpn_optimizer(net.parameters())
    net.eval()
    with torch.no_grad():
        before = _spearman(net(xte, mte, bte).numpy(), yte.numpy())
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(128, generator=g)
        for i in range(0, 128, 16):
            idx = perm[i : i + 16]
            loss = ranking_loss(net(xtr[idx], mtr[idx], btr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        after = _spearman(net(xte, mte, bte).numpy(), yte.numpy())
    return before, after


def test_lpn_learns_to_rank_from_features():
    # no bounds: the loss is only in the features, so the Bi-LSTM path must learn it
    before, after = _train_and_eval(use_bounds=False, signal=1.0, seed=2)
    assert abs(before) < 0.5  # untrained: no ranking (guards against a test that passes by luck)
    assert after > 0.8


def test_shared_structure_lpn_learns_to_rank_from_features():
    # num_layers=0 has no encoder of its own: the pooled features must carry the loss, and FC learns it
    # (a random linear map over one pooled channel often ranks by chance: seed 0's does not, -0.13)
    before, after = _train_and_eval(use_bounds=False, signal=1.0, seed=0, num_layers=0)
    assert abs(before) < 0.5
    assert after > 0.8


def test_lpn_learns_to_rank_from_bounds():
    # features are pure noise: only [L_min, L_max] carry the loss, so the bound inputs must be used
    before, after = _train_and_eval(use_bounds=True, signal=0.0, seed=2)
    assert before < 0.5
    assert after > 0.8
