"""Scoring speed for ``lasl bench``: the active-learning scoring pass over a pool against the machine's
matmul roofline, one record's latency as /predict computes it, and both for each loss-net size."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from ..ner import NerModel
from .measure import logger, percentiles
from .payloads import near_400
from .synthetic import LABELS
from .torch_timing import sync, torch_threads

__all__ = ["bench_lpn_sizes", "bench_one_record", "bench_scoring", "bilstm_flops_per_char", "matmul_gflops", "roofline_numbers"]


_log = logger("bench")


def matmul_gflops(n: int = 2048, reps: int = 5, device: torch.device = torch.device("cpu")) -> float:
    """fp32 GEMM throughput with the current torch threads: the roofline the scoring pass is compared with."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    sync(device)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def bilstm_flops_per_char(model: NerModel) -> float:
    """Multiply-adds ×2 of the encoder and emission layer per character (the LSTM dominates)."""
    spec = model.student.encoder.spec
    if spec["kind"] != "char":
        return float("nan")
    e, h = spec["emb_dim"], spec["hidden"]
    lstm = 2 * 2 * 4 * h * (e + h)  # two directions, 4 gates, input + recurrent
    emit = 2 * 2 * h * model.scheme.num_tags
    return float(lstm + emit)


def bench_scoring(model: NerModel, texts: Sequence[str], reps: int, workers: int) -> dict[str, Any]:
    """Best of ``reps`` scoring passes over ``texts`` with ``workers`` threads of one torch thread each (the
    warm-up runs on the caller's torch threads)."""
    model.predict(list(texts[:32]))  # warm-up
    with torch_threads(1):
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            model.predict(list(texts), workers=workers)
            best = min(best, time.perf_counter() - t)
    n_chars = sum(len(t) for t in texts)
    return {"records": len(texts), "chars": n_chars, "workers": workers, "seconds": best, "records_per_s": len(texts) / best, "chars_per_s": n_chars / best}


def roofline_numbers(model: NerModel, scoring: dict[str, Any], gflops: float) -> dict[str, float]:
    """The scoring pass's achieved GFLOP/s and its fraction of the matmul roofline ``gflops``."""
    per_char = bilstm_flops_per_char(model)
    achieved = per_char * scoring["chars"] / scoring["seconds"] / 1e9
    return {
        "achieved_gflops": achieved,
        "roofline_gflops": gflops,
        "roofline_fraction": achieved / gflops,
        "roofline_records_per_s": gflops * 1e9 / (per_char * scoring["chars"] / scoring["records"]),
    }


def bench_one_record(model: NerModel, text: str, n: int, workers: int) -> dict[str, Any]:
    """Latency of scoring one record as /predict does (entities, L_min, L_max, L_p), without HTTP, with one
    torch thread as the backend runs it (``LASL_TORCH_THREADS=1``)."""
    with torch_threads(1):
        for _ in range(3):
            model.predict([text], workers=workers)
        times = []
        for _ in range(n):
            t = time.perf_counter()
            model.predict([text], workers=workers)
            times.append(time.perf_counter() - t)
    return {"chars": len(text), "n": n, **{f"{k}_ms": 1000 * v for k, v in percentiles(times).items()}}


def bench_lpn_sizes(texts: Sequence[str], threads: int, one_reps: int, pool_reps: int) -> list[dict[str, Any]]:
    """One record's latency and pool records/s for LPN sizes 2, 1 and 0 and the tagger alone
    (untrained weights: the same cost as trained ones, bar the decoding of spurious entities)."""
    one_text = near_400(texts, 1)[0]
    rows = []
    for layers in (2, 1, 0, None):
        _log(f"  loss net: {'none (tagger alone)' if layers is None else f'LPN with {layers} Bi-LSTM layers'}")
        model = NerModel.create(list(LABELS), texts=list(texts), lossnet_kind=None if layers is None else "lpn", lpn_layers=layers or 0)
        one = bench_one_record(model, one_text, one_reps, workers=threads)
        pool = bench_scoring(model, texts, pool_reps, workers=threads)
        rows.append({
            "lpn_layers": layers,
            "one_record_chars": one["chars"],
            "one_record_p50_ms": round(one["p50_ms"], 1),
            "one_record_p95_ms": round(one["p95_ms"], 1),
            "records_per_s": round(pool["records_per_s"], 1),
            "scoring_10k_s": round(10_000 / pool["records_per_s"], 1),
        })
    return rows
