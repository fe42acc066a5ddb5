"""The /predict measurement of ``lasl bench --server``: client-side latency of one record and of batches of
100 over loopback, and an in-process breakdown of one record (encoder, CRF bounds, loss net)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..ner import NerModel
from ..ner.batching import collate, make_chunks
from ..serving.store import ModelStore
from .clients import HttpClient
from .measure import loadavg, logger, percentiles
from .payloads import check_predict_response, near_400, predict_body
from .synthetic import LABELS
from .torch_timing import sync, torch_threads

__all__ = ["measure_predict", "profile_single"]


_log = logger("bench-server", clock=True)


def _ms(xs: Sequence[float]) -> dict[str, float]:
    return {k: round(v * 1000, 1) for k, v in percentiles(xs).items()}


def measure_predict(backend_url: str, pid: int, cfg: str, texts: Sequence[str], n_single: int, n_batch: int, deadline_s: float) -> dict[str, Any]:
    """Keep-alive ``POST /predict``, one request at a time: ``n_single`` ~400-character records one per
    request, then ``n_batch`` requests of 100 records, each half within ``deadline_s / 2``."""
    client = HttpClient(backend_url)
    singles = near_400(texts, n_single)
    errors: dict[str, int] = {}
    versions: set[str] = set()

    def one(batch: Sequence[str]) -> float:
        status, raw, dt = client.request("POST", "/predict", predict_body(pid, batch, cfg))
        err, vs = check_predict_response(status, raw, batch, LABELS)
        versions.update(vs)
        if err:
            errors[err] = errors.get(err, 0) + 1
        return dt

    for t in singles[:5]:  # warm-up (the first request loads the model)
        one([t])
    load_before = loadavg()
    lat1 = _timed_calls(one, [[t] for t in singles], deadline_s / 2)
    load_mid = loadavg()
    pool = list(texts) * (1 + 100 // max(1, len(texts)))  # always 100 records per batch
    batches = [pool[s : s + 100] for s in ((i * 100) % max(1, len(pool) - 99) for i in range(n_batch))]
    lat100 = _timed_calls(one, batches, deadline_s / 2)
    n_recs = sum(len(b) for b in batches[: len(lat100)])
    load_after = loadavg()
    client.close()
    res = {
        **_latency_numbers(lat1, lat100, singles, n_recs),
        "errors": errors,
        "model_versions": sorted(versions),
        "loadavg_before": load_before,
        "loadavg_between": load_mid,
        "loadavg_after": load_after,
    }
    _log(f"predict: 1 record p50 {res['single_p50_ms']} ms p95 {res['single_p95_ms']} ms; 100 records p50 {res['batch100_p50_ms']} ms")
    return res


def _latency_numbers(lat1: Sequence[float], lat100: Sequence[float], singles: Sequence[str], n_recs: int) -> dict[str, Any]:
    """Percentiles (ms) of the one-record and the 100-record requests, and the batches' records/s."""
    p1, p100 = _ms(lat1), _ms(lat100)
    return {
        "single_requests": len(lat1),
        "single_mean_chars": round(sum(len(t) for t in singles[: len(lat1)]) / max(1, len(lat1)), 1),
        "single_p50_ms": p1["p50"],
        "single_p95_ms": p1["p95"],
        "single_p99_ms": p1["p99"],
        "single_max_ms": round(max(lat1) * 1000, 1) if lat1 else None,
        "batch100_requests": len(lat100),
        "batch100_p50_ms": p100["p50"],
        "batch100_p95_ms": p100["p95"],
        "batch100_records_per_s": round(n_recs / sum(lat100), 1) if lat100 else None,
    }


def _timed_calls(call: Callable[[Sequence[str]], float], bodies: Sequence[Sequence[str]], budget_s: float) -> list[float]:
    """``call`` on each body in turn until ``budget_s`` has passed; the seconds each call reported."""
    out: list[float] = []
    t0 = time.monotonic()
    for body in bodies:
        if time.monotonic() - t0 > budget_s:
            break
        out.append(call(body))
    return out


def profile_single(model_dir: Path, pid: int, version: str, texts: Sequence[str], n: int = 30) -> dict[str, Any]:
    """In-process breakdown of one ~400-character record, with one torch thread like the server."""
    model = NerModel.load(ModelStore(model_dir).model_path(pid, version))
    sample = near_400(texts, n)
    with torch_threads(1):
        model.predict(sample[:3])
        load_before = loadavg()
        parts = _one_record_parts(model, sample)
    med = {k: round(percentiles(xs, (50,))["p50"] * 1000, 2) if xs else None for k, xs in parts.items()}
    spec = getattr(model.served.encoder, "spec", {})
    return {
        "records": len(sample),
        "chunks_per_record": len(make_chunks([sample[0]], model.encode, model.max_len)),
        "encoder": {k: spec.get(k) for k in ("kind", "emb_dim", "hidden", "layers") if k in spec},
        "model_predict_p50_ms": med["full"],
        "model_predict_without_lossnet_p50_ms": med["nolpn"],
        "encoder_forward_p50_ms": med["enc"],
        "crf_bounds_marginals_p50_ms": med["crf"],
        "lossnet_p50_ms": med["lpn"],
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
    }


def _one_record_parts(model: NerModel, sample: Sequence[str]) -> dict[str, list[float]]:
    """Seconds of each record's whole predict (with and without the loss net) and of its three parts, each
    until its result is ready (a GPU's queued work waited for), so the parts mean the same on any device."""
    tagger = model.served
    parts: dict[str, list[float]] = {"full": [], "nolpn": [], "enc": [], "crf": [], "lpn": []}

    def timed(key: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        s = time.perf_counter()
        out = fn(*args, **kwargs)
        sync(model.device)
        parts[key].append(time.perf_counter() - s)
        return out

    with torch.no_grad():
        for t in sample:
            timed("full", model.predict, [t])
            timed("nolpn", model.predict, [t], with_lossnet=False)
            ids, mask, _ = collate(make_chunks([t], model.encode, model.max_len), model.device)
            em, layers = timed("enc", tagger, ids, mask)
            b = timed("crf", tagger.bounds, em, mask, with_marginals=True)
            if model.lossnet is not None:
                timed("lpn", _loss_on_host, model, layers, mask, b)
    return parts


def _loss_on_host(model: NerModel, layers: Sequence[torch.Tensor], mask: torch.Tensor, bounds: Any) -> np.ndarray:
    """The loss net's L_p as prediction hands it on: float64 on the CPU."""
    assert model.lossnet is not None
    return model.lossnet.predict_loss(layers, mask, bounds).double().cpu().numpy()
