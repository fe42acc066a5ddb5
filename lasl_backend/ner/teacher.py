"""Mean Teacher (paper §3.3, Eq. 8-10): an EMA copy of the tagger and the consistency cost
between the student's and the teacher's emissions on unlabeled text."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

__all__ = ["ema_update", "make_teacher", "consistency_loss", "effective_alpha"]


def effective_alpha(alpha: float = 0.999, step: int | None = None) -> float:
    """EMA decay actually applied at ``step`` (0-based count of student updates so far).

    Without ``step`` it is ``alpha`` (Eq. 8 as written). With it, the Tarvainen & Valpola ramp
    ``min(1 - 1/(step + 1), alpha)``: with α = 0.999 a teacher started from a random init keeps
    ~1/e of that init for 1,000 steps, which is longer than a whole early active-learning round
    (1 % of the data is a handful of steps per epoch). The ramp makes the teacher the
    true average of the students seen so far until that average is longer than the EMA's window.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if step is None:
        return float(alpha)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return float(min(1.0 - 1.0 / (step + 1), alpha))


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, alpha: float = 0.999, step: int | None = None) -> float:
    """Eq. 8: θ' ← a·θ' + (1 − a)·θ for every parameter, with a = :func:`effective_alpha` (alpha, step).

    Buffers (e.g. normalisation statistics, step counters) are copied from the student, not averaged:
    they are not trained by gradient, and integer buffers cannot be averaged. Parameters are matched
    by name; the two modules must have the same structure. Returns the decay used.
    """
    a = effective_alpha(alpha, step)
    t_params = dict(teacher.named_parameters())
    s_params = dict(student.named_parameters())
    if t_params.keys() != s_params.keys():
        raise ValueError("teacher and student have different parameters")
    for name, tp in t_params.items():
        sp = s_params[name]
        if tp.shape != sp.shape:
            raise ValueError(f"parameter {name}: teacher {tuple(tp.shape)} vs student {tuple(sp.shape)}")
        tp.mul_(a).add_(sp.detach().to(tp.dtype), alpha=1.0 - a)
    t_bufs = dict(teacher.named_buffers())
    s_bufs = dict(student.named_buffers())
    if t_bufs.keys() != s_bufs.keys():
        raise ValueError("teacher and student have different buffers")
    for name, tb in t_bufs.items():
        tb.copy_(s_bufs[name])
    return a


def make_teacher(student: nn.Module) -> nn.Module:
    """A deep copy of ``student`` with ``requires_grad`` off: the teacher changes only by :func:`ema_update`.

    Its train/eval mode is the student's; keep it in train mode while training so that its dropout is
    the "different noise" of §3.3 (docs/method.md, R6), and call ``.eval()`` to serve or score with it.
    """
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def consistency_loss(
    student_emissions: Tensor, teacher_emissions: Tensor, mask: Tensor, reduction: str = "position"
) -> Tensor:
    """Consistency cost L_U of Eq. 9 (weighted by λ in Eq. 10): squared L2 distance between the
    student's and the teacher's emission vectors P[i, :] (the paper's "non-normalized transition
    probability" outputs), the teacher side detached.

    ``student_emissions``, ``teacher_emissions``: [B, T, K]; ``mask``: [B, T] bool, True on real
    characters. ``reduction``:
    - "position" (default): mean over valid characters of ‖P_s[i] − P_t[i]‖². Its scale does not depend
      on how text is chunked, so λ = 0.05 means the same at any chunk length.
    - "record": Eq. 9 literally, per record the sum over its characters, then the mean over records.
    Zero when both sides are equal; zero (with a graph) when no position is valid.
    """
    if student_emissions.shape != teacher_emissions.shape:
        raise ValueError(
            f"emission shapes differ: {tuple(student_emissions.shape)} vs {tuple(teacher_emissions.shape)}"
        )
    if mask.shape != student_emissions.shape[:2]:
        raise ValueError(f"mask must be [B, T] = {tuple(student_emissions.shape[:2])}, got {tuple(mask.shape)}")
    m = mask.bool().to(student_emissions.dtype)
    diff = student_emissions - teacher_emissions.detach().to(student_emissions.dtype)
    sq = diff.pow(2).sum(-1) * m  # [B, T]
    if reduction == "position":
        return sq.sum() / m.sum().clamp(min=1.0)
    if reduction == "record":
        return sq.sum(1).mean() if sq.shape[0] > 0 else sq.sum()
    raise ValueError(f"reduction must be 'position' or 'record', got {reduction!r}")
