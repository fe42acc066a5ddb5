"""Training speed for ``lasl bench``: characters/s of a plain training step, and the cost of one LASL
simulator round at 30% labeled in its three parts (fine-tuning, scoring the pool, the test evaluation)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..data import Record
from ..ner import DEFAULT_LPN_LAYERS, KnowledgeConfig, NerModel, TrainConfig, train_lasl
from ..ner.batching import collate, length_batches, make_chunks
from .synthetic import LABELS
from .torch_timing import sync, torch_threads

__all__ = ["bench_lasl_round", "bench_training"]


def bench_training(records: Sequence[Record], steps: int, device: torch.device = torch.device("cpu"), threads: int = 2,
                   knowledge: KnowledgeConfig | None = None) -> dict[str, Any]:
    """``steps`` steps of forward, CRF loss, backward and Adam on batches of 16 chunks of 200 characters, with
    ``threads`` torch threads, for a model built with ``knowledge`` (none: the plain model)."""
    model = NerModel.create(list(LABELS), texts=[r.text for r in records], knowledge=knowledge).to(device)
    entities = [[e for e in r.entities if e.label in LABELS] for r in records]
    chunks = make_chunks([r.text for r in records], model.encode, 200, entities, model.scheme)
    batches = length_batches(chunks, max_batch=16, rng=np.random.default_rng(0))
    tagger = model.student
    tagger.train()
    opt = torch.optim.Adam(tagger.parameters(), lr=2e-3)
    chars = 0
    with torch_threads(threads):
        t = time.perf_counter()
        for i in range(steps):
            ids, mask, tags = collate([chunks[j] for j in batches[i % len(batches)]], device)
            em, _ = tagger(ids, mask)
            loss = tagger.nll(em, tags, mask).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            chars += int(mask.sum())
        sync(device)
        dt = time.perf_counter() - t
    return {"steps": steps, "batch": 16, "chars": chars, "seconds": dt, "chars_per_s": chars / dt, "step_ms": 1000 * dt / steps}


def _fine_tune(lab: list[Record], pool: list[str], labels: list[str], lpn_thread: bool, max_steps: int | None,
               device: str, lpn_layers: int, mean_teacher: bool = True) -> tuple[NerModel, float, int]:
    """(model, seconds, steps) of fine-tuning as the simulator's rounds do it: 2 epochs, at least 100 steps,
    LPN, and Mean Teacher unless told otherwise."""
    cfg = TrainConfig(max_epochs=2, min_steps=100, max_steps=max_steps, dev_fraction=0.0, seed=0, mean_teacher=mean_teacher,
                      lossnet="lpn", patience=10**6, lpn_thread=lpn_thread, device=device, lpn_layers=lpn_layers)
    t = time.perf_counter()
    res = train_lasl(lab, pool, labels=labels, config=cfg)
    return res.model, time.perf_counter() - t, res.steps


def bench_lasl_round(records: Sequence[Record], test: Sequence[Record], threads: int, quick: bool, device: str = "cpu",
                     lpn_layers: int = DEFAULT_LPN_LAYERS) -> dict[str, Any]:
    """One simulator round at 30% labeled (300 labeled + 700 unlabeled records), timed in its three parts,
    on one torch thread as a simulator run has. With ``threads`` ≥ 2 the loss net's backward runs on a second
    thread (the simulator's ``--threads 2``), and the same run's first steps are also timed on one thread,
    and without Mean Teacher (``LASL_MEAN_TEACHER=0``)."""
    order = np.random.default_rng(0).permutation(len(records))
    n_lab = 30 if quick else 300
    lab = [records[i] for i in order[:n_lab]]
    pool = [records[i].text for i in order[n_lab:]]
    labels = sorted({e.label for r in records for e in r.entities} | set(LABELS))
    out: dict[str, Any] = {"labeled": len(lab), "unlabeled": len(pool), "test": len(test), "threads": threads}
    with torch_threads(1):
        model, train_s, steps = _fine_tune(lab, pool, labels, threads >= 2, 10 if quick else None, device, lpn_layers)
        out.update(train_s=train_s, steps=steps, step_s=train_s / max(steps, 1))
        if threads >= 2:  # the same run's first steps on one thread, for the speed-up
            _, t1, s1 = _fine_tune(lab, pool, labels, False, 5 if quick else 30, device, lpn_layers)
            out["one_thread_step_s"] = t1 / max(s1, 1)
            out["lpn_thread_speedup"] = out["one_thread_step_s"] / out["step_s"]
        _, t0, s0 = _fine_tune(lab, pool, labels, threads >= 2, 5 if quick else 30, device, lpn_layers, mean_teacher=False)
        out["step_s_without_mean_teacher"] = t0 / max(s0, 1)  # what a step costs with LASL_MEAN_TEACHER=0
        t = time.perf_counter()
        model.predict(pool, workers=threads)
        out["score_pool_s"] = time.perf_counter() - t
        t = time.perf_counter()
        model.predict([r.text for r in test], with_lossnet=False, workers=threads)
        out["test_eval_s"] = time.perf_counter() - t
    out["round_s"] = out["train_s"] + out["score_pool_s"] + out["test_eval_s"]
    return out
