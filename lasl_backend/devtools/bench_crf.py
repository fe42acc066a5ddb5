"""The fused float64 CRF kernel against pytorch-crf for ``lasl bench``: the same outputs (log Z, best and
worst path, marginals) on the same emissions, and against the numpy kernel.

pytorch-crf gives them as its normaliser, its decode for the best path, its decode on negated parameters
for the worst path, and marginals as the gradient of its normaliser.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchcrf import CRF

from .. import crf as crfmod
from ..ner import NerModel
from ..ner.batching import collate, length_batches, make_chunks
from .measure import best_seconds
from .torch_timing import torch_threads

__all__ = ["bench_crf_kernel"]

Emissions = list[tuple[torch.Tensor, torch.Tensor]]


def _emissions(model: NerModel, texts: Sequence[str]) -> tuple[int, Emissions]:
    """(chunks, the served tagger's float64 emissions and masks per batch, on the CPU)."""
    chunks = make_chunks(list(texts), model.encode, model.max_len)
    batches = [collate([chunks[i] for i in b], model.device) for b in length_batches(chunks, max_batch=64, max_chars=12800)]
    with torch.no_grad():  # both CRFs run on the CPU
        return len(chunks), [(model.served(ids, mask)[0].double().cpu(), mask.cpu()) for ids, mask, _ in batches]


def _pytorch_crfs(model: NerModel) -> tuple[CRF, CRF]:
    """pytorch-crf with the tagger's transitions, and with them negated (its decode then finds the worst path)."""
    k = model.scheme.num_tags
    ref, neg = CRF(k, batch_first=True).double(), CRF(k, batch_first=True).double()
    with torch.no_grad():
        for name in ("start_transitions", "end_transitions", "transitions"):
            getattr(ref, name).copy_(getattr(model.served.crf, name))
            getattr(neg, name).copy_(-getattr(model.served.crf, name))
    return ref, neg


def bench_crf_kernel(model: NerModel, texts: Sequence[str], reps: int) -> dict[str, Any]:
    """Best-of-``reps`` seconds of each side over the same batches, all on one torch thread: on a busy
    machine a torch OpenMP pool spinning against other processes would make pytorch-crf look far slower."""
    n_chunks, inputs = _emissions(model, texts)
    ref, neg = _pytorch_crfs(model)
    params = (ref.start_transitions, ref.end_transitions, ref.transitions)

    def ours(kernel: str = "auto") -> None:
        for em, mask in inputs:
            crfmod.crf_bounds(em, mask, *params, with_marginals=True, kernel=kernel)

    def theirs() -> None:
        for em, mask in inputs:
            e = em.detach().requires_grad_(True)
            log_z = ref._compute_normalizer(e.transpose(0, 1), mask.transpose(0, 1))
            torch.autograd.grad(log_z.sum(), e)  # marginals = d log Z / d emissions
            with torch.no_grad():
                ref.decode(em, mask=mask)
                neg.decode(-em, mask=mask)

    _check_agreement(inputs[0], ref, params)
    with torch_threads(1):
        t_ours, t_ref = best_seconds(ours, reps), best_seconds(theirs, reps)
        t_numpy = best_seconds(lambda: ours("numpy"), reps)
    return {
        "chunks": n_chunks, "threads": 1, "kernel": crfmod.kernel_name(), "ours_s": t_ours, "numpy_kernel_s": t_numpy,
        "pytorch_crf_s": t_ref, "speedup_vs_pytorch_crf": t_ref / t_ours, "speedup_vs_numpy_kernel": t_numpy / t_ours,
    }


def _check_agreement(batch: tuple[torch.Tensor, torch.Tensor], ref: CRF, params: tuple[torch.Tensor, ...]) -> None:
    """The kernel and pytorch-crf agree on log Z (as the tests check too): a speed-up of a wrong answer is none."""
    em, mask = batch
    r = crfmod.crf_bounds(em, mask, *params)
    with torch.no_grad():
        lz = ref._compute_normalizer(em.transpose(0, 1), mask.transpose(0, 1))
    if not torch.allclose(r.log_z, lz, atol=1e-8):
        raise AssertionError("kernel and pytorch-crf disagree on log Z")
