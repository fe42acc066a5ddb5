"""The "re-score and push n tasks" measurement of ``lasl bench --server``: a project of n unlabeled tasks, a
START_TRAINING to the backend's /webhook, and the run's scoring and import times."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from .backend_process import BackendProcess
from .backend_state import imports_in_log, read_meta, runs_ok, wait_for_version
from .clients import HttpClient, LSApi, project_metrics
from .labelstudio_dev import ner_label_config
from .measure import loadavg, logger
from .payloads import annotated_task
from .synthetic import LABELS

__all__ = ["measure_push"]


_log = logger("bench-server", clock=True)


def measure_push(api: LSApi, backend: BackendProcess, recs: Sequence[Any], n_pool: int, pool_texts: Sequence[str], deadline_s: float) -> dict[str, Any]:
    """Numbers of one push of ``n_pool`` tasks (+5 annotated ones to train on)."""
    cfg = ner_label_config(LABELS)
    pid = api.create_project(f"bench push {n_pool}", cfg)
    tasks = [annotated_task(r.text, r.entities, LABELS) for r in recs[:5]]
    tasks += [{"data": {"text": t}} for t in pool_texts[:n_pool]]
    t = time.monotonic()
    api.import_tasks(pid, tasks)
    _log(f"push {n_pool}: project {pid}: imported {len(tasks)} tasks in {time.monotonic() - t:.1f} s; START_TRAINING to the backend")
    client = HttpClient(backend.url)
    runs_before = runs_ok(backend.url, pid)
    load_before = loadavg()
    t0 = time.monotonic()
    client.json("POST", "/webhook", {"action": "START_TRAINING", "project": {"id": pid, "label_config": cfg}})
    version, t_version, ls_ms = wait_for_version(api, backend.url, pid, t0, deadline_s, runs_before, f"push {n_pool}")
    m = _metrics_after_run(backend.url, pid)
    load_after = loadavg()
    meta = read_meta(backend, pid, version)
    imports = imports_in_log(backend.log_text(), pid)
    n_preds = sum(1 for p in api.predictions(pid) if p.get("model_version") == version)
    score_s = meta.get("score_seconds")
    import_s = sum(s for _, s in imports) if imports else None
    res = {
        "pool_tasks": n_pool,
        "predictions_of_version_in_ls": n_preds,
        "import_requests": len(imports),
        "score_s": score_s,
        "import_s": import_s,
        "rescore_push_s": round(score_s + import_s, 2) if score_s is not None and import_s is not None else None,
        "score_records_per_s": round(n_pool / score_s, 1) if score_s else None,
        "train_s": meta.get("train_seconds"),
        "run_s": m.get("training", {}).get("duration_s"),
        "trigger_to_version_s": round(t_version, 2),
        "ls_project_polls": len(ls_ms),
        "ls_project_poll_p50_ms": round(sorted(ls_ms)[len(ls_ms) // 2], 1) if ls_ms else None,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }
    client.close()
    _log(f"push {n_pool}: score {score_s} s + import {import_s} s = {res['rescore_push_s']} s (run {res['run_s']} s)")
    return res


def _metrics_after_run(backend_url: str, pid: int) -> dict[str, Any]:
    """The project's metrics once the run has recorded its duration (right after the PATCH and the swap;
    waits at most 20 s)."""
    m = project_metrics(backend_url, pid)
    for _ in range(200):
        if m.get("training", {}).get("status") != "running":
            break
        time.sleep(0.1)
        m = project_metrics(backend_url, pid)
    return m
