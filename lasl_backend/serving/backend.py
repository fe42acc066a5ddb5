"""``LaslBackend``: one Label Studio project's model, predictions and training runs.

The shape follows label-studio-ml 2.x (``setup``, ``predict(tasks, context=None, **kwargs)``,
``fit(event, data, **kwargs)``, ``model_version``), but it is our own class: the published
label-studio-ml is the old 1.x API (PROTOCOL.md header).

Serving
  * The serving model is one immutable :class:`ServedModel` (model, frozen DBS normalizer, version).
    ``predict`` takes a reference to it under a lock and computes outside the lock; a training run
    builds and saves the new one completely, then swaps the reference. A /predict therefore sees the
    old model or the new one, never a mix, and never waits for training.
  * It is loaded lazily, on the first ``predict`` (``/setup`` must not load: PROTOCOL.md §10.2), from
    ``ModelStore.latest_good``; a corrupt newest version falls back to the previous complete one.

Task score (``results[i].score``; Label Studio serves the lowest first)
  * Label Studio 1.23.2 drops imported predictions whose score is outside [0, 1] ("Score must be
    between 0.00 and 1.00 inclusive", only in its log; found by the e2e test), so every score is
    mapped into [0, 1].
  * With a model: x = ``-log rank`` of Eq. 6, DBS = Λ_t·softmax(L_min) + (1-Λ_t)·softmax(L_pred),
    with Λ_t and both softmax denominators frozen from the unlabeled pool of that model version
    (``DBSNormalizer``), then ``score = (1 + x / (1 + |x|)) / 2``: strictly increasing in x, so the
    order is exactly DBS order (higher rank = more informative = lower score), and it keeps float64
    resolution even for the huge x of saturated pools, where a logistic would tie at 1.0. Pool
    records have x >= 0 (scores in [0.5, 1)); a record scored later that beats the whole pool goes
    below 0.5. The score of a record sent to /predict later equals the score it had in the pool.
  * Without an LPN output or normalizer (should not happen with LASL training): ``P(y_max|x)``, i.e.
    least-confidence order.
  * Cold start (no model yet): ``1 / (1 + n_chars)``, version ``lasl-cold-start``, no regions: longer
    records come first, because before any model exists the best guess for "most to learn from one
    annotation" is "most text, hence most entities"; it is deterministic, so the queue is stable.
  * A task we cannot read gets ``result: []`` and score ``1.0`` (served last), so Label Studio's
    per-batch checks (one entry per task, in order) still pass.

Training run (``fit``/``train``): fetch tasks through the SDK → D_L / D_U → hold back a fixed slice of
D_L (by task id hash) for F1 → ``train_lasl`` (Mean Teacher + LPN, fine-tuned from the serving model
when the label set is unchanged) → score the pool, freeze the normalizer → write the version
atomically → push one prediction per unlabeled task → PATCH ``project.model_version`` → only then
point ``current`` at it and swap. Any failure before the swap leaves the old model serving.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlparse

import numpy as np

from ..config import Settings
from ..data import Entity
from ..labelstudio import LabelConfigError, NerConfig, parse_label_config
from ..labelstudio import (
    LabeledTask,
    LabelStudioError,
    LabelStudioRequestError,
    LSClient,
)
from .store import ModelStore, StoreError, check_project_id

__all__ = [
    "LaslBackend",
    "ServedModel",
    "TaskIssue",
    "NotEnoughLabeledError",
    "NoConnectionError",
    "COLD_START_VERSION",
    "UNREADABLE_SCORE",
    "cold_start_score",
    "dbs_score",
]

log = logging.getLogger(__name__)

COLD_START_VERSION = "lasl-cold-start"
#: reason of a follow-up run that continues a run cut short by its time budget
CONTINUE_REASON = "CONTINUE_TRAINING"
UNREADABLE_SCORE = 1.0


class NoConnectionError(LabelStudioRequestError):
    """Neither LABEL_STUDIO_URL/LABEL_STUDIO_API_KEY nor a /setup hostname/token is known."""


class NotEnoughLabeledError(RuntimeError):
    """Fewer annotated tasks than ``LASL_MIN_LABELED``: nothing to train on yet (not a fault)."""


@dataclass(frozen=True)
class ServedModel:
    """What /predict uses; never mutated after construction (swapped as a whole)."""

    version: str
    model: Any  # NerModel
    normalizer: Any  # DBSNormalizer | None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskIssue:
    """A task /predict could not read, reported next to the placeholder result."""

    index: int
    task_id: Any
    error: str

    def to_dict(self) -> dict[str, Any]:
        tid = self.task_id if isinstance(self.task_id, (int, str)) and not isinstance(self.task_id, bool) else None
        return {"index": self.index, "task_id": tid, "error": self.error}


def cold_start_score(n_chars: int) -> float:
    """Score before any model exists: longer records first (see the module doc)."""
    return 1.0 / (1.0 + max(0, int(n_chars)))


def _unit(x: float | None, fallback: float = UNREADABLE_SCORE) -> float:
    """Clamp into [0, 1] (Label Studio's accepted range); non-finite → ``fallback``."""
    if x is None or not math.isfinite(x):
        return fallback
    return float(min(1.0, max(0.0, x)))


def dbs_score(neg_log_rank: float) -> float:
    """Map x = -log rank (any real) strictly increasingly into (0, 1): ``(1 + x/(1+|x|)) / 2``."""
    if not math.isfinite(neg_log_rank):
        return 0.0 if neg_log_rank == -math.inf else 1.0  # NaN: broken, serve last
    return _unit(0.5 * (1.0 + neg_log_rank / (1.0 + abs(neg_log_rank))))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _holdout_key(task_id: int, seed: int) -> float:
    """A stable uniform number per task: the same tasks stay held back across runs, so F1 of
    successive versions is measured on (mostly) the same slice and never trained on."""
    h = hashlib.sha256(f"lasl-holdout:{seed}:{task_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


class LaslBackend:
    """Per-project backend. Construct cheaply; nothing is loaded until the first ``predict``."""

    def __init__(
        self,
        project_id: object,
        label_config: str | None = None,
        settings: Settings | None = None,
        store: ModelStore | None = None,
        ls_factory: Callable[[str, str], LSClient] | None = None,
        train_fn: Callable[..., Any] | None = None,
    ) -> None:
        self.project_id = check_project_id(project_id)
        self.settings = settings or Settings.from_env()
        self.store = store or ModelStore(self.settings.model_dir)
        self._ls_factory = ls_factory
        self._train_fn = train_fn
        self._ner: NerConfig | None = None
        self._label_config: str | None = None
        self._served: ServedModel | None = None
        self._swap_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._load_done = False
        self._setup_url: str | None = None
        self._setup_token: str | None = None
        self._clients: dict[tuple[str, str], LSClient] = {}
        self._clients_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._continue_chain = 0  # follow-up runs in a row (see _should_continue)
        self._state: dict[str, Any] = {
            "status": "idle",
            "reason": None,
            "started_at": None,
            "finished_at": None,
            "duration_s": None,
            "progress": None,
            "runs_ok": 0,
            "runs_failed": 0,
            "last_error": None,
            "last_error_at": None,
            "last_run": None,
        }
        self._predict_stats = {"requests": 0, "tasks": 0, "unreadable": 0}
        self._known_annotations: set[int] = set()
        if label_config is not None:
            self.set_label_config(label_config)

    # ---- configuration --------------------------------------------------------------------------
    def set_label_config(self, label_config: object) -> NerConfig:
        """Parse and adopt ``label_config`` (raises :class:`LabelConfigError`, keeping the old one)."""
        ner = parse_label_config(label_config, self.settings.labels_name)
        self._ner, self._label_config = ner, label_config  # type: ignore[assignment]
        return ner

    @property
    def ner(self) -> NerConfig:
        if self._ner is None:
            raise LabelConfigError(f"no label config known for project {self.project_id} yet")
        return self._ner

    @property
    def has_label_config(self) -> bool:
        return self._ner is not None

    def set_connection(self, hostname: object, access_token: object) -> None:
        """Remember the ``hostname``/``access_token`` that /setup sent (used only when the environment
        gives no LABEL_STUDIO_URL/LABEL_STUDIO_API_KEY). Invalid values are ignored."""
        if not isinstance(hostname, str) or not isinstance(access_token, str) or not access_token.strip():
            return
        p = urlparse(hostname)
        if p.scheme not in ("http", "https") or not p.netloc or p.username or p.password:
            return
        self._setup_url, self._setup_token = hostname.rstrip("/"), access_token.strip()

    @property
    def has_connection(self) -> bool:
        s = self.settings
        return bool(s.label_studio_url and s.label_studio_api_key) or bool(self._setup_url and self._setup_token)

    def ls(self) -> LSClient:
        """The Label Studio client: environment credentials first, else what /setup sent."""
        s = self.settings
        if s.label_studio_url and s.label_studio_api_key:
            url, key = s.label_studio_url, s.label_studio_api_key
        elif self._setup_url and self._setup_token:
            url, key = self._setup_url, self._setup_token
        else:
            raise NoConnectionError(
                "no Label Studio connection: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY "
                "(or connect the backend in Label Studio so that /setup sends a token)"
            )
        with self._clients_lock:
            client = self._clients.get((url, key))
            if client is None:
                factory = self._ls_factory or (lambda u, k: LSClient(u, k, timeout=s.ls_timeout))
                client = factory(url, key)
                self._clients[(url, key)] = client
            return client

    def knows_annotation(self, annotation_id: int) -> bool:
        """Whether the last training run's fetch saw this annotation (webhook deletion checks)."""
        with self._state_lock:
            return annotation_id in self._known_annotations

    # ---- label-studio-ml shape ------------------------------------------------------------------
    def setup(self) -> None:
        """Called on every /setup: cheap and idempotent; never loads or trains (PROTOCOL.md §10.2)."""

    @property
    def model_version(self) -> str:
        """The serving version, without loading a model (a pointer-file read at most)."""
        served = self._served
        if served is not None:
            return served.version
        try:
            v = self.store.latest_good(self.project_id)
        except (OSError, StoreError):
            v = None
        return v or COLD_START_VERSION

    def get(self, key: str) -> Any:
        """label-studio-ml compatibility: ``get("model_version")``."""
        return self.model_version if key == "model_version" else None

    # ---- loading and swapping -------------------------------------------------------------------
    def _load_version(self, version: str) -> ServedModel:
        from ..ner import NerModel
        from ..strategies.dbs import DBSNormalizer

        model = NerModel.load(self.store.model_path(self.project_id, version), device=self.settings.device)
        nd = self.store.read_normalizer(self.project_id, version)
        normalizer = DBSNormalizer.from_dict(nd) if nd else None
        return ServedModel(version, model, normalizer, self.store.read_meta(self.project_id, version))

    def load_latest(self) -> ServedModel | None:
        """Load the latest good version (falling back to older complete ones if it is unreadable)."""
        latest = self.store.latest_good(self.project_id)
        if latest is None:
            return None
        candidates = [latest] + [v for v in reversed(self.store.list_versions(self.project_id)) if v != latest]
        for v in candidates:
            try:
                served = self._load_version(v)
            except Exception as exc:  # noqa: BLE001 - a corrupt checkpoint must not stop serving
                log.error("project %s: cannot load version %s (%s: %s); trying an older one", self.project_id, v, type(exc).__name__, exc)
                continue
            log.info("project %s: serving version %s", self.project_id, v)
            return served
        return None

    def current(self) -> ServedModel | None:
        """The serving model, loading it on first use (one loader; concurrent callers wait)."""
        served = self._served
        if served is not None or self._load_done:
            return served
        with self._load_lock:
            if not self._load_done:
                loaded = self.load_latest()
                with self._swap_lock:
                    if self._served is None:
                        self._served = loaded
                self._load_done = True
        return self._served

    def swap(self, served: ServedModel) -> None:
        with self._swap_lock:
            self._served = served
            self._load_done = True

    # ---- prediction -----------------------------------------------------------------------------
    def read_task_text(self, task: object, ner: NerConfig | None = None) -> str:
        """The task's text (the exact string; offsets index it), or ValueError saying why not."""
        if not isinstance(task, dict):
            raise ValueError(f"task is a {type(task).__name__}, not an object")
        data = task.get("data")
        if not isinstance(data, dict):
            raise ValueError("task has no 'data' object")
        key = (ner or self.ner).value_key
        if key not in data:
            raise ValueError(f"task data has no field {key!r} (the label config's <Text value=\"${key}\">)")
        text = data[key]
        if not isinstance(text, str):
            raise ValueError(f"task data field {key!r} is a {type(text).__name__}, not a string")
        if len(text) > self.settings.max_text_chars:
            raise ValueError(f"text has {len(text)} characters; the limit is {self.settings.max_text_chars} (LASL_MAX_TEXT_CHARS)")
        return text

    def _scores(self, served: ServedModel, rs: Sequence[Any]) -> list[float]:
        if not rs:
            return []
        fallback = [_unit(float(r.p_max)) for r in rs]
        norm = served.normalizer
        if norm is None or any(r.l_pred is None for r in rs):
            return fallback
        try:
            lr = norm.log_rank(
                np.array([r.l_min for r in rs], dtype=np.float64),
                np.array([r.l_pred for r in rs], dtype=np.float64),
                np.array([r.n_chars for r in rs], dtype=np.float64),
            )
        except Exception as exc:  # noqa: BLE001 - e.g. a non-finite loss on one record
            log.warning("project %s: DBS score failed (%s); scoring this batch by confidence", self.project_id, exc)
            return fallback
        return [dbs_score(-float(x)) for x in lr]

    def _regions(self, text: str, rec: Any, ner: NerConfig) -> list[dict[str, Any]]:
        out = []
        for i, e in enumerate(rec.entities):
            if e.label not in ner.labels or not 0 <= e.start < e.end <= len(text):
                continue
            conf = float(e.score) if e.score is not None and math.isfinite(e.score) else 0.0
            out.append(
                {
                    "id": f"lasl{i}",
                    "from_name": ner.from_name,
                    "to_name": ner.to_name,
                    "type": "labels",
                    "value": {"start": int(e.start), "end": int(e.end), "text": text[e.start : e.end], "labels": [e.label]},
                    "score": min(1.0, max(0.0, conf)),
                }
            )
        return out

    def results_for(self, served: ServedModel, texts: Sequence[str], rs: Sequence[Any], ner: NerConfig | None = None) -> list[dict[str, Any]]:
        """One Label Studio prediction per text from the model's record scores (used by /predict and
        by the pool push, so both give identical scores for identical texts)."""
        ner = ner or self.ner
        scores = self._scores(served, rs)
        return [
            {"result": self._regions(t, r, ner), "score": s, "model_version": served.version}
            for t, r, s in zip(texts, rs, scores)
        ]

    def _model_predict(self, served: ServedModel, texts: list[str]) -> list[Any]:
        # workers: a one-record request runs its Bi-LSTM directions on two threads; a larger one its batches
        return served.model.predict(texts, max_batch=self.settings.predict_batch, workers=self.settings.score_workers)

    def predict_with_issues(self, tasks: Sequence[Any], context: Any = None) -> tuple[list[dict[str, Any]], list[TaskIssue]]:
        """One result per task, in order, plus the tasks that could not be read (or predicted)."""
        ner = self.ner  # raises LabelConfigError when no config is known
        issues: list[TaskIssue] = []
        texts: list[str | None] = []
        for i, task in enumerate(tasks):
            try:
                texts.append(self.read_task_text(task, ner))
            except ValueError as exc:
                texts.append(None)
                issues.append(TaskIssue(i, task.get("id") if isinstance(task, dict) else None, str(exc)))
        served = self.current()
        version = served.version if served is not None else COLD_START_VERSION
        results: list[dict[str, Any] | None] = [None] * len(texts)
        readable = [i for i, t in enumerate(texts) if t is not None]
        if served is not None and readable:
            batch = [texts[i] for i in readable]
            try:
                rs = self._model_predict(served, batch)  # type: ignore[arg-type]
                for i, res in zip(readable, self.results_for(served, batch, rs, ner)):  # type: ignore[arg-type]
                    results[i] = res
            except Exception as exc:  # noqa: BLE001 - isolate the task that breaks the model
                log.warning("project %s: batch prediction failed (%s); predicting task by task", self.project_id, type(exc).__name__)
                for i in readable:
                    try:
                        rs = self._model_predict(served, [texts[i]])  # type: ignore[list-item]
                        results[i] = self.results_for(served, [texts[i]], rs, ner)[0]  # type: ignore[list-item]
                    except Exception as exc2:  # noqa: BLE001
                        log.error("project %s: prediction failed for task index %d: %s", self.project_id, i, type(exc2).__name__)
                        issues.append(TaskIssue(i, tasks[i].get("id") if isinstance(tasks[i], dict) else None, "the model failed on this task"))
        elif served is None:
            for i in readable:
                results[i] = {"result": [], "score": cold_start_score(len(texts[i])), "model_version": version}  # type: ignore[arg-type]
        for i, r in enumerate(results):
            if r is None:
                results[i] = {"result": [], "score": UNREADABLE_SCORE, "model_version": version}
        issues.sort(key=lambda x: x.index)
        with self._state_lock:
            self._predict_stats["requests"] += 1
            self._predict_stats["tasks"] += len(tasks)
            self._predict_stats["unreadable"] += len(issues)
        return results, issues  # type: ignore[return-value]

    def predict(self, tasks: Sequence[Any], context: Any = None, **kwargs: Any) -> list[dict[str, Any]]:
        """label-studio-ml shape: one ``{"result", "score", "model_version"}`` per task, in order."""
        return self.predict_with_issues(tasks, context)[0]

    def score_new_tasks(self, task_ids: Sequence[int]) -> int:
        """Push predictions of the serving version for tasks imported after the last run.

        Why: once ``project.model_version`` names a static version, Label Studio stops live-predicting
        new tasks, and Uncertainty sampling serves only tasks holding a prediction of that version; new
        tasks would wait until every scored one is done. The tasks are read from Label Studio itself
        (the webhook's copy is not trusted), and scored with the same frozen normalizer as the pool.
        Returns the number pushed (0 at cold start: there is no version to match)."""
        served = self.current()
        if served is None or not task_ids:
            return 0
        ner = self.ner
        client = self.ls()
        tids, texts = [], []
        for tid in list(dict.fromkeys(task_ids))[:5000]:
            t = self._retry("get task", lambda tid=tid: client.get_task(tid))
            if not t or t.get("project") not in (None, self.project_id) or t.get("annotations"):
                continue
            try:
                texts.append(self.read_task_text(t, ner))
            except ValueError:
                continue
            tids.append(tid)
        if not tids:
            return 0
        rs = self._model_predict(served, texts)
        preds = [
            {"task": tid, "model_version": served.version, "score": r["score"], "result": r["result"]}
            for tid, r in zip(tids, self.results_for(served, texts, rs, ner))
        ]
        return int(self._retry("push predictions", lambda: client.push_predictions(self.project_id, preds, chunk=len(preds))))

    # ---- training -------------------------------------------------------------------------------
    def fit(self, event: str, data: Any = None, **kwargs: Any) -> dict[str, Any]:
        """label-studio-ml shape: run one training run now (the server calls it from its background
        trainer, never from a request thread). ``data`` may carry ``project.label_config``."""
        if isinstance(data, dict):
            proj = data.get("project")
            cfg = proj.get("label_config") if isinstance(proj, dict) else None
            if isinstance(cfg, str):
                try:
                    self.set_label_config(cfg)
                except LabelConfigError as exc:
                    log.warning("project %s: label config in the %s event is unusable: %s", self.project_id, event, exc)
        return self.train(reason=str(event))

    def request_stop(self) -> None:
        """Ask a running training loop to stop at its next step (server shutdown)."""
        self._stop.set()

    def _set_state(self, **kw: Any) -> None:
        with self._state_lock:
            self._state.update(kw)

    def _progress(self, row: dict[str, Any]) -> None:
        self._set_state(progress={k: row[k] for k in ("epoch", "total_epochs", "step", "loss", "dev_f1") if k in row})

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            from ..ner import TrainingCancelled

            raise TrainingCancelled("stop requested while waiting to retry")

    def _retry(self, what: str, fn: Callable[[], Any]) -> Any:
        """Call ``fn``; on a transient Label Studio error retry with exponential backoff."""
        attempts = 1 + self.settings.train_retries
        for k in range(attempts):
            try:
                return fn()
            except LabelStudioError as exc:
                if not exc.transient or k == attempts - 1:
                    raise
                delay = self.settings.retry_backoff_s * (2**k)
                log.warning("project %s: %s failed (%s); retry %d/%d in %.0f s", self.project_id, what, exc, k + 1, attempts - 1, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def train_config(self, first_run: bool = False) -> Any:
        """The run's settings. Every run, the first included, gets the wall-clock budget: the queue is
        reordered within about a minute of a trigger, and a model still learning continues in follow-up
        runs (see ``_should_continue``)."""
        from ..ner import TrainConfig

        s = self.settings
        kw: dict[str, Any] = dict(
            max_epochs=s.epochs,
            min_steps=s.min_steps,
            max_steps=s.max_steps or None,
            seed=s.seed,
            encoder=s.encoder,
            mean_teacher=True,
            lossnet="lpn",
            lpn_layers=s.lpn_layers,
            max_seconds=s.train_seconds or None,
            lpn_thread=s.train_threads >= 2,
            # a first run (no model yet) spends part of its budget on the tagger alone (TrainConfig doc)
            tagger_warmup_seconds=(s.train_seconds * s.first_run_warmup) if first_run and s.train_seconds else 0.0,
            device=s.device,
        )
        kw.update(dict(s.train_overrides))
        return TrainConfig(**kw)

    def split_holdout(self, labeled: Sequence[LabeledTask]) -> tuple[list[LabeledTask], list[LabeledTask]]:
        s = self.settings
        if s.holdout_fraction <= 0 or len(labeled) < s.holdout_min_labeled:
            return list(labeled), []
        held = [t for t in labeled if _holdout_key(t.task_id, s.seed) < s.holdout_fraction]
        train = [t for t in labeled if _holdout_key(t.task_id, s.seed) >= s.holdout_fraction]
        if not train:
            return list(labeled), []
        return train, held

    def train(self, reason: str = "manual") -> dict[str, Any]:
        """One complete training run (see the module doc). Raises on failure; the old model keeps serving."""
        from ..ner import TrainingCancelled

        t0 = time.monotonic()
        self._set_state(status="running", reason=reason, started_at=_now(), finished_at=None, duration_s=None, progress=None)
        try:
            summary = self._train(reason)
        except NotEnoughLabeledError as exc:
            self._set_state(status="waiting", finished_at=_now(), duration_s=round(time.monotonic() - t0, 3), last_error=str(exc), last_error_at=_now())
            raise
        except TrainingCancelled:
            self._set_state(status="cancelled", finished_at=_now(), duration_s=round(time.monotonic() - t0, 3))
            raise
        except Exception as exc:
            msg = f"{type(exc).__name__}: {exc}"
            with self._state_lock:
                self._state.update(status="failed", finished_at=_now(), duration_s=round(time.monotonic() - t0, 3), last_error=msg[:2000], last_error_at=_now())
                self._state["runs_failed"] += 1
            log.error("project %s: training run (%s) failed: %s", self.project_id, reason, msg)
            raise
        with self._state_lock:
            self._state.update(status="idle", finished_at=_now(), duration_s=round(time.monotonic() - t0, 3), last_run=summary, progress=None)
            self._state["runs_ok"] += 1
        return summary

    def _train(self, reason: str) -> dict[str, Any]:
        from ..strategies.base import PoolScores
        from ..strategies.dbs import DBSNormalizer
        from ..ner import train_lasl

        t0 = time.monotonic()
        started_at = _now()
        s = self.settings
        pid = self.project_id
        client = self.ls()
        if self._ner is None:
            project = self._retry("get project", lambda: client.get_project(pid))
            self.set_label_config(project.get("label_config"))
        ner = self.ner
        ds = self._retry("fetch tasks", lambda: client.fetch_dataset(pid, ner, s.max_text_chars))
        with self._state_lock:
            self._known_annotations = set(ds.annotation_ids)
        if len(ds.labeled) < s.min_labeled:
            raise NotEnoughLabeledError(f"{len(ds.labeled)} annotated task(s); training starts at {s.min_labeled} (LASL_MIN_LABELED)")
        train_tasks, held = self.split_holdout(ds.labeled)
        served = self.current()
        base = served.model if served is not None and list(served.model.labels) == list(ner.labels) else None
        t_train = time.monotonic()
        train = self._train_fn or train_lasl
        result = train(
            labeled=[t.to_record() for t in train_tasks],
            unlabeled_texts=[u.text for u in ds.unlabeled],
            labels=list(ner.labels),
            config=self.train_config(first_run=base is None),
            base=base,
            progress=self._progress,
            should_stop=self._stop.is_set,
        )
        model = result.model
        train_s = time.monotonic() - t_train
        out_of_time = bool(getattr(result, "out_of_time", False))
        prev_dev_f1 = served.meta.get("dev_f1") if base is not None and served is not None else None

        f1 = None
        if held:
            from ..metrics import entity_prf

            preds = model.predict([t.text for t in held], max_batch=s.predict_batch)
            prf = entity_prf([t.entities for t in held], [[Entity(e.start, e.end, e.label) for e in p.entities] for p in preds])
            f1 = prf["micro"]["f1"]

        t_score = time.monotonic()
        version = self.store.new_version_name(pid)
        round_t = int(version.split("-")[1][1:]) - 1
        pool_texts = [u.text for u in ds.unlabeled]
        rs = model.predict(pool_texts, max_batch=s.predict_batch, workers=s.score_workers) if pool_texts else []
        normalizer = None
        if rs and all(r.l_pred is not None for r in rs):
            normalizer = DBSNormalizer.from_pool(PoolScores.from_scores(rs, round=round_t), s.schedule)
        meta: dict[str, Any] = {
            "reason": reason,
            "started_at": started_at,
            "base_version": served.version if base is not None and served is not None else None,
            "labels": list(ner.labels),
            "label_config_names": {"from_name": ner.from_name, "to_name": ner.to_name, "value_key": ner.value_key},
            "n_labeled": len(ds.labeled),
            "n_trained": len(train_tasks),
            "n_entities": sum(len(t.entities) for t in ds.labeled),
            "n_held_out": len(held),
            "n_unlabeled": len(ds.unlabeled),
            "n_skipped_tasks": len(ds.skipped),
            "n_region_warnings": len(ds.warnings),
            "f1_held_out": f1,
            "dev_f1": getattr(result, "dev_f1", None),
            "served_tagger": getattr(result, "served", None),
            "steps": getattr(result, "steps", None),
            "lambda_t": normalizer.lambda_t if normalizer is not None else None,
            "schedule": s.schedule,
            "round": round_t,
            "train_seconds": round(train_s, 3),
            "out_of_time": out_of_time,
        }
        new = ServedModel(version, model, normalizer, meta)
        results = self.results_for(new, pool_texts, rs, ner)
        score_s = time.monotonic() - t_score

        def writer(d: Path) -> None:
            import json

            model.save(d / "model")
            if normalizer is not None:
                (d / "normalizer.json").write_text(json.dumps(normalizer.to_dict()), encoding="utf-8")

        meta["score_seconds"] = round(score_s, 3)
        meta["trained_at"] = _now()
        self.store.write_version(pid, version, writer, meta)
        new = ServedModel(version, model, normalizer, self.store.read_meta(pid, version))

        t_push = time.monotonic()
        pushed = 0
        if ds.unlabeled:
            preds = [
                {"task": u.task_id, "model_version": version, "score": r["score"], "result": r["result"]}
                for u, r in zip(ds.unlabeled, results)
            ]
            for i in range(0, len(preds), s.push_chunk):
                part = preds[i : i + s.push_chunk]
                pushed += self._retry("push predictions", lambda part=part: client.push_predictions(pid, part, chunk=len(part)))
            self._retry("set model_version", lambda: client.set_model_version(pid, version, s.uncertainty_sampling))
        push_s = time.monotonic() - t_push

        self.store.set_current(pid, version)
        self.swap(new)
        try:
            self.store.prune(pid, s.versions_kept)
        except OSError as exc:  # retention must never fail a run that already published
            log.warning("project %s: pruning old versions failed: %s", pid, exc)
        summary = dict(
            meta,
            version=version,
            pushed=pushed,
            finished_at=_now(),
            duration_s=round(time.monotonic() - t0, 3),
            push_seconds=round(push_s, 3),
            follow_up=self._should_continue(reason, out_of_time, meta["dev_f1"], prev_dev_f1),
        )
        log.info(
            "project %s: version %s serving (labeled %d, unlabeled %d, held-out F1 %s, Λ %s) in %.1f s",
            pid, version, len(ds.labeled), len(ds.unlabeled), "n/a" if f1 is None else f"{f1:.3f}",
            "n/a" if normalizer is None else f"{normalizer.lambda_t:.3f}", summary["duration_s"],
        )
        return summary

    def _should_continue(self, reason: str, out_of_time: bool, dev_f1: float | None, prev_dev_f1: float | None) -> bool:
        """Whether a run cut short by its time budget gets a follow-up run: yes while the model still
        improves (dev F1 up by more than 0.002, or nothing to compare yet: no dev set, no previous dev F1,
        or a previous F1 of 0 from a model too young to find entities), at most LASL_CONTINUE_RUNS in a row.
        This keeps every trigger-to-queue time near LASL_TRAIN_SECONDS and still lets a first model train
        to convergence, publishing a better version each minute."""
        chain = self._continue_chain + 1 if reason == CONTINUE_REASON else 0
        self._continue_chain = chain
        if not out_of_time or chain >= self.settings.continue_runs:
            return False
        if dev_f1 is None or prev_dev_f1 is None or float(prev_dev_f1) <= 0.0:
            return True
        return float(dev_f1) > float(prev_dev_f1) + 0.002

    # ---- reporting ------------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        """Everything /metrics shows for this project (cheap: no model load)."""
        with self._state_lock:
            state = dict(self._state)
            stats = dict(self._predict_stats)
        served = self._served
        current = served.version if served is not None else self.store.latest_good(self.project_id)
        meta: dict[str, Any] = {}
        if served is not None:
            meta = dict(served.meta)
        elif current:
            try:
                meta = self.store.read_meta(self.project_id, current)
            except StoreError:
                meta = {}
        ner = self._ner
        return {
            "project": self.project_id,
            "model_version": current or COLD_START_VERSION,
            "previous_version": self.store.previous(self.project_id),
            "local_versions": self.store.list_versions(self.project_id),
            "loaded": served is not None,
            "label_config": None if ner is None else {"from_name": ner.from_name, "to_name": ner.to_name, "value_key": ner.value_key, "labels": list(ner.labels)},
            "connection": self.has_connection,
            "training": {
                "status": state["status"],
                "reason": state["reason"],
                "started_at": state["started_at"],
                "finished_at": state["finished_at"],
                "duration_s": state["duration_s"],
                "progress": state["progress"],
                "runs_ok": state["runs_ok"],
                "runs_failed": state["runs_failed"],
                "last_error": state["last_error"],
                "last_error_at": state["last_error_at"],
            },
            "current_version_stats": {
                "trained_at": meta.get("trained_at") or meta.get("written_at"),
                "train_duration_s": meta.get("train_seconds"),
                "labeled": meta.get("n_labeled"),
                "labeled_entities": meta.get("n_entities"),
                "unlabeled": meta.get("n_unlabeled"),
                "held_out": meta.get("n_held_out"),
                "lambda_t": meta.get("lambda_t"),
                "f1_held_out": meta.get("f1_held_out"),
                "dev_f1": meta.get("dev_f1"),
            },
            "predict": stats,
        }
