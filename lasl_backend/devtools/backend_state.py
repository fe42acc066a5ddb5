"""What the server benchmarks read back from a running backend: its log, the meta.json of its versions, the
settings it runs with, and when Label Studio names its new version (its /metrics: ``clients.project_metrics``)."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from ..config import Settings
from ..serving.store import ModelStore
from .backend_process import BackendProcess
from .clients import LSApi, project_metrics
from .measure import logger

__all__ = [
    "LS_POLL_S",
    "effective_settings",
    "follow_up_versions",
    "imports_in_log",
    "read_meta",
    "runs_ok",
    "wait_for_version",
]

#: seconds between two "has the project got the new model_version yet?" questions to Label Studio
LS_POLL_S = 2.0


_log = logger("bench-server", clock=True)


def runs_ok(backend_url: str, pid: int) -> int:
    """Successful training runs of the project so far (counted after the PATCH of model_version)."""
    return int(project_metrics(backend_url, pid).get("training", {}).get("runs_ok") or 0)


def imports_in_log(log: str, pid: int) -> list[tuple[int, float]]:
    """(predictions, seconds) of each pool push of the project, as the backend logs them."""
    return [(int(n), float(s)) for n, s in re.findall(rf"project {pid}: imported (\d+) predictions in ([0-9.]+) s", log)]


def read_meta(backend: BackendProcess, pid: int, version: str) -> dict[str, Any]:
    """A version's meta.json (train/score seconds, steps, F1s); {} if unreadable, so that one missing number
    does not lose the others."""
    try:
        return ModelStore(backend.env["MODEL_DIR"]).read_meta(pid, version)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        _log(f"cannot read meta.json of {version}: {exc}")
        return {}


def effective_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The training settings the backend ran with: its environment read as the backend reads it, so that a
    report names the real values even after a default changes."""
    s = Settings.from_env(env)
    return {
        "LASL_EPOCHS": s.epochs, "LASL_MIN_STEPS": s.min_steps, "LASL_MAX_STEPS": s.max_steps,
        "LASL_TORCH_THREADS": s.torch_threads, "LASL_TRAIN_SECONDS": s.train_seconds, "LASL_TRAIN_THREADS": s.train_threads,
        "LASL_CONTINUE_RUNS": s.continue_runs, "LASL_LPN_LAYERS": s.lpn_layers,
    }


def wait_for_version(api: LSApi, backend_url: str, pid: int, t0: float, deadline_s: float, runs_before: int, what: str) -> tuple[str, float, list[float]]:
    """Wait until Label Studio's ``project.model_version`` names a lasl version; returns it, the seconds
    since ``t0`` and the latency of each question to Label Studio (ms).

    Label Studio is asked only every LS_POLL_S while the backend's run is going, and right away once the
    backend has finished a run (its ``runs_ok`` grew) or is not running: GET /api/projects/{id} aggregates
    over the whole project (~140 ms at 10,000 tasks), so asking more often would load the cores being
    measured. The backend's own /metrics is cheap and is polled every 0.25 s."""
    ls_ms: list[float] = []
    next_ls, polls = t0, 0
    while time.monotonic() - t0 < deadline_s and polls < 100_000:
        polls += 1
        tr = project_metrics(backend_url, pid).get("training", {})
        status = tr.get("status")
        if status == "failed" and tr.get("last_error"):
            raise RuntimeError(f"training failed: {tr['last_error']}")
        if polls % 60 == 0:
            _log(f"{what}: {time.monotonic() - t0:.0f} s, training {status} {tr.get('progress')}")
        now = time.monotonic()
        if status != "running" or int(tr.get("runs_ok") or 0) > runs_before or now >= next_ls:
            mv = api.project(pid).get("model_version") or ""
            ls_ms.append(1000 * (time.monotonic() - now))
            next_ls = now + LS_POLL_S
            if mv.startswith("lasl-v"):
                return mv, time.monotonic() - t0, ls_ms
        time.sleep(0.25)
    raise TimeoutError(f"{what}: no new model_version within {deadline_s:.0f} s")


def follow_up_versions(backend: BackendProcess, pid: int, first: str, t0: float, deadline_s: float) -> list[dict[str, Any]]:
    """The CONTINUE_TRAINING runs that follow a budget-limited first run: wait (bounded) until the
    trainer is idle, then list every version after ``first`` with its time since the trigger and F1s."""
    seen: dict[str, float] = {}
    polls = 0
    while time.monotonic() - t0 < deadline_s and polls < 10_000:
        polls += 1
        m = project_metrics(backend.url, pid)
        v = m.get("model_version")
        if isinstance(v, str) and v != first and v not in seen:
            seen[v] = round(time.monotonic() - t0, 1)
            _log(f"queue: follow-up version {v} at {seen[v]} s, held-out F1 {m.get('current_version_stats', {}).get('f1_held_out')}")
        tr = m.get("trainer", {})
        if not tr.get("running") and not tr.get("pending"):
            break
        time.sleep(1.0)
    out = []
    for v, at in seen.items():
        meta = read_meta(backend, pid, v)
        out.append({"version": v, "at_s": at, "reason": meta.get("reason"), "train_s": meta.get("train_seconds"),
                    "steps": meta.get("steps"), "dev_f1": meta.get("dev_f1"), "f1_held_out": meta.get("f1_held_out")})
    return out
