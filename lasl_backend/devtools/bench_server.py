"""``lasl bench --server``: the backend's serving numbers against a REAL Label Studio and the real
gunicorn server (issue 4, "What I will measure").

Everything runs on 127.0.0.1: a Label Studio 1.23.2 from ``.ls-venv`` (``LabelStudioServer``, SQLite, a
temporary data dir) and ``.venv/bin/lasl serve`` as a subprocess with ``MODEL_DIR`` in a temporary dir and
``LASL_TORCH_THREADS=1``. What is timed:

1. ``queue``: a project with 300 annotated and 700 unlabeled tasks (imported with their annotations, then the
   backend is connected). Clock starts at ``POST /api/ml/{id}/train`` (Label Studio sends START_TRAINING
   to the backend). ``version_s``: until ``project.model_version`` names the new version (the backend has
   fetched, trained with the *default* training settings, scored the pool, pushed 700 predictions and
   PATCHed the project). ``reordered_queue_s``: until ``GET /api/projects/{id}/next`` serves the unlabeled
   task with the lowest score of that version. The backend's own phase times (train / score / import)
   come from the version's ``meta.json`` and the backend log. Then it waits (bounded) for the follow-up
   ``CONTINUE_TRAINING`` runs that a budget-limited first run schedules, and lists their versions with
   the time since the trigger and their F1 (``follow_up_versions``), before measuring /predict on an
   idle backend.
2. ``predict``: client-side wall time of ``POST /predict`` on loopback (keep-alive, one request at a time)
   with the model trained in step 1 and the body Label Studio sends (tasks, ``project``, ``label_config``):
   one ~400-character record per request, and batches of 100 records. Also an in-process breakdown of
   one record (encoder, CRF bounds, loss net) so the HTTP overhead and the model cost can be told apart.
3. ``push_<n>``: "re-score and push n tasks": a project with n unlabeled tasks (+5 annotated) and a second
   backend process whose training is capped (``LASL_MAX_STEPS=10``, so the run is dominated by what is
   measured). START_TRAINING goes to the backend's ``/webhook``; the backend fetches the tasks, trains,
   scores the whole pool (``score_s``: encoder + float64 CRF bounds + loss net + DBS + regions, from
   ``meta.json``), and pushes one prediction per task in one import request (``import_s``, from the backend
   log), then PATCHes ``model_version``. ``rescore_push_s = score_s + import_s``; ``run_s`` is the whole run
   (fetch and training included) and ``trigger_to_version_s`` is the wall time until Label Studio's
   ``project.model_version`` names the new version.

Every loop has a maximum count and a deadline. The machine's load average is recorded before and after
each measurement (``os.getloadavg()``); on a shared machine the numbers are contended and say so.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import os
import re
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Mapping, Sequence

from .labelstudio_dev import (
    LabelStudioServer,
    connect_backend,
    ensure_ls_venv,
    free_port,
    ner_label_config,
    start_process_group,
    stop_process_group,
    wait_http_ok,
)

__all__ = [
    "BackendProcess",
    "HttpClient",
    "LSApi",
    "check_predict_response",
    "loadavg",
    "percentiles",
    "predict_body",
    "run_server_bench",
]

REPO = Path(__file__).resolve().parent.parent
LABELS6 = ("疾病和诊断", "影像检查", "实验室检验", "手术", "药物", "解剖部位")


def _log(msg: str) -> None:
    print(f"[bench-server {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def percentiles(xs: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    """Linear-interpolation percentiles (numpy's default) in the units of ``xs``."""
    if not xs:
        return {f"p{q:g}": float("nan") for q in qs}
    s = sorted(xs)
    out = {}
    for q in qs:
        pos = (len(s) - 1) * q / 100
        lo, hi = math.floor(pos), math.ceil(pos)
        out[f"p{q:g}"] = s[lo] + (s[hi] - s[lo]) * (pos - lo)
    return out


# ---- HTTP clients ------------------------------------------------------------------------------------
class HttpClient:
    """A keep-alive ``http.client`` connection to one loopback server (low client overhead)."""

    def __init__(self, base_url: str, auth: tuple[str, str] | None = None, timeout: float = 300.0) -> None:
        m = re.match(r"^http://([^:/]+):(\d+)/?$", base_url)
        if not m:
            raise ValueError(f"expected http://host:port, got {base_url!r}")
        self.host, self.port = m.group(1), int(m.group(2))
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json"}
        if auth:
            self.headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self.conn

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes, float]:
        """(status, body bytes, seconds). Raises OSError / http.client errors on transport failures
        (after closing the connection, so the next call reconnects)."""
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode())
        conn = self._connect()
        t = time.perf_counter()
        try:
            conn.request(method, path, body=data, headers=self.headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        dt = time.perf_counter() - t
        if resp.getheader("Connection", "").lower() == "close":
            self.close()
        return resp.status, raw, dt

    def json(self, method: str, path: str, body: Any = None) -> Any:
        status, raw, _ = self.request(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {raw[:300]!r}")
        return json.loads(raw) if raw else None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class LSApi:
    """The Label Studio REST calls the benchmarks make (legacy token)."""

    def __init__(self, url: str, token: str) -> None:
        import requests

        self.url = url.rstrip("/")
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Token {token}"

    def _check(self, r: Any, what: str) -> Any:
        if r.status_code >= 300:
            raise RuntimeError(f"Label Studio {what}: HTTP {r.status_code}: {r.text[:300]}")
        return r.json() if r.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self._check(self.s.get(self.url + path, params=params or None, timeout=300), f"GET {path}")

    def post(self, path: str, body: Any) -> Any:
        return self._check(self.s.post(self.url + path, json=body, timeout=600), f"POST {path}")

    def create_project(self, title: str, label_config: str) -> int:
        return int(self.post("/api/projects", {"title": title, "label_config": label_config})["id"])

    def import_tasks(self, pid: int, tasks: list[dict[str, Any]]) -> int:
        """One import request; checks the project's task count afterwards (a short import still says 201)."""
        self.post(f"/api/projects/{pid}/import", tasks)
        n = int(self.get(f"/api/projects/{pid}")["task_number"])
        if n != len(tasks):
            raise RuntimeError(f"project {pid}: {n} tasks after importing {len(tasks)}")
        return n

    def project(self, pid: int) -> dict[str, Any]:
        return self.get(f"/api/projects/{pid}")

    def predictions(self, pid: int) -> list[dict[str, Any]]:
        return self.get("/api/predictions", project=pid)


class BackendProcess:
    """``.venv/bin/lasl serve`` on 127.0.0.1 as a subprocess in its own process group."""

    def __init__(self, model_dir: Path, log_path: Path, env: Mapping[str, str], threads: int = 8) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.env = dict(os.environ)
        self.env.update({"MODEL_DIR": str(model_dir), "LASL_TORCH_THREADS": "1", "LOG_LEVEL": "INFO"})
        self.env.update(env)
        self.threads = threads
        self.proc: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "BackendProcess":
        exe = REPO / ".venv" / "bin" / "lasl"
        argv = [str(exe) if exe.exists() else "lasl", "serve", "--host", "127.0.0.1", "--port", str(self.port), "--threads", str(self.threads)]
        _log(f"starting backend: {' '.join(argv)} (log {self.log_path})")
        self.proc = start_process_group(argv, self.env, self.log_path, cwd=REPO)
        try:
            wait_http_ok(f"{self.url}/health", 120, self.proc, expect={"status": "UP"}, log_path=self.log_path)
        except BaseException:
            stop_process_group(self.proc)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None:
            stop_process_group(self.proc, grace=30)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


# ---- request bodies and checks -----------------------------------------------------------------------
def predict_body(pid: int, texts: Sequence[str], label_config: str, first_id: int = 1) -> dict[str, Any]:
    """A /predict body shaped like Label Studio 1.23's (PROTOCOL.md §10.3)."""
    return {
        "tasks": [{"id": first_id + i, "data": {"text": t}, "project": pid, "annotations": [], "predictions": []} for i, t in enumerate(texts)],
        "project": f"{pid}.1700000000",
        "label_config": label_config,
        "params": {"login": None, "password": None, "context": None},
    }


def check_predict_response(status: int, raw: bytes, texts: Sequence[str], labels: Sequence[str]) -> tuple[str | None, list[str]]:
    """(error or None, model versions seen). An error is a non-200, a body that is not
    ``{"results": [...]}`` with one result per task, or a region whose offsets/text/label are invalid."""
    if status != 200:
        return f"http_{status}", []
    try:
        body = json.loads(raw)
    except ValueError:
        return "bad_json", []
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list) or len(results) != len(texts):
        return "wrong_result_count", []
    versions = []
    for text, res in zip(texts, results):
        if not isinstance(res, dict) or not isinstance(res.get("result"), list):
            return "bad_result", versions
        score = res.get("score")
        if not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0:
            return "bad_score", versions
        v = res.get("model_version")
        if not isinstance(v, str) or not v:
            return "bad_model_version", versions
        versions.append(v)
        for r in res["result"]:
            val = r.get("value") if isinstance(r, dict) else None
            if not isinstance(val, dict):
                return "bad_region", versions
            s, e = val.get("start"), val.get("end")
            if not (isinstance(s, int) and isinstance(e, int) and 0 <= s < e <= len(text)):
                return "bad_offsets", versions
            if val.get("text") != text[s:e]:
                return "bad_region_text", versions
            if not isinstance(val.get("labels"), list) or not val["labels"] or val["labels"][0] not in labels:
                return "bad_label", versions
    return None, versions


def annotated_task(text: str, entities: Sequence[Any], labels: Sequence[str]) -> dict[str, Any]:
    result = [
        {"from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": e.start, "end": e.end, "text": text[e.start : e.end], "labels": [e.label]}}
        for e in entities
        if e.label in labels
    ]
    return {"data": {"text": text}, "annotations": [{"result": result, "lead_time": 1.0}]}


def _near_400(texts: Sequence[str], n: int) -> list[str]:
    """``n`` texts (cycled if needed) as close to 400 characters as possible."""
    ranked = sorted(texts, key=lambda t: abs(len(t) - 400))[: max(n, 1)]
    return [ranked[i % len(ranked)] for i in range(n)]


def _metrics(backend_url: str, pid: int, auth: tuple[str, str] | None = None) -> dict[str, Any]:
    c = HttpClient(backend_url, auth=auth, timeout=30)
    try:
        return c.json("GET", "/metrics")["projects"].get(str(pid), {})
    finally:
        c.close()


def _imports_in_log(log: str, pid: int) -> list[tuple[int, float]]:
    return [(int(n), float(s)) for n, s in re.findall(rf"project {pid}: imported (\d+) predictions in ([0-9.]+) s", log)]


# ---- the measurements --------------------------------------------------------------------------------
def _texts_and_gold(records: Sequence[Any], n: int, seed: int) -> list[Any]:
    """``n`` records: the given ones first, then synthetic ones of CCKS-like length."""
    out = list(records[:n])
    if len(out) < n:
        from .synthetic import make_records

        out += make_records(n - len(out), seed=seed, mean_chars=418)
    return out


def measure_queue(api: LSApi, ls_url: str, token: str, backend: BackendProcess, recs: Sequence[Any], n_labeled: int, deadline_s: float) -> tuple[dict[str, Any], int, str, list[str]]:
    cfg = ner_label_config(LABELS6)
    pid = api.create_project("bench queue", cfg)
    tasks = [annotated_task(r.text, r.entities, LABELS6) for r in recs[:n_labeled]]
    tasks += [{"data": {"text": r.text}} for r in recs[n_labeled:]]
    t = time.monotonic()
    api.import_tasks(pid, tasks)
    _log(f"queue: project {pid}: imported {n_labeled} annotated + {len(recs) - n_labeled} unlabeled tasks in {time.monotonic() - t:.1f} s")
    ml_id = connect_backend(ls_url, token, pid, backend.url, "lasl-bench")
    runs_ok_before = _runs_ok(backend.url, pid)
    load_before = loadavg()
    t0 = time.monotonic()
    api.post(f"/api/ml/{ml_id}/train", {})
    trigger_answer_s = time.monotonic() - t0
    _log(f"queue: START_TRAINING sent through Label Studio ({trigger_answer_s:.2f} s); waiting for the new version")
    version, t_version, _ = _wait_for_version(api, backend.url, pid, t0, deadline_s, runs_ok_before, "queue")
    # ask for the next task first and check it against the version's scores afterwards, so the time is
    # Label Studio's, not that of this script's listing of every prediction
    expected: set[Any] | None = None
    t_next, served, tries = None, None, 0
    while time.monotonic() - t0 < deadline_s and tries < 200:
        tries += 1
        served = api.get(f"/api/projects/{pid}/next").get("id")
        t_served = time.monotonic() - t0
        if expected is None:
            unlabeled_scores = {p["task"]: p["score"] for p in api.predictions(pid) if p.get("model_version") == version}
            lowest = min(unlabeled_scores.values())
            expected = {tid for tid, s in unlabeled_scores.items() if s == lowest}
        if served in expected:
            t_next = t_served
            break
        time.sleep(0.25)
    load_after = loadavg()
    m = _metrics(backend.url, pid)
    meta = _read_meta(backend, pid, version)
    imports = _imports_in_log(backend.log_text(), pid)
    follow_ups = _follow_up_versions(backend, pid, version, t0, deadline_s)
    res = {
        "labeled_tasks": n_labeled,
        "unlabeled_tasks": len(recs) - n_labeled,
        "train_settings": _effective_settings(backend.env),
        "trigger_http_s": round(trigger_answer_s, 3),
        "trigger_to_model_version_s": round(t_version, 2),
        "trigger_to_reordered_queue_s": None if t_next is None else round(t_next, 2),
        "next_served_lowest_score": t_next is not None,
        "next_tries": tries,
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
        "follow_up_versions": follow_ups,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }
    _log(f"queue: version {version} after {t_version:.1f} s, reordered queue after {res['trigger_to_reordered_queue_s']} s")
    return res, pid, version, cfg


def _follow_up_versions(backend: BackendProcess, pid: int, first: str, t0: float, deadline_s: float) -> list[dict[str, Any]]:
    """The CONTINUE_TRAINING runs that follow a budget-limited first run: wait (bounded) until the
    trainer is idle, then list every version after ``first`` with its time since the trigger and F1s."""
    seen: dict[str, float] = {}
    polls = 0
    while time.monotonic() - t0 < deadline_s and polls < 10_000:
        polls += 1
        m = _metrics(backend.url, pid)
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
        meta = _read_meta(backend, pid, v)
        out.append({"version": v, "at_s": at, "reason": meta.get("reason"), "train_s": meta.get("train_seconds"),
                    "steps": meta.get("steps"), "dev_f1": meta.get("dev_f1"), "f1_held_out": meta.get("f1_held_out")})
    return out


def _read_meta(backend: BackendProcess, pid: int, version: str) -> dict[str, Any]:
    from ..serving.store import ModelStore

    try:
        return ModelStore(backend.env["MODEL_DIR"]).read_meta(pid, version)
    except Exception as exc:  # noqa: BLE001 - a missing number must not lose the others
        _log(f"cannot read meta.json of {version}: {exc}")
        return {}


def measure_predict(backend_url: str, pid: int, cfg: str, texts: Sequence[str], n_single: int, n_batch: int, deadline_s: float) -> dict[str, Any]:
    client = HttpClient(backend_url)
    singles = _near_400(texts, n_single)
    errors: dict[str, int] = {}
    versions: set[str] = set()

    def one(batch: Sequence[str]) -> float:
        status, raw, dt = client.request("POST", "/predict", predict_body(pid, batch, cfg))
        err, vs = check_predict_response(status, raw, batch, LABELS6)
        versions.update(vs)
        if err:
            errors[err] = errors.get(err, 0) + 1
        return dt

    for t in singles[:5]:  # warm-up (the first request loads the model)
        one([t])
    load_before = loadavg()
    lat1: list[float] = []
    t0 = time.monotonic()
    for t in singles:
        if time.monotonic() - t0 > deadline_s / 2:
            break
        lat1.append(one([t]))
    load_mid = loadavg()
    lat100: list[float] = []
    pool = list(texts) * (1 + 100 // max(1, len(texts)))  # always 100 records per batch
    n_recs = 0
    t1 = time.monotonic()
    for i in range(n_batch):
        if time.monotonic() - t1 > deadline_s / 2:
            break
        start = (i * 100) % max(1, len(pool) - 99)
        lat100.append(one(pool[start : start + 100]))
        n_recs += len(pool[start : start + 100])
    load_after = loadavg()
    client.close()
    p1 = {k: round(v * 1000, 1) for k, v in percentiles(lat1).items()}
    p100 = {k: round(v * 1000, 1) for k, v in percentiles(lat100).items()}
    chars1 = sum(len(t) for t in singles[: len(lat1)]) / max(1, len(lat1))
    res = {
        "single_requests": len(lat1),
        "single_mean_chars": round(chars1, 1),
        "single_p50_ms": p1["p50"],
        "single_p95_ms": p1["p95"],
        "single_p99_ms": p1["p99"],
        "single_max_ms": round(max(lat1) * 1000, 1) if lat1 else None,
        "batch100_requests": len(lat100),
        "batch100_p50_ms": p100["p50"],
        "batch100_p95_ms": p100["p95"],
        "batch100_records_per_s": round(n_recs / sum(lat100), 1) if lat100 else None,
        "errors": errors,
        "model_versions": sorted(versions),
        "loadavg_before": load_before,
        "loadavg_between": load_mid,
        "loadavg_after": load_after,
    }
    _log(f"predict: 1 record p50 {res['single_p50_ms']} ms p95 {res['single_p95_ms']} ms; 100 records p50 {res['batch100_p50_ms']} ms")
    return res


def profile_single(model_dir: Path, pid: int, version: str, texts: Sequence[str], n: int = 30) -> dict[str, Any]:
    """In-process breakdown of one ~400-character record (1 torch thread, like the server)."""
    import torch

    from ..ner.batching import collate, make_chunks
    from ..ner import NerModel
    from ..serving.store import ModelStore

    torch.set_num_threads(1)
    model = NerModel.load(ModelStore(model_dir).model_path(pid, version))
    sample = _near_400(texts, n)
    model.predict(sample[:3])
    tagger = model.served
    enc, crf, lpn, full, nolpn = [], [], [], [], []
    load_before = loadavg()
    with torch.no_grad():
        for t in sample:
            s = time.perf_counter()
            model.predict([t])
            full.append(time.perf_counter() - s)
            s = time.perf_counter()
            model.predict([t], with_lossnet=False)
            nolpn.append(time.perf_counter() - s)
            chunks = make_chunks([t], model.encode, model.max_len)
            ids, mask, _ = collate(chunks)
            s = time.perf_counter()
            em, layers = tagger(ids, mask)
            enc.append(time.perf_counter() - s)
            s = time.perf_counter()
            b = tagger.bounds(em, mask, with_marginals=True)
            crf.append(time.perf_counter() - s)
            if model.lossnet is not None:
                s = time.perf_counter()
                model.lossnet.predict_loss(layers, mask, b)
                lpn.append(time.perf_counter() - s)
    med = lambda xs: round(percentiles(xs, (50,))["p50"] * 1000, 2) if xs else None  # noqa: E731
    spec = getattr(tagger.encoder, "spec", {})
    return {
        "records": len(sample),
        "chunks_per_record": len(make_chunks([sample[0]], model.encode, model.max_len)),
        "encoder": {k: spec.get(k) for k in ("kind", "emb_dim", "hidden", "layers") if k in spec},
        "model_predict_p50_ms": med(full),
        "model_predict_without_lossnet_p50_ms": med(nolpn),
        "encoder_forward_p50_ms": med(enc),
        "crf_bounds_marginals_p50_ms": med(crf),
        "lossnet_p50_ms": med(lpn),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
    }


#: seconds between two "has the project got the new model_version yet?" questions to Label Studio
LS_POLL_S = 2.0


def _runs_ok(backend_url: str, pid: int) -> int:
    return int(_metrics(backend_url, pid).get("training", {}).get("runs_ok") or 0)


def _effective_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The training settings the backend ran with: its environment read as the backend reads it, so a
    report stays right when a default changes (``LASL_LPN_LAYERS`` went from 2 to 0 in session 7)."""
    from ..config import Settings

    s = Settings.from_env(env)
    return {
        "LASL_EPOCHS": s.epochs, "LASL_MIN_STEPS": s.min_steps, "LASL_MAX_STEPS": s.max_steps,
        "LASL_TORCH_THREADS": s.torch_threads, "LASL_TRAIN_SECONDS": s.train_seconds, "LASL_TRAIN_THREADS": s.train_threads,
        "LASL_CONTINUE_RUNS": s.continue_runs, "LASL_LPN_LAYERS": s.lpn_layers,
    }


def _wait_for_version(api: LSApi, backend_url: str, pid: int, t0: float, deadline_s: float, runs_ok_before: int, what: str) -> tuple[str, float, list[float]]:
    """Wait until Label Studio's ``project.model_version`` names a lasl version; returns it, the seconds
    since ``t0`` and the latency of each question to Label Studio (ms).

    Label Studio is asked only every LS_POLL_S while the backend's run is going, and right away once the
    backend has finished a run (its ``runs_ok`` grew, counted after the PATCH) or is not running:
    GET /api/projects/{id} aggregates over the whole project (~140 ms at 10,000 tasks), so asking 4x a
    second, as this benchmark did before, loaded the 2 cores it measures. The backend's own /metrics is
    cheap and is polled every 0.25 s."""
    ls_ms: list[float] = []
    next_ls, polls = t0, 0
    while time.monotonic() - t0 < deadline_s and polls < 100_000:
        polls += 1
        tr = _metrics(backend_url, pid).get("training", {})
        status = tr.get("status")
        if status == "failed" and tr.get("last_error"):
            raise RuntimeError(f"training failed: {tr['last_error']}")
        if polls % 60 == 0:
            _log(f"{what}: {time.monotonic() - t0:.0f} s, training {status} {tr.get('progress')}")
        now = time.monotonic()
        if status != "running" or int(tr.get("runs_ok") or 0) > runs_ok_before or now >= next_ls:
            mv = api.project(pid).get("model_version") or ""
            ls_ms.append(1000 * (time.monotonic() - now))
            next_ls = now + LS_POLL_S
            if mv.startswith("lasl-v"):
                return mv, time.monotonic() - t0, ls_ms
        time.sleep(0.25)
    raise TimeoutError(f"{what}: no new model_version within {deadline_s:.0f} s")


def measure_push(api: LSApi, backend: BackendProcess, recs: Sequence[Any], n_pool: int, pool_texts: Sequence[str], deadline_s: float) -> dict[str, Any]:
    cfg = ner_label_config(LABELS6)
    pid = api.create_project(f"bench push {n_pool}", cfg)
    tasks = [annotated_task(r.text, r.entities, LABELS6) for r in recs[:5]]
    tasks += [{"data": {"text": t}} for t in pool_texts[:n_pool]]
    t = time.monotonic()
    api.import_tasks(pid, tasks)
    _log(f"push {n_pool}: project {pid}: imported {len(tasks)} tasks in {time.monotonic() - t:.1f} s; START_TRAINING to the backend")
    client = HttpClient(backend.url)
    runs_ok_before = _runs_ok(backend.url, pid)
    load_before = loadavg()
    t0 = time.monotonic()
    client.json("POST", "/webhook", {"action": "START_TRAINING", "project": {"id": pid, "label_config": cfg}})
    version, t_version, ls_ms = _wait_for_version(api, backend.url, pid, t0, deadline_s, runs_ok_before, f"push {n_pool}")
    m = _metrics(backend.url, pid)
    for _ in range(200):  # the run records its duration right after the PATCH and the swap
        if m.get("training", {}).get("status") != "running":
            break
        time.sleep(0.1)
        m = _metrics(backend.url, pid)
    load_after = loadavg()
    meta = _read_meta(backend, pid, version)
    imports = _imports_in_log(backend.log_text(), pid)
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
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate_as_exit)
    t_start = time.monotonic()
    sz = dict(sizes or {})
    n_single, n_batch = (40, 5) if quick else (200, 20)
    n_single, n_batch = int(sz.get("n_single", n_single)), int(sz.get("n_batch", n_batch))
    push_sizes = list(sz.get("push_sizes", [1000] if quick else [1000, 10000]))
    q_labeled, q_total = int(sz.get("queue_labeled", 300)), int(sz.get("queue_total", 1000))
    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "loadavg_start": loadavg(),
                    "note": "shared machine: other processes run beside the benchmark; see loadavg_* (1, 5, 15 min)"},
        "quick": quick,
    }
    recs = _texts_and_gold(records, q_total, seed=7)
    pool_recs = list(recs)
    if max(push_sizes) > len(pool_recs):
        from .synthetic import make_records

        pool_recs += make_records(max(push_sizes) - len(pool_recs), seed=8, mean_chars=418)
    pool_texts = [r.text for r in pool_recs]

    def save() -> None:
        if partial_path is not None:
            out["wall_s"] = round(time.monotonic() - t_start, 1)
            Path(partial_path).parent.mkdir(parents=True, exist_ok=True)
            Path(partial_path).write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    with ExitStack() as stack:
        tmp = Path(workdir) if workdir else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lasl-bench-server-")))
        _log(f"work dir {tmp}")
        venv = ensure_ls_venv()
        ls = stack.enter_context(LabelStudioServer(tmp / "ls", ls_venv=venv))
        api = LSApi(ls.url, ls.token)
        common = {"LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": ls.token, "LASL_TRAIN_EVERY": "1000000", "LASL_RETRY_BACKOFF_S": "1"}
        if not sz.get("push_only"):
            with BackendProcess(tmp / "models-a", tmp / "backend-a.log", dict(common, **sz.get("queue_env", {}))) as backend:
                queue, pid, version, cfg = measure_queue(api, ls.url, ls.token, backend, recs, q_labeled, 900)
                out[f"queue_{q_labeled}_labeled_{q_total - q_labeled}_unlabeled"] = queue
                save()
                unlabeled_texts = [r.text for r in recs[q_labeled:]]
                out["predict"] = measure_predict(backend.url, pid, cfg, unlabeled_texts, n_single, n_batch, 120 if quick else 300)
                save()
                try:
                    from ..serving.store import ModelStore

                    serving = ModelStore(backend.env["MODEL_DIR"]).current(pid) or version  # follow-ups may have pruned the first
                    out["predict_profile_in_process"] = profile_single(Path(backend.env["MODEL_DIR"]), pid, serving, unlabeled_texts, 15 if quick else 30)
                except Exception as exc:  # noqa: BLE001 - a profile is extra
                    out["predict_profile_in_process"] = {"error": f"{type(exc).__name__}: {exc}"}
                save()
        capped = dict(common, LASL_EPOCHS="1", LASL_MIN_STEPS="10", LASL_MAX_STEPS="10")
        with BackendProcess(tmp / "models-b", tmp / "backend-b.log", capped) as backend:
            for n in push_sizes:
                try:
                    out[f"push_{n}"] = measure_push(api, backend, recs, n, pool_texts, 1800)
                except (RuntimeError, TimeoutError) as exc:  # keep the other numbers
                    out[f"push_{n}"] = {"error": f"{type(exc).__name__}: {exc}"}
                save()
    out["machine"]["loadavg_end"] = loadavg()
    out["wall_s"] = round(time.monotonic() - t_start, 1)
    out["summary"] = _summary(out)
    return out


def _summary(out: dict[str, Any]) -> dict[str, Any]:
    """The issue-4 targets next to the measured numbers."""
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


if __name__ == "__main__":  # pragma: no cover - `lasl bench --server` is the usual entry point
    import argparse

    ap = argparse.ArgumentParser(description="server benchmark only (lasl bench --server runs it after the model benches)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", default=None, help="directory with train.jsonl (default ../shared/data/ccks2019, else synthetic)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--push-only", action="store_true", help="only the re-score-and-push measurements (1,000 and 10,000 tasks)")
    a = ap.parse_args()
    from .bench import default_data_dir, load_records

    d = Path(a.data) if a.data else default_data_dir()
    recs_, src = load_records(d, 1000)
    _log(f"records: {src}")
    partial = a.out.with_suffix(".partial.json") if a.out else None
    report = {"data": src, "server": run_server_bench(recs_, quick=a.quick, partial_path=partial, sizes={"push_only": True} if a.push_only else None)}
    if partial is not None and partial.exists():
        partial.unlink()
    text = json.dumps(report, ensure_ascii=False, indent=1)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n", encoding="utf-8")
    print(text)
