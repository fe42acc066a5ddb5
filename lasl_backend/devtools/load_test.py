"""Load benchmark (docs/operations.md, "Load"): C concurrent clients x R ``POST /predict`` calls against the
real gunicorn server on loopback, while a training run swaps the model. Not a timed test: it reports.

    python -m lasl_backend.devtools.load_test --out docs/results/load_test.json

By default it starts its own stack on 127.0.0.1: a real Label Studio 1.23.2 (its venv from
``labelstudio_dev.default_ls_venv``; temp data dir) with a project of annotated and unlabeled synthetic EMR tasks, and
``lasl serve`` of this installation with
``BASIC_AUTH_USER``/``BASIC_AUTH_PASS`` set (every /predict carries them) and ``LASL_TORCH_THREADS=1``.
It trains version 1 first (START_TRAINING through the backend's ``/webhook`` with basic auth, as Label
Studio's "Start training" sends it), then runs the load and, once ``--train-at`` of the requests are done,
sends START_TRAINING again: that run fetches the tasks from Label Studio, trains, scores and pushes the
pool and swaps the serving model while the clients keep hitting /predict.

``--backend-url URL --project ID`` hits an already running backend instead (``--auth user:pass`` if it
needs it; the label config defaults to the six CCKS labels; ``--no-train`` to skip the swap).

Each client is a thread with its own keep-alive HTTP connection (``http.client``) and a fixed request
count; the whole run also has a deadline. One request = one task with a ~400-character record, shaped
like Label Studio's /predict body. An error is a transport failure, a non-200, or a body that is not one
valid result per task (score in [0, 1], a model_version, regions whose ``text == data[start:end]``
with 0 <= start < end <= len and a label of the config).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ..data import Record
from .backend_process import BackendProcess, bench_backend_env, parse_env
from .clients import HttpClient, LSApi, project_metrics
from .labelstudio_dev import LS_VERSION, LabelStudioServer, ensure_ls_venv, ner_label_config
from .measure import loadavg, logger, percentiles
from .payloads import annotated_task, check_predict_response, predict_body
from .synthetic import LABELS, make_records

Auth = tuple[str, str] | None


log = logger("load-test", clock=True)


def start_training(url: str, pid: int, cfg: str, auth: Auth) -> dict[str, Any]:
    """START_TRAINING to the backend's /webhook, as Label Studio's "Start training" sends it."""
    c = HttpClient(url, auth=auth, timeout=30)
    try:
        return c.json("POST", "/webhook", {"action": "START_TRAINING", "project": {"id": pid, "label_config": cfg}})
    finally:
        c.close()


def wait_trained(url: str, pid: int, auth: Auth, runs_ok: int, deadline_s: float) -> dict[str, Any]:
    """Poll /metrics until the project has ``runs_ok`` successful runs (or raise)."""
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < deadline_s and n < 100_000:
        n += 1
        m = project_metrics(url, pid, auth)
        tr = m.get("training", {})
        if tr.get("runs_ok", 0) >= runs_ok and tr.get("status") != "running":
            return m
        if tr.get("status") == "failed":
            raise RuntimeError(f"training failed: {tr.get('last_error')}")
        if n % 20 == 0:
            log(f"  training {tr.get('status')} {tr.get('progress')} ({time.monotonic() - t0:.0f} s)")
        time.sleep(0.5)
    raise TimeoutError(f"training not done within {deadline_s:.0f} s")


class Load:
    """The clients, the trigger, and what they saw."""

    def __init__(self, args: argparse.Namespace, url: str, pid: int, cfg: str, texts: list[str], auth: Auth) -> None:
        self.args, self.url, self.pid, self.cfg, self.texts, self.auth = args, url, pid, cfg, texts, auth
        self.lock = threading.Lock()
        self.lat: list[float] = []
        self.errors: dict[str, int] = {}
        self.error_examples: list[str] = []
        self.versions: dict[str, int] = {}
        self.first_seen: dict[str, float] = {}
        self.done = 0
        self.total = args.clients * args.requests
        self.t0 = 0.0
        self.deadline = 0.0
        self.trigger_at: float | None = None
        self.trigger_answer: Any = None

    def client(self, k: int) -> None:
        """Client ``k``: its share of the requests, one at a time on one keep-alive connection."""
        c = HttpClient(self.url, auth=self.auth, timeout=120)
        try:
            for i in range(self.args.requests):
                if time.monotonic() > self.deadline:
                    break
                self._one_request(c, k, i)
        finally:
            c.close()

    def _one_request(self, c: HttpClient, k: int, i: int) -> None:
        text = self.texts[(k * self.args.requests + i) % len(self.texts)]
        body = json.dumps(predict_body(self.pid, [text], self.cfg, first_id=k * 1_000_000 + i), ensure_ascii=False).encode()
        try:
            status, raw, dt = c.request("POST", "/predict", body)
            err, vs = check_predict_response(status, raw, [text], LABELS)
        except Exception as exc:  # noqa: BLE001 - a transport failure is an error to count
            dt, err, vs, raw = float("nan"), f"transport_{type(exc).__name__}", [], b""
        now = time.monotonic() - self.t0
        with self.lock:
            self.done += 1
            if err:
                self.errors[err] = self.errors.get(err, 0) + 1
                if len(self.error_examples) < 10:
                    self.error_examples.append(f"{err}: {raw[:200]!r}")
            else:
                self.lat.append(dt)
            for v in vs:
                self.versions[v] = self.versions.get(v, 0) + 1
                self.first_seen.setdefault(v, round(now, 3))

    def trigger(self) -> None:
        """Send START_TRAINING once ``train_at`` of the requests are done (if asked)."""
        if self.args.no_train:
            return
        want = int(self.total * self.args.train_at)
        while time.monotonic() < self.deadline:
            with self.lock:
                if self.done >= want:
                    break
            time.sleep(0.05)
        else:
            return
        self.trigger_at = round(time.monotonic() - self.t0, 3)
        try:
            self.trigger_answer = start_training(self.url, self.pid, self.cfg, self.auth)
        except Exception as exc:  # noqa: BLE001
            self.trigger_answer = f"{type(exc).__name__}: {exc}"
        log(f"START_TRAINING sent at {self.trigger_at} s of the load: {self.trigger_answer}")

    def run(self) -> dict[str, Any]:
        """Start the clients and the trigger, report progress every 15 s, and return what they saw."""
        self.t0 = time.monotonic()
        self.deadline = self.t0 + self.args.deadline
        threads = [threading.Thread(target=self.client, args=(k,), name=f"client-{k}", daemon=True) for k in range(self.args.clients)]
        trig = threading.Thread(target=self.trigger, daemon=True)
        load_before = loadavg()
        for t in threads:
            t.start()
        trig.start()
        last = 0.0
        while any(t.is_alive() for t in threads) and time.monotonic() < self.deadline + 130:
            time.sleep(1.0)
            if time.monotonic() - last > 15:
                last = time.monotonic()
                with self.lock:
                    log(f"  {self.done}/{self.total} requests, {sum(self.errors.values())} errors, versions {self.versions}, load {loadavg()}")
        for t in threads:
            t.join(1)
        trig.join(1)
        return self.result(time.monotonic() - self.t0, load_before, loadavg())

    def result(self, wall: float, load_before: list[float], load_after: list[float]) -> dict[str, Any]:
        """The load's numbers: counts, throughput, latency percentiles (ms), errors, versions served."""
        p = {k: round(v * 1000, 1) for k, v in percentiles(self.lat).items()}
        return {
            "clients": self.args.clients,
            "requests_per_client": self.args.requests,
            "requests_planned": self.total,
            "requests_done": self.done,
            "wall_s": round(wall, 2),
            "throughput_req_per_s": round(self.done / wall, 2) if wall else None,
            "latency_p50_ms": p["p50"],
            "latency_p95_ms": p["p95"],
            "latency_p99_ms": p["p99"],
            "latency_max_ms": round(max(self.lat) * 1000, 1) if self.lat else None,
            "errors": sum(self.errors.values()),
            "errors_by_kind": self.errors,
            "error_examples": self.error_examples,
            "model_versions_served": self.versions,
            "version_first_seen_s": self.first_seen,
            "training_triggered_at_s": self.trigger_at,
            "training_trigger_answer": self.trigger_answer,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m lasl_backend.devtools.load_test", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="write the JSON results here")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=1000, help="/predict calls per client")
    ap.add_argument("--deadline", type=float, default=900.0, help="seconds; the load stops then even if requests remain")
    ap.add_argument("--train-at", type=float, default=0.05, help="fraction of requests done when START_TRAINING is sent")
    ap.add_argument("--no-train", action="store_true", help="no training run during the load")
    ap.add_argument("--labeled", type=int, default=60, help="annotated tasks in the self-started project")
    ap.add_argument("--unlabeled", type=int, default=240, help="unlabeled tasks in the self-started project")
    ap.add_argument("--train-env", default="LASL_EPOCHS=2,LASL_MIN_STEPS=40",
                    help="extra backend environment for the self-started backend (comma-separated K=V)")
    ap.add_argument("--threads", type=int, default=8, help="gunicorn threads of the self-started backend")
    ap.add_argument("--backend-url", default=None, help="hit this running backend instead of starting one")
    ap.add_argument("--project", type=int, default=None, help="project id (with --backend-url)")
    ap.add_argument("--auth", default=None, help="user:pass for --backend-url")
    args = ap.parse_args(argv)
    if not 1 <= args.clients <= 64 or not 1 <= args.requests <= 100_000:
        ap.error("--clients must be in [1, 64] and --requests in [1, 100000]")
    if args.backend_url and args.project is None:
        ap.error("--backend-url needs --project")
    try:
        args.train_env = parse_env(args.train_env)
    except ValueError as exc:
        ap.error(f"--train-env: {exc}")
    return args


def backend_env(ls: LabelStudioServer, auth: tuple[str, str], train_env: Mapping[str, str]) -> dict[str, str]:
    """The self-started backend's settings: the benchmarks' (``bench_backend_env``), basic auth on, and
    ``train_env`` (``--train-env``) on top."""
    return {**bench_backend_env(ls.url, ls.token), "BASIC_AUTH_USER": auth[0], "BASIC_AUTH_PASS": auth[1], **train_env}


def _self_started_stack(stack: ExitStack, args: argparse.Namespace, recs: list[Record], cfg: str,
                        report: dict[str, Any]) -> tuple[str, int, tuple[str, str], BackendProcess]:
    """Label Studio with the project, the backend with basic auth, and version 1 trained; (url, project, auth, backend)."""
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lasl-load-")))
    ls = stack.enter_context(LabelStudioServer(tmp / "ls", ls_venv=ensure_ls_venv()))
    api = LSApi(ls.url, ls.token)
    pid = api.create_project("load test", cfg)
    tasks = [annotated_task(r.text, r.entities, LABELS) for r in recs[: args.labeled]]
    tasks += [{"data": {"text": r.text}} for r in recs[args.labeled : args.labeled + args.unlabeled]]
    api.import_tasks(pid, tasks)
    auth = ("lasl", secrets.token_urlsafe(16))
    env = backend_env(ls, auth, args.train_env)
    backend = stack.enter_context(BackendProcess(tmp / "models", tmp / "backend.log", env, threads=args.threads))
    report["stack"] = {"self_started": True, "label_studio": f"{LS_VERSION} (SQLite, loopback)", "gunicorn_threads": args.threads,
                       "backend_env": {k: v for k, v in env.items() if k.startswith("LASL_")} | {"LASL_TORCH_THREADS": "1", "BASIC_AUTH": "on"},
                       "project_tasks": {"labeled": args.labeled, "unlabeled": args.unlabeled}}
    log(f"training version 1 (START_TRAINING through /webhook with basic auth; {args.labeled} labeled tasks)")
    t = time.monotonic()
    start_training(backend.url, pid, cfg, auth)
    m = wait_trained(backend.url, pid, auth, 1, 900)
    report["version_1"] = {"version": m.get("model_version"), "train_run_s": round(time.monotonic() - t, 1)}
    # the webhook takes START_TRAINING only with the backend's basic auth: an anonymous one must be refused
    anon = HttpClient(backend.url, timeout=10)
    report["anonymous_start_training_status"], _, _ = anon.request("POST", "/webhook", {"action": "START_TRAINING", "project": {"id": pid}})
    anon.close()
    return backend.url, pid, auth, backend


def _training_during_load(url: str, pid: int, auth: Auth, before: dict[str, Any], res: dict[str, Any]) -> dict[str, Any]:
    """Did the run started during the load finish, and when was its version first served?"""
    try:
        m = wait_trained(url, pid, auth, before.get("training", {}).get("runs_ok", 0) + 1, 600)
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "version_before": before.get("model_version"),
        "version_after": m.get("model_version"),
        "run_duration_s": m.get("training", {}).get("duration_s"),
        "new_version_first_served_at_s": res["version_first_seen_s"].get(m.get("model_version")),
        "swapped_during_load": m.get("model_version") in res["model_versions_served"],
    }


def _stop(signum: int, frame: Any) -> None:
    """SIGTERM (e.g. `timeout`): leave through the ExitStack, which stops Label Studio and the backend."""
    raise SystemExit(f"stopped by signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    recs = make_records(max(args.labeled + args.unlabeled, 50), seed=21, mean_chars=418)
    texts = sorted((r.text for r in recs), key=lambda t: abs(len(t) - 400))[:200]
    cfg = ner_label_config(LABELS)
    report: dict[str, Any] = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "cpus": os.cpu_count(),
                              "note": "shared machine: other processes run beside the load; see loadavg_* (1, 5, 15 min)",
                              "record_chars_mean": round(sum(len(t) for t in texts) / len(texts), 1)}
    t_start = time.monotonic()
    with ExitStack() as stack:
        backend: BackendProcess | None = None
        if args.backend_url:
            url, pid = args.backend_url.rstrip("/"), args.project
            auth: Auth = tuple(args.auth.split(":", 1)) if args.auth else None  # type: ignore[assignment]
            report["stack"] = {"backend": url, "self_started": False}
        else:
            url, pid, auth, backend = _self_started_stack(stack, args, recs, cfg, report)
        report.update(_load(args, url, pid, cfg, texts, auth))
        if backend is not None:
            text = backend.log_text()
            report["backend_log"] = {"error_lines": sum(1 for ln in text.splitlines() if " ERROR " in ln),
                                     "tracebacks": text.count("Traceback"),
                                     "basic_auth_password_in_log": bool(auth) and auth[1] in text}
    report["total_wall_s"] = round(time.monotonic() - t_start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    r = report["load"]
    log(f"{r['requests_done']} requests in {r['wall_s']} s: {r['throughput_req_per_s']} req/s, p50 {r['latency_p50_ms']} ms, "
        f"p95 {r['latency_p95_ms']} ms, p99 {r['latency_p99_ms']} ms, errors {r['errors']}; written {args.out}")
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0 if r["errors"] == 0 else 1


def _load(args: argparse.Namespace, url: str, pid: int, cfg: str, texts: list[str], auth: Auth) -> dict[str, Any]:
    """Warm up (the model loads on the first /predict), run the load, then follow the run it triggered."""
    w = HttpClient(url, auth=auth, timeout=120)
    for t in texts[:3]:
        w.request("POST", "/predict", predict_body(pid, [t], cfg))
    w.close()
    before = project_metrics(url, pid, auth)
    log(f"load: {args.clients} clients x {args.requests} /predict on {url} (project {pid}, version {before.get('model_version')})")
    res = Load(args, url, pid, cfg, texts, auth).run()
    out: dict[str, Any] = {"load": res}
    if not args.no_train and res["training_triggered_at_s"] is not None:
        out["training_during_load"] = _training_during_load(url, pid, auth, before, res)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
