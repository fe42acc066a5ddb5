"""Mean Teacher: EMA step (Eq. 8) on hand numbers, the ramp, and the consistency cost (Eq. 9)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lasl_backend.ner.teacher import consistency_loss, effective_alpha, ema_update, make_teacher


class _One(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([value]))
        self.register_buffer("count", torch.tensor(0, dtype=torch.long))


def test_ema_step_by_hand():
    teacher, student = _One(1.0), _One(3.0)
    student.count.fill_(7)
    used = ema_update(teacher, student, alpha=0.9)
    # 0.9 * 1 + 0.1 * 3 = 1.2
    assert used == pytest.approx(0.9)
    assert teacher.w.item() == pytest.approx(1.2)
    assert teacher.count.item() == 7  # buffers are copied, not averaged
    assert student.w.item() == 3.0  # the student is untouched
    # second step: 0.9 * 1.2 + 0.1 * 3 = 1.38
    ema_update(teacher, student, alpha=0.9)
    assert teacher.w.item() == pytest.approx(1.38)


def test_ema_ramp_by_hand():
    # alpha_eff = min(1 - 1/(step+1), alpha): step 0 → 0 (copy), step 1 → 0.5, step 3 → 0.75, step 999 → 0.999
    assert effective_alpha(0.999, 0) == 0.0
    assert effective_alpha(0.999, 1) == pytest.approx(0.5)
    assert effective_alpha(0.999, 3) == pytest.approx(0.75)
    assert effective_alpha(0.999, 5000) == pytest.approx(0.999)
    assert effective_alpha(0.9) == 0.9
    # with the ramp the teacher is the running mean of the students: students 3, 5, 10 → 3, 4, 6
    teacher = _One(-100.0)
    means = []
    for step, value in enumerate([3.0, 5.0, 10.0]):
        ema_update(teacher, _One(value), alpha=0.999, step=step)
        means.append(teacher.w.item())
    assert means == pytest.approx([3.0, 4.0, 6.0])


def test_ema_rejects_bad_arguments():
    with pytest.raises(ValueError):
        ema_update(_One(0.0), nn.Linear(1, 1))
    with pytest.raises(ValueError):
        effective_alpha(1.5)
    with pytest.raises(ValueError):
        effective_alpha(0.9, -1)


def test_make_teacher_is_frozen_independent_copy():
    student = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.5))
    teacher = make_teacher(student)
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(p.requires_grad for p in student.parameters())
    with torch.no_grad():
        student[0].weight.add_(1.0)
    assert not torch.equal(student[0].weight, teacher[0].weight)


def test_consistency_zero_when_equal_in_eval_mode():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.3)).eval()
    teacher = make_teacher(student).eval()
    x = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert consistency_loss(student(x), teacher(x), mask).item() == 0.0


def test_consistency_by_hand_and_masking():
    # B=1, T=3, K=2; step 2 is padding. Diffs: step 0 (1, 2) → 1 + 4 = 5; step 1 (0, -3) → 9; mean = 7
    s = torch.tensor([[[1.0, 2.0], [0.0, 0.0], [50.0, 50.0]]], requires_grad=True)
    t = torch.tensor([[[0.0, 0.0], [0.0, 3.0], [0.0, 0.0]]], requires_grad=True)
    mask = torch.tensor([[True, True, False]])
    loss = consistency_loss(s, t, mask)
    assert loss.item() == pytest.approx(7.0)
    # "record" reduction = Eq. 9 literally: per-record sum (5 + 9 = 14), mean over the 1 record
    assert consistency_loss(s, t, mask, reduction="record").item() == pytest.approx(14.0)
    loss.backward()
    # d/ds of mean over 2 positions of Σ_k (s - t)² = 2 (s - t) / 2 = (s - t) on valid steps, 0 on padding
    assert torch.allclose(s.grad, torch.tensor([[[1.0, 2.0], [0.0, -3.0], [0.0, 0.0]]]))
    assert t.grad is None  # teacher side detached


def test_consistency_positive_when_models_differ():
    torch.manual_seed(0)
    student = nn.Linear(4, 3)
    teacher = make_teacher(student)
    with torch.no_grad():
        teacher.bias.add_(0.1)  # every output shifts by 0.1 → ‖diff‖² = 3 · 0.01 = 0.03 at every position
    x = torch.randn(2, 4, 4)
    mask = torch.ones(2, 4, dtype=torch.bool)
    assert consistency_loss(student(x), teacher(x), mask).item() == pytest.approx(0.03, rel=1e-4)


def test_consistency_empty_mask_and_shape_errors():
    s = torch.zeros(1, 2, 3, requires_grad=True)
    assert consistency_loss(s, torch.ones(1, 2, 3), torch.zeros(1, 2, dtype=torch.bool)).item() == 0.0
    with pytest.raises(ValueError):
        consistency_loss(s, torch.zeros(1, 3, 3), torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError):
        consistency_loss(s, torch.zeros(1, 2, 3), torch.ones(1, 3, dtype=torch.bool))
