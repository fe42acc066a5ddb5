"""``lasl bench --server``: the backend's serving numbers against a REAL Label Studio and the real
gunicorn server.

Everything runs on 127.0.0.1: a Label Studio 1.23.2 from its venv (``labelstudio_dev.default_ls_venv``;
``LabelStudioServer``, SQLite, a temporary data dir) and ``lasl serve`` of this installation as a
subprocess (``BackendProcess``) with ``MODEL_DIR`` in a temporary dir and ``LASL_TORCH_THREADS=1``. What is
timed, one module each:

1. ``queue`` (``bench_queue``): a project with 300 annotated and 700 unlabeled tasks (imported with their
   annotations, then the backend is connected). Clock starts at ``POST /api/ml/{id}/train`` (Label Studio sends START_TRAINING
   to the backend). ``version_s``: until ``project.model_version`` names the new version (the backend has
   fetched, trained with the *default* training settings, scored the pool, pushed 700 predictions and
   PATCHed the project). ``reordered_queue_s``: until ``GET /api/projects/{id}/next`` serves the unlabeled
   task with the lowest score of that version. The backend's own phase times (train / score / import)
   come from the version's ``meta.json`` and the backend log. Then it waits (bounded) for the follow-up
   ``CONTINUE_TRAINING`` runs that a budget-limited first run schedules, and lists their versions with
   the time since the trigger and their F1 (``follow_up_versions``), before measuring /predict on an
   idle backend.
2. ``predict`` (``bench_predict``): client-side wall time of ``POST /predict`` on loopback (keep-alive,
   one request at a time) with the model trained in step 1 and the body Label Studio sends (tasks, ``project``, ``label_config``):
   one ~400-character record per request, and batches of 100 records. Also an in-process breakdown of
   one record (encoder, CRF bounds, loss net) so the HTTP overhead and the model cost can be told apart.
3. ``push_<n>`` (``bench_push``): "re-score and push n tasks": a project with n unlabeled tasks (+5
   annotated) and a second backend process whose training is capped (``LASL_MAX_STEPS=10``, so the run is dominated by what is
   measured). START_TRAINING goes to the backend's ``/webhook``; the backend fetches the tasks, trains,
   scores the whole pool (``score_s``: encoder + float64 CRF bounds + loss net + DBS + regions, from
   ``meta.json``), and pushes one prediction per task in one import request (``import_s``, from the backend
   log), then PATCHes ``model_version``. ``rescore_push_s = score_s + import_s``; ``run_s`` is the whole run
   (fetch and training included) and ``trigger_to_version_s`` is the wall time until Label Studio's
   ``project.model_version`` names the new version.

Every loop has a maximum count and a deadline. The machine's load average is recorded before and after
each measurement (``os.getloadavg()``); on a shared machine the numbers are contended and say so.

    python -m lasl_backend.devtools.bench_server [--quick] [--data DIR] [--out FILE.json] [--push-only]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..serving.store import ModelStore
from .backend_process import BackendProcess, bench_backend_env
from .bench_predict import measure_predict, profile_single
from .bench_push import measure_push
from .bench_queue import measure_queue
from .clients import LSApi
from .labelstudio_dev import LabelStudioServer, ensure_ls_venv
from .measure import loadavg, logger
from .records import default_data_dir, load_records, pad_with_synthetic

__all__ = ["ServerBenchSizes", "run_server_bench"]


_log = logger("bench-server", clock=True)


@dataclass(frozen=True)
class ServerBenchSizes:
    """How much each measurement does; ``from_overrides`` reads the ``sizes`` of :func:`run_server_bench`."""

    n_single: int
    n_batch: int
    push_sizes: tuple[int, ...]
    queue_labeled: int = 300
    queue_total: int = 1000
    queue_env: Mapping[str, str] | None = None
    push_only: bool = False

    @classmethod
    def from_overrides(cls, quick: bool, sizes: Mapping[str, Any] | None) -> ServerBenchSizes:
        sz = dict(sizes or {})
        n_single, n_batch = (40, 5) if quick else (200, 20)
        return cls(
            n_single=int(sz.get("n_single", n_single)),
            n_batch=int(sz.get("n_batch", n_batch)),
            push_sizes=tuple(sz.get("push_sizes", [1000] if quick else [1000, 10000])),
            queue_labeled=int(sz.get("queue_labeled", 300)),
            queue_total=int(sz.get("queue_total", 1000)),
            queue_env=dict(sz.get("queue_env", {})),
            push_only=bool(sz.get("push_only")),
        )


def _terminate_as_exit(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def run_server_bench(
    records: Sequence[Any],
    quick: bool = False,
    workdir: Path | None = None,
    sizes: Mapping[str, Any] | None = None,
    partial_path: Path | None = None,
) -> dict[str, Any]:
    """Start Label Studio and the backend, measure (module doc), stop both; returns numbers with units.

    ``sizes`` overrides the counts (smoke tests): ``queue_labeled``, ``queue_total``, ``n_single``,
    ``n_batch``, ``push_sizes``, ``queue_env`` (extra backend environment for the queue measurement),
    ``push_only`` (skip the queue and /predict measurements).
    ``partial_path``: the results so far are rewritten there after every measurement, so a run that is
    stopped (a timeout) keeps what it measured. SIGTERM stops Label Studio and the backend too (their own
    process groups would otherwise outlive this process)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate_as_exit)
    t_start = time.monotonic()
    sz = ServerBenchSizes.from_overrides(quick, sizes)
    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "loadavg_start": loadavg(),
                    "note": "shared machine: other processes run beside the benchmark; see loadavg_* (1, 5, 15 min)"},
        "quick": quick,
    }
    recs = pad_with_synthetic(records, sz.queue_total, seed=7)
    pool_texts = [r.text for r in pad_with_synthetic(recs, max(sz.push_sizes), seed=8)]

    def save() -> None:
        if partial_path is not None:
            out["wall_s"] = round(time.monotonic() - t_start, 1)
            Path(partial_path).parent.mkdir(parents=True, exist_ok=True)
            Path(partial_path).write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    with ExitStack() as stack:
        tmp = Path(workdir) if workdir else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lasl-bench-server-")))
        _log(f"work dir {tmp}")
        ls = stack.enter_context(LabelStudioServer(tmp / "ls", ls_venv=ensure_ls_venv()))
        api = LSApi(ls.url, ls.token)
        common = bench_backend_env(ls.url, ls.token)
        if not sz.push_only:
            _queue_and_predict(api, ls, tmp, dict(common, **(sz.queue_env or {})), recs, sz, quick, out, save)
        _pushes(api, tmp, common, recs, pool_texts, sz.push_sizes, out, save)
    out["machine"]["loadavg_end"] = loadavg()
    out["wall_s"] = round(time.monotonic() - t_start, 1)
    out["summary"] = _summary(out)
    return out


def _queue_and_predict(api: LSApi, ls: LabelStudioServer, tmp: Path, env: dict[str, str], recs: Sequence[Any],
                       sz: ServerBenchSizes, quick: bool, out: dict[str, Any], save: Any) -> None:
    """The queue measurement, then /predict and the in-process profile on the model it trained."""
    with BackendProcess(tmp / "models-a", tmp / "backend-a.log", env) as backend:
        queue, pid, version, cfg = measure_queue(api, ls.url, ls.token, backend, recs, sz.queue_labeled, 900)
        out[f"queue_{sz.queue_labeled}_labeled_{sz.queue_total - sz.queue_labeled}_unlabeled"] = queue
        save()
        unlabeled_texts = [r.text for r in recs[sz.queue_labeled :]]
        out["predict"] = measure_predict(backend.url, pid, cfg, unlabeled_texts, sz.n_single, sz.n_batch, 120 if quick else 300)
        save()
        try:
            model_dir = Path(backend.env["MODEL_DIR"])
            serving = ModelStore(model_dir).current(pid) or version  # follow-ups may have pruned the first
            out["predict_profile_in_process"] = profile_single(model_dir, pid, serving, unlabeled_texts, 15 if quick else 30)
        except Exception as exc:  # noqa: BLE001 - a profile is extra
            out["predict_profile_in_process"] = {"error": f"{type(exc).__name__}: {exc}"}
        save()


def _pushes(api: LSApi, tmp: Path, common: dict[str, str], recs: Sequence[Any], pool_texts: Sequence[str],
            push_sizes: Sequence[int], out: dict[str, Any], save: Any) -> None:
    """One push measurement per size, on a second backend whose training is capped at 10 steps."""
    capped = dict(common, LASL_EPOCHS="1", LASL_MIN_STEPS="10", LASL_MAX_STEPS="10")
    with BackendProcess(tmp / "models-b", tmp / "backend-b.log", capped) as backend:
        for n in push_sizes:
            try:
                out[f"push_{n}"] = measure_push(api, backend, recs, n, pool_texts, 1800)
            except (RuntimeError, TimeoutError) as exc:  # keep the other numbers
                out[f"push_{n}"] = {"error": f"{type(exc).__name__}: {exc}"}
            save()


def _summary(out: dict[str, Any]) -> dict[str, Any]:
    """The serving targets next to the measured numbers: one record's /predict p95 within 25 ms, the
    reordered queue within 60 s of "Start training", 10,000 tasks re-scored and pushed within 90 s."""
    q = next((v for k, v in out.items() if k.startswith("queue_")), {})
    p = out.get("predict", {})
    s: dict[str, Any] = {
        "predict_1_record_p95_ms": p.get("single_p95_ms"),
        "predict_1_record_p95_target_ms": 25,
        "predict_100_records_p50_ms": p.get("batch100_p50_ms"),
        "predict_100_records_p95_ms": p.get("batch100_p95_ms"),
        "trigger_to_reordered_queue_s": q.get("trigger_to_reordered_queue_s"),
        "trigger_to_reordered_queue_target_s": 60,
    }
    for n in (1000, 10000):
        if f"push_{n}" in out:
            s[f"rescore_push_{n}_s"] = out[f"push_{n}"].get("rescore_push_s")
    s["rescore_push_10000_target_s"] = 90
    return s


def main(argv: Sequence[str] | None = None) -> int:
    """The server benchmark alone (``lasl bench --server`` runs it after the model benchmarks)."""
    ap = argparse.ArgumentParser(prog="python -m lasl_backend.devtools.bench_server",
                                 description="server benchmark only (lasl bench --server runs it after the model benches)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", default=None, help="directory with train.jsonl (default ../shared/data/ccks2019, else synthetic)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--push-only", action="store_true", help="only the re-score-and-push measurements (1,000 and 10,000 tasks)")
    a = ap.parse_args(argv)
    d = Path(a.data) if a.data else default_data_dir()
    recs, src = load_records(d, 1000)
    _log(f"records: {src}")
    partial = a.out.with_suffix(".partial.json") if a.out else None
    report = {"data": src, "server": run_server_bench(recs, quick=a.quick, partial_path=partial, sizes={"push_only": True} if a.push_only else None)}
    if partial is not None and partial.exists():
        partial.unlink()
    text = json.dumps(report, ensure_ascii=False, indent=1)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
