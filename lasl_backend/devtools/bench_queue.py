"""The queue measurement of ``lasl bench --server``: from "Start training" in Label Studio to a reordered
queue, on a project of annotated and unlabeled tasks (the module doc of ``bench_server`` says what is timed)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from .backend_process import BackendProcess
from .backend_state import effective_settings, follow_up_versions, imports_in_log, read_meta, runs_ok, wait_for_version
from .clients import LSApi, project_metrics
from .labelstudio_dev import connect_backend, ner_label_config
from .measure import loadavg, logger
from .payloads import annotated_task
from .synthetic import LABELS

__all__ = ["measure_queue"]


_log = logger("bench-server", clock=True)


def measure_queue(api: LSApi, ls_url: str, token: str, backend: BackendProcess, recs: Sequence[Any], n_labeled: int, deadline_s: float) -> tuple[dict[str, Any], int, str, str]:
    """(numbers, project id, the first new version, label config). The clock starts at
    ``POST /api/ml/{id}/train`` through Label Studio."""
    cfg = ner_label_config(LABELS)
    pid = _project(api, recs, n_labeled, cfg)
    ml_id = connect_backend(ls_url, token, pid, backend.url, "lasl-bench")
    runs_before = runs_ok(backend.url, pid)
    load_before = loadavg()
    t0 = time.monotonic()
    api.post(f"/api/ml/{ml_id}/train", {})
    trigger_answer_s = time.monotonic() - t0
    _log(f"queue: START_TRAINING sent through Label Studio ({trigger_answer_s:.2f} s); waiting for the new version")
    version, t_version, _ = wait_for_version(api, backend.url, pid, t0, deadline_s, runs_before, "queue")
    t_next, tries = _wait_for_lowest_next(api, pid, version, t0, deadline_s)
    load_after = loadavg()
    res = {
        "labeled_tasks": n_labeled,
        "unlabeled_tasks": len(recs) - n_labeled,
        "train_settings": effective_settings(backend.env),
        "trigger_http_s": round(trigger_answer_s, 3),
        "trigger_to_model_version_s": round(t_version, 2),
        "trigger_to_reordered_queue_s": None if t_next is None else round(t_next, 2),
        "next_served_lowest_score": t_next is not None,
        "next_tries": tries,
        **_run_numbers(backend, pid, version),
        "follow_up_versions": follow_up_versions(backend, pid, version, t0, deadline_s),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }
    _log(f"queue: version {version} after {t_version:.1f} s, reordered queue after {res['trigger_to_reordered_queue_s']} s")
    return res, pid, version, cfg


def _project(api: LSApi, recs: Sequence[Any], n_labeled: int, cfg: str) -> int:
    """A project with the first ``n_labeled`` records annotated (their gold entities) and the rest unlabeled."""
    pid = api.create_project("bench queue", cfg)
    tasks = [annotated_task(r.text, r.entities, LABELS) for r in recs[:n_labeled]]
    tasks += [{"data": {"text": r.text}} for r in recs[n_labeled:]]
    t = time.monotonic()
    api.import_tasks(pid, tasks)
    _log(f"queue: project {pid}: imported {n_labeled} annotated + {len(recs) - n_labeled} unlabeled tasks in {time.monotonic() - t:.1f} s")
    return pid


def _wait_for_lowest_next(api: LSApi, pid: int, version: str, t0: float, deadline_s: float) -> tuple[float | None, int]:
    """(seconds since ``t0`` until ``GET /next`` serves a task with the version's lowest score, or None; tries).

    It asks for the next task first and checks it against the version's scores afterwards, so that the time
    is Label Studio's, not that of listing every prediction."""
    expected: set[Any] | None = None
    tries = 0
    while time.monotonic() - t0 < deadline_s and tries < 200:
        tries += 1
        served = api.get(f"/api/projects/{pid}/next").get("id")
        t_served = time.monotonic() - t0
        if expected is None:
            scores = {p["task"]: p["score"] for p in api.predictions(pid) if p.get("model_version") == version}
            lowest = min(scores.values())
            expected = {tid for tid, s in scores.items() if s == lowest}
        if served in expected:
            return t_served, tries
        time.sleep(0.25)
    return None, tries


def _run_numbers(backend: BackendProcess, pid: int, version: str) -> dict[str, Any]:
    """The backend's own account of the run: its duration, phase times, steps and F1s."""
    m = project_metrics(backend.url, pid)
    meta = read_meta(backend, pid, version)
    imports = imports_in_log(backend.log_text(), pid)
    return {
        "backend_run_s": m.get("training", {}).get("duration_s"),
        "backend_train_s": meta.get("train_seconds"),
        "backend_score_s": meta.get("score_seconds"),
        "backend_import_s": imports[-1][1] if imports else None,
        "train_steps": meta.get("steps"),
        "f1_held_out": meta.get("f1_held_out"),
        "dev_f1": meta.get("dev_f1"),
        "n_held_out": meta.get("n_held_out"),
        "n_entities": meta.get("n_entities"),
        "out_of_time": meta.get("out_of_time"),
    }
