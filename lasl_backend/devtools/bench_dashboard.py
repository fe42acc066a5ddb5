"""How long ``GET /dashboard`` takes for a project with a long history: a model directory with one project
holding ``--signals`` stopping-signal entries and ``--runs`` run entries (synthetic numbers, written through
``ProjectHistory``) and one published version's meta (no model: the page must not load one), served by the
Flask app in-process through its test client, so the numbers are the route's own (no sockets, no WSGI server).

    python -m lasl_backend.devtools.bench_dashboard [--requests 200] [--out docs/results/bench_dashboard.json]

It prints p50, p95 and max in ms and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings
from ..serving.history import ProjectHistory
from ..serving.routes import init_app
from ..serving.store import ModelStore
from .measure import loadavg, logger, percentiles
from .synthetic import LABELS

__all__ = ["PROJECT", "build_model_dir", "main", "measure_dashboard", "parse_args"]

#: the benchmark's project id
PROJECT = 1
_T0 = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)

_log = logger("bench-dashboard")


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def _signal(i: int, rng: np.random.Generator, version: str) -> dict[str, Any]:
    """Version ``i``'s entry: F1 on an inverse power law with noise, a bootstrap-like interval, kappa near 1."""
    n = 40 * (i + 1)
    f1 = float(np.clip(0.85 - 1.6 * n ** -0.45 + rng.normal(0, 0.01), 0.0, 1.0))
    half = 0.25 / math.sqrt(max(1, n // 10))
    per_label = {lab: {"f1": float(np.clip(f1 + rng.normal(0, 0.05), 0, 1)), "support": int(n // 10 * (j + 1) // len(LABELS) + 1)}
                 for j, lab in enumerate(LABELS)}
    return {
        "version": version, "trained_at": _iso(_T0 + timedelta(minutes=20 * i)), "lambda_t": round(min(1.0, 0.1 + 0.02 * i), 4),
        "n_labeled": n, "n_held_out": max(1, n // 10), "f1_held_out": f1, "f1_lo": max(0.0, f1 - half), "f1_hi": min(1.0, f1 + half),
        "per_label": per_label, "label_counts": {lab: int(n * (0.5 + j) // 2) for j, lab in enumerate(LABELS)},
        "stop_set": 200, "kappa": None if i == 0 else float(np.clip(1.0 - 0.5 / (i + 1) + rng.normal(0, 0.005), -1, 1)),
    }


def _run(i: int, rng: np.random.Generator, version: str | None) -> dict[str, Any]:
    """Run ``i``: mostly ok, with a failure (a multi-line error) and a wait now and then."""
    started = _T0 + timedelta(minutes=20 * i)
    duration = float(rng.uniform(20, 60))
    status = "failed" if i % 17 == 5 else "waiting" if i == 0 else "ok"
    error = {"failed": "LabelStudioServerError: import predictions: Label Studio answered HTTP 500\nTraceback (most recent call last): ...",
             "waiting": "0 annotated task(s); training starts at 1 (LASL_MIN_LABELED)"}.get(status)
    return {"reason": "ANNOTATION_CREATED" if i % 3 else "START_TRAINING", "status": status, "started_at": _iso(started),
            "finished_at": _iso(started + timedelta(seconds=duration)), "duration_s": round(duration, 3),
            "steps": int(rng.integers(100, 400)) if status == "ok" else None, "version": version if status == "ok" else None,
            "error": error}


def build_model_dir(model_dir: Path, n_signals: int, n_runs: int, seed: int = 0) -> str:
    """Write the project's history and the latest signal's version as published (its meta, no model files);
    returns that version."""
    rng = np.random.default_rng(seed)
    store = ModelStore(model_dir)
    history = ProjectHistory(store.project_dir(PROJECT))
    versions = [f"lasl-v{i + 1:04d}-{(_T0 + timedelta(minutes=20 * i)).strftime('%Y%m%dT%H%M%S')}" for i in range(max(n_signals, n_runs))]
    for i in range(n_signals):
        history.append_signal(_signal(i, rng, versions[i]))
    for i in range(n_runs):
        history.append_run(_run(i, rng, versions[i]))
    latest = versions[max(1, n_signals) - 1]
    n = 40 * max(1, n_signals)
    meta = {"n_labeled": n, "n_unlabeled": 10_000 - n, "n_held_out": n // 10, "trained_at": _iso(_T0), "cost_unit": "seconds",
            "cost_model": {"intercept": 6.5, "per_char": 0.12, "per_region": 2.4, "n": n, "n_used": n - 7, "mad_seconds": 4.1},
            "diversity": {"window": 10, "groups": 9000, "moved": 120}}
    store.write_version(PROJECT, latest, lambda d: None, meta)
    store.set_current(PROJECT, latest)
    return latest


def measure_dashboard(model_dir: Path, n_requests: int) -> dict[str, Any]:
    """Time ``n_requests`` GET /dashboard?project=1 after one untimed request; every answer must be a 200 page."""
    app = init_app(settings=Settings(model_dir=model_dir), store=ModelStore(model_dir))
    client = app.test_client()
    path = f"/dashboard?project={PROJECT}"

    def get() -> int:
        r = client.get(path)
        body = r.get_data()
        if r.status_code != 200 or r.mimetype != "text/html":
            raise RuntimeError(f"GET {path} answered {r.status_code} {r.mimetype}: {body[:300]!r}")
        return len(body)

    t = time.perf_counter()
    page_bytes = get()
    first_ms = (time.perf_counter() - t) * 1000
    times_ms = []
    for _ in range(n_requests):
        t = time.perf_counter()
        get()
        times_ms.append((time.perf_counter() - t) * 1000)
    pct = percentiles(times_ms, (50, 95))
    backend = app.extensions["lasl"].backend(PROJECT)
    nan = float("nan")
    return {"requests": n_requests, "p50_ms": round(pct["p50"], 3), "p95_ms": round(pct["p95"], 3),
            "max_ms": round(max(times_ms), 3) if times_ms else nan,
            "mean_ms": round(float(np.mean(times_ms)), 3) if times_ms else nan, "first_ms": round(first_ms, 3), "page_bytes": page_bytes,
            "recommendation": backend.stopping()["recommendation"]["state"], "model_loaded": backend.slot.loaded}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m lasl_backend.devtools.bench_dashboard", description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=200, help="timed requests (default 200)")
    ap.add_argument("--signals", type=int, default=50, help="stored stopping-signal entries (default 50)")
    ap.add_argument("--runs", type=int, default=50, help="stored run entries (default 50)")
    ap.add_argument("--out", type=Path, default=None, help="write the numbers as JSON here (default: print only)")
    a = ap.parse_args(argv)
    for name in ("requests", "signals", "runs"):
        if getattr(a, name) < 1:
            ap.error(f"--{name} must be at least 1")
    return a


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lasl-bench-dashboard-") as tmp:
        model_dir = Path(tmp) / "models"
        build_model_dir(model_dir, a.signals, a.runs)
        _log(f"{a.signals} signal entries, {a.runs} runs; timing {a.requests} requests")
        res = measure_dashboard(model_dir, a.requests)
    res.update(signals=a.signals, runs=a.runs, loadavg=loadavg())
    print(f"GET /dashboard x{res['requests']}: p50 {res['p50_ms']:.2f} ms, p95 {res['p95_ms']:.2f} ms, "
          f"max {res['max_ms']:.2f} ms ({res['page_bytes']:,} bytes)", flush=True)
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
