"""The Flask 3 app that Label Studio 1.23 talks to, plus its background trainer (PROTOCOL.md §10).

Routes: ``GET /`` and ``/health`` (cheap), ``POST /setup`` (< 3 s, never loads a model), ``POST
/predict``, ``POST /webhook``, ``GET /versions``, ``GET /metrics``. Every error is JSON
``{"error": "..."}`` with a 4xx status for bad input; a 5xx means a bug in this code.

Bad input policy for /predict: a request that is not a JSON object, has no non-empty ``tasks`` list,
an unusable ``label_config`` or project id, or is too large (413) gets a 4xx. A task that cannot be
read (no ``data``, no text field, a non-string or over-long text) does not fail its batch, because
Label Studio drops the whole batch when the count of results differs from the count of tasks: it gets a
placeholder ``{"result": [], "score": 1.0}`` (served last) and an entry in the response's ``errors`` list. Only when
*no* task of the request is readable is the answer 422 with those errors.

Webhook authentication design (PROTOCOL.md §0: Label Studio sends webhooks WITHOUT basic-auth, but
sends START_TRAINING through its ML API session WITH it):

* ``START_TRAINING`` starts an expensive run, so when ``BASIC_AUTH_USER``/``BASIC_AUTH_PASS`` are set it
  must carry valid credentials; an anonymous one gets 401 (Label Studio's real one always has them).
* ``ANNOTATION_CREATED`` / ``ANNOTATION_UPDATED`` / ``ANNOTATIONS_DELETED`` are accepted anonymously
  (otherwise every real one would be lost), answered at once (LS waits at most 1 s), and are only
  *counted* toward the every-N-annotations trigger after a background verifier has confirmed them with
  Label Studio using the backend's own credentials: ``GET /api/annotations/{id}`` must return an
  annotation of that project (for deletions: must return 404). Each confirmed change is counted once,
  keyed by (annotation id, its ``updated_at`` as Label Studio reports it), so replaying a real webhook,
  or forging one with a guessed id, never counts twice and never counts something that did not
  happen. A forger can at most cause a few GETs to Label Studio (the queue is bounded; a full queue
  answers 429). Nothing from an anonymous payload is trusted: not its label config, not its results.
  The training run itself re-reads every annotation from Label Studio, so no event's effect is lost
  even if its webhook was dropped; the counter only decides *when* the next run starts.
* Any request that carries an ``Authorization`` header with wrong credentials gets 401.
* ``TASKS_CREATED`` (anonymous too) queues the new task ids; the backend reads those tasks from Label
  Studio itself and pushes predictions of the serving version, because with a static
  ``project.model_version`` Label Studio no longer live-predicts new tasks and Uncertainty sampling
  would skip them. A forged event can only make the backend score real, unlabeled tasks again.
* Without configured basic auth there is nothing to protect: events are still confirmed when a Label
  Studio connection is known (that dedups replays), and counted directly when it is not.

Training is single-flight per project: a trigger during a run sets one "pending" flag, so any number of
events during a run coalesce into exactly one follow-up run.
"""

from __future__ import annotations

import hmac
import json
import logging
import queue
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .. import __version__
from .backend import CONTINUE_REASON, LaslBackend, NotEnoughLabeledError
from ..config import ConfigError, Settings
from ..crf import kernel_name as crf_kernel_name
from ..labelstudio import LabelConfigError
from ..labelstudio import LabelStudioError
from .redaction import install_secret_filter
from .store import ModelStore, UnsafePathError, check_project_id

__all__ = ["init_app", "serve", "BadRequest", "TrainingManager", "WebhookVerifier", "parse_project_id"]

#: reason of a run that the trainer starts by itself after Label Studio failed the previous one
RETRY_REASON = "RETRY_AFTER_LABEL_STUDIO_ERROR"

log = logging.getLogger(__name__)

ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")
IGNORED_EVENTS = ("TASKS_DELETED", "PROJECT_UPDATED", "PROJECT_CREATED", "ANNOTATIONS_CREATED", "LABEL_LINK_CREATED")
_PROJECT_RE = re.compile(r"^([0-9]{1,12})(?:\.[0-9]{1,20})?\Z")
_MAX_TASKS = 100_000


class BadRequest(Exception):
    """A 4xx answer with a message (raised inside views, rendered as JSON)."""

    def __init__(self, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


def parse_project_id(value: object) -> int:
    """``1``, ``"1"`` or Label Studio's ``"<id>.<created_ts>"`` → 1; anything else → BadRequest."""
    if isinstance(value, bool):
        raise BadRequest("project must be an integer id or '<id>.<timestamp>'")
    if isinstance(value, int):
        try:
            return check_project_id(value)
        except UnsafePathError as exc:
            raise BadRequest(str(exc)) from None
    if isinstance(value, str):
        m = _PROJECT_RE.match(value)
        if m:
            return int(m.group(1))
    raise BadRequest("project must be an integer id or '<id>.<timestamp>'")


# ---- background training -------------------------------------------------------------------------
@dataclass
class _ProjectRun:
    running: bool = False
    pending: bool = False
    pending_reason: str | None = None
    pending_data: Any = None
    thread: threading.Thread | None = None
    started: int = 0
    coalesced: int = 0
    failures: int = 0  # transient failures in a row (Label Studio down)
    retry_timer: threading.Timer | None = None


class TrainingManager:
    """One background training thread per project at a time; triggers during a run coalesce.

    A run that fails on a transient Label Studio error (after its own per-call retries) is tried again
    by itself after ``retry_later_s``, doubling per failure in a row up to ``retry_later_max_s``: an
    outage longer than the per-call retries delays the annotations' effect, it does not drop it while
    nobody triggers another run."""

    def __init__(self, get_backend: Callable[[int], LaslBackend], retry_later_s: float = 60.0, retry_later_max_s: float = 1800.0) -> None:
        self._get_backend = get_backend
        self._retry_later_s = retry_later_s
        self._retry_later_max_s = retry_later_max_s
        self._lock = threading.Lock()
        self._runs: dict[int, _ProjectRun] = {}
        self._stopping = False

    def request(self, project_id: int, reason: str, data: Any = None) -> str:
        """Start a run now ("started"), or mark one follow-up run ("queued" / "coalesced")."""
        with self._lock:
            if self._stopping:
                return "stopping"
            st = self._runs.setdefault(project_id, _ProjectRun())
            if st.running:
                state = "coalesced" if st.pending else "queued"
                if st.pending:
                    st.coalesced += 1
                st.pending, st.pending_reason, st.pending_data = True, reason, data
                return state
            if st.retry_timer is not None:  # this run does what the scheduled retry would have done
                st.retry_timer.cancel()
                st.retry_timer = None
            st.running = True
            st.started += 1
            t = threading.Thread(target=self._worker, args=(project_id, reason, data), name=f"lasl-train-{project_id}", daemon=True)
            st.thread = t
        t.start()
        return "started"

    def _worker(self, project_id: int, reason: str, data: Any) -> None:
        from ..ner import TrainingCancelled

        while True:
            follow_up = False
            transient_failure = None
            succeeded = False
            try:
                backend = self._get_backend(project_id)
                summary = backend.fit(reason, data)
                follow_up = isinstance(summary, dict) and bool(summary.get("follow_up"))
                succeeded = True
            except NotEnoughLabeledError as exc:
                log.info("project %s: not training yet: %s", project_id, exc)
            except LabelStudioError as exc:
                transient_failure = exc.transient
                log.debug("project %s: run failed on Label Studio", project_id, exc_info=True)
            except TrainingCancelled:
                log.info("project %s: training cancelled", project_id)
            except Exception:  # noqa: BLE001 - recorded by the backend; the thread must go on
                log.debug("project %s: run failed", project_id, exc_info=True)
            with self._lock:
                st = self._runs[project_id]
                if succeeded:
                    st.failures = 0
                elif transient_failure:
                    st.failures += 1
                if follow_up and not st.pending:  # the model was still improving when its budget ran out
                    st.pending, st.pending_reason, st.pending_data = True, CONTINUE_REASON, None
                if st.pending and not self._stopping:
                    reason, data = st.pending_reason or "coalesced", st.pending_data
                    st.pending, st.pending_reason, st.pending_data = False, None, None
                    st.started += 1
                    continue
                st.running, st.pending, st.thread = False, False, None
                if transient_failure and self._retry_later_s > 0 and not self._stopping:
                    delay = min(self._retry_later_s * 2 ** (st.failures - 1), self._retry_later_max_s)
                    log.warning("project %s: Label Studio failed the run; trying again in %.0f s", project_id, delay)
                    timer = threading.Timer(delay, self.request, args=(project_id, RETRY_REASON))
                    timer.daemon = True
                    st.retry_timer = timer
                    timer.start()
                return

    def status(self, project_id: int) -> dict[str, Any]:
        with self._lock:
            st = self._runs.get(project_id) or _ProjectRun()
            return {
                "running": st.running,
                "pending": st.pending,
                "runs_started": st.started,
                "coalesced": st.coalesced,
                "failures_in_a_row": st.failures,
                "retry_scheduled": st.retry_timer is not None and st.retry_timer.is_alive(),
            }

    def busy(self) -> bool:
        with self._lock:
            return any(st.running for st in self._runs.values())

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """True once no run is active (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.busy():
                return True
            time.sleep(0.02)
        return not self.busy()

    def stop(self, backends: list[LaslBackend], timeout: float = 30.0) -> None:
        with self._lock:
            self._stopping = True
            threads = [st.thread for st in self._runs.values() if st.thread is not None]
            for st in self._runs.values():
                if st.retry_timer is not None:
                    st.retry_timer.cancel()
        for b in backends:
            b.request_stop()
        for t in threads:
            t.join(timeout)


# ---- webhook verification -------------------------------------------------------------------------
@dataclass
class _Event:
    project_id: int
    action: str
    annotation_id: int
    attempts: int = 0
    not_before: float = 0.0
    task_ids: tuple[int, ...] = ()


@dataclass
class _Counter:
    count: int = 0
    confirmed: int = 0
    rejected: int = 0
    unverifiable: int = 0
    seen: "OrderedDict[tuple[int, str], None]" = field(default_factory=OrderedDict)
    known_ids: set[int] = field(default_factory=set)  # annotations confirmed to exist


class WebhookVerifier:
    """Confirms anonymous annotation webhooks with Label Studio before they count (module doc)."""

    MAX_SEEN = 200_000
    MAX_ATTEMPTS = 4

    def __init__(self, get_backend: Callable[[int], LaslBackend], trainer: TrainingManager, settings: Settings, queue_size: int = 10_000) -> None:
        self._get_backend = get_backend
        self._trainer = trainer
        self._settings = settings
        self._q: "queue.Queue[_Event | None]" = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._queued: set[tuple[int, str, int]] = set()
        self._counters: dict[int, _Counter] = {}
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._pending = 0

    def _counter(self, pid: int) -> _Counter:
        return self._counters.setdefault(pid, _Counter())

    def submit(self, project_id: int, action: str, annotation_ids: list[int]) -> int:
        """Queue events for confirmation; returns how many were queued. Raises queue.Full."""
        n = 0
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="lasl-webhook-verifier", daemon=True)
                self._thread.start()
            for aid in annotation_ids:
                key = (project_id, action, aid)
                if key in self._queued:
                    continue
                self._q.put_nowait(_Event(project_id, action, aid))
                self._queued.add(key)
                self._pending += 1
                self._idle.clear()
                n += 1
        return n

    def submit_tasks(self, project_id: int, task_ids: list[int]) -> int:
        """Queue new tasks to be scored with the serving version (``LaslBackend.score_new_tasks``)."""
        if not task_ids:
            return 0
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="lasl-webhook-verifier", daemon=True)
                self._thread.start()
            self._q.put_nowait(_Event(project_id, "TASKS_CREATED", -time.monotonic_ns(), task_ids=tuple(task_ids)))
            self._pending += 1
            self._idle.clear()
        return len(task_ids)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        return self._idle.wait(timeout)

    def stats(self, project_id: int) -> dict[str, Any]:
        with self._lock:
            c = self._counters.get(project_id) or _Counter()
            return {
                "since_last_trigger": c.count,
                "train_every": self._settings.train_every,
                "confirmed": c.confirmed,
                "rejected": c.rejected,
                "unverifiable": c.unverifiable,
            }

    def stop(self) -> None:
        try:
            self._q.put_nowait(None)
        except queue.Full:
            pass

    def _done(self, ev: _Event) -> None:
        with self._lock:
            self._queued.discard((ev.project_id, ev.action, ev.annotation_id))
            self._pending -= 1
            if self._pending <= 0:
                self._pending = 0
                self._idle.set()

    def _loop(self) -> None:
        while True:
            ev = self._q.get()
            if ev is None:
                return
            wait = ev.not_before - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, 5.0))
            try:
                requeue = self._handle(ev)
            except Exception:  # noqa: BLE001 - the verifier thread must survive anything
                log.exception("webhook verifier: unexpected error")
                requeue = False
            if requeue and ev.attempts < self.MAX_ATTEMPTS:
                ev.attempts += 1
                ev.not_before = time.monotonic() + min(60.0, 2.0 ** ev.attempts)
                try:
                    self._q.put_nowait(ev)
                    continue
                except queue.Full:
                    pass
            self._done(ev)

    def _confirm(self, backend: LaslBackend, ev: _Event) -> str | None:
        """The dedup key of a confirmed change, or None if Label Studio does not confirm it."""
        ann = backend.ls().get_annotation(ev.annotation_id)
        if ev.action == "ANNOTATIONS_DELETED":
            # A 404 alone proves nothing (any made-up id is 404): count a deletion only for an
            # annotation this backend has seen exist (confirmed earlier, or read in the last run).
            if ann is not None:
                return None
            with self._lock:
                seen_before = ev.annotation_id in self._counter(ev.project_id).known_ids
            return "deleted" if seen_before or backend.knows_annotation(ev.annotation_id) else None
        if ann is None:
            return None
        proj = ann.get("project")
        if proj is not None and proj != ev.project_id:
            return None
        return f"updated:{ann.get('updated_at') or ann.get('created_at') or ''}"

    def _handle(self, ev: _Event) -> bool:
        """Process one event; True = retry later (Label Studio was not reachable)."""
        backend = self._get_backend(ev.project_id)
        if ev.action == "TASKS_CREATED":
            if not backend.has_connection or not backend.has_label_config:
                return False
            try:
                n = backend.score_new_tasks(list(ev.task_ids))
            except LabelStudioError as exc:
                log.warning("project %s: scoring %d new task(s) failed: %s", ev.project_id, len(ev.task_ids), exc)
                return exc.transient
            if n:
                log.info("project %s: pushed predictions for %d new task(s)", ev.project_id, n)
            return False
        if backend.has_connection:
            try:
                key = self._confirm(backend, ev)
            except LabelStudioError as exc:
                if exc.transient:
                    log.warning("project %s: cannot confirm %s %s yet: %s", ev.project_id, ev.action, ev.annotation_id, exc)
                    return True
                key = None
            if key is None:
                with self._lock:
                    self._counter(ev.project_id).rejected += 1
                log.warning("project %s: %s for annotation %s not confirmed by Label Studio; ignored", ev.project_id, ev.action, ev.annotation_id)
                return False
        elif self._settings.auth_enabled:
            with self._lock:
                self._counter(ev.project_id).unverifiable += 1
            log.warning("project %s: no Label Studio connection to confirm an anonymous %s; not counted", ev.project_id, ev.action)
            return False
        else:
            key = f"{ev.action}:{time.monotonic_ns()}"  # no auth and no connection: trust, count each
        trigger = False
        with self._lock:
            c = self._counter(ev.project_id)
            seen_key = (ev.annotation_id, key)
            if seen_key in c.seen:
                return False
            c.seen[seen_key] = None
            while len(c.seen) > self.MAX_SEEN:
                c.seen.popitem(last=False)
            if ev.action != "ANNOTATIONS_DELETED" and len(c.known_ids) < self.MAX_SEEN:
                c.known_ids.add(ev.annotation_id)
            c.confirmed += 1
            c.count += 1
            if c.count >= self._settings.train_every:
                c.count = 0
                trigger = True
        if trigger:
            state = self._trainer.request(ev.project_id, f"{self._settings.train_every} annotation changes")
            log.info("project %s: %d confirmed annotation changes; training %s", ev.project_id, self._settings.train_every, state)
        return False


# ---- the app -------------------------------------------------------------------------------------
class _State:
    """Everything the views share; kept on ``app.extensions["lasl"]`` (tests reach it there)."""

    def __init__(self, model_class: type[LaslBackend], settings: Settings, store: ModelStore, backend_kwargs: dict[str, Any]) -> None:
        self.model_class = model_class
        self.settings = settings
        self.store = store
        self.backend_kwargs = backend_kwargs
        self.backends: dict[int, LaslBackend] = {}
        self.lock = threading.Lock()
        self.started = time.time()
        self.trainer = TrainingManager(self.backend, retry_later_s=settings.retry_later_s)
        self.verifier = WebhookVerifier(self.backend, self.trainer, settings)

    def backend(self, project_id: int) -> LaslBackend:
        with self.lock:
            b = self.backends.get(project_id)
            if b is None:
                b = self.model_class(project_id, None, settings=self.settings, store=self.store, **self.backend_kwargs)
                self.backends[project_id] = b
            return b

    def known_projects(self) -> list[int]:
        with self.lock:
            ids = set(self.backends)
        try:
            ids |= set(self.store.projects())
        except OSError:
            pass
        return sorted(ids)

    def shutdown(self) -> None:
        self.verifier.stop()
        with self.lock:
            backends = list(self.backends.values())
        self.trainer.stop(backends)


def _error(message: str, status: int, **extra: Any) -> Response:
    body = {"error": message}
    body.update(extra)
    resp = jsonify(body)
    resp.status_code = status
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Basic realm="lasl-backend"'
    return resp


def _use_label_config(backend: LaslBackend, label_config: object) -> None:
    """Give the project's backend the label config a request carried, or answer 422 saying what is wrong."""
    try:
        backend.set_label_config(label_config)
    except LabelConfigError as exc:
        raise BadRequest(f"label config: {exc}", 422) from None


def _json_object() -> dict[str, Any]:
    """The request body as a JSON object, or BadRequest/413."""
    raw = request.get_data(cache=True)  # raises RequestEntityTooLarge past MAX_CONTENT_LENGTH
    if not raw:
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise BadRequest("request body is not UTF-8") from None
    except RecursionError:
        raise BadRequest("request body is nested too deeply") from None
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON ({exc.__class__.__name__}: {str(exc)[:100]})") from None
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object, not {type(body).__name__}")
    return body


def init_app(
    model_class: type[LaslBackend] = LaslBackend,
    settings: Settings | None = None,
    store: ModelStore | None = None,
    **backend_kwargs: Any,
) -> Flask:
    """The Flask app. ``settings`` default to the environment (validated: a bad variable raises
    :class:`ConfigError` here, at start-up); ``backend_kwargs`` go to every ``model_class(...)``."""
    settings = settings or Settings.from_env()
    check_device(settings)
    store = store or ModelStore(settings.model_dir)
    for pid in store.projects():
        try:
            store.clean_tmp(pid)  # leftovers of a write that a crash interrupted
        except OSError:
            pass
    lasl_logger = logging.getLogger("lasl_backend")
    lasl_logger.setLevel(settings.log_level)
    install_secret_filter(settings.secrets())
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    if crf_kernel_name() != "c":
        log.warning("CRF kernel: %s; scoring still works, the CRF pass ~20x slower on one record and 4x on batches", crf_kernel_name())

    app = Flask("lasl_backend")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    state = _State(model_class, settings, store, backend_kwargs)
    app.extensions["lasl"] = state

    def authorized() -> bool | None:
        """True: valid credentials (or auth off); None: no credentials sent; False: wrong ones."""
        if not settings.auth_enabled:
            return True
        if "Authorization" not in request.headers:
            return None
        auth = request.authorization
        if auth is None or auth.type != "basic" or auth.username is None or auth.password is None:
            return False
        ok_user = hmac.compare_digest(auth.username.encode("utf-8", "surrogateescape"), settings.basic_auth_user.encode())  # type: ignore[union-attr]
        ok_pass = hmac.compare_digest(auth.password.encode("utf-8", "surrogateescape"), settings.basic_auth_pass.encode())  # type: ignore[union-attr]
        return ok_user and ok_pass

    @app.before_request
    def _auth() -> Response | None:
        g.auth = authorized()
        if request.endpoint in ("health",):
            return None
        if g.auth is False:
            return _error("invalid credentials", 401)
        if g.auth is None and request.endpoint != "webhook":
            return _error("authentication required", 401)
        return None  # /webhook decides per action (module doc)

    @app.errorhandler(BadRequest)
    def _bad(exc: BadRequest) -> Response:
        return _error(str(exc), exc.status, **exc.extra)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge) -> Response:
        return _error(f"request body is larger than {settings.max_request_bytes} bytes (LASL_MAX_REQUEST_MB)", 413)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        return _error(exc.description or exc.name, exc.code or 500)

    @app.errorhandler(Exception)
    def _crash(exc: Exception) -> Response:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return _error("internal error; see the backend log", 500)

    @app.get("/", endpoint="index")
    @app.get("/health", endpoint="health")
    def health() -> Response:
        return jsonify({"status": "UP", "model_class": model_class.__name__, "version": __version__, "crf_kernel": crf_kernel_name()})

    @app.post("/setup")
    def setup() -> Response:
        body = _json_object()
        if "project" not in body:
            raise BadRequest("missing 'project'")
        pid = parse_project_id(body.get("project"))
        backend = state.backend(pid)
        schema = body.get("schema")
        if schema is not None:
            _use_label_config(backend, schema)
        backend.set_connection(body.get("hostname"), body.get("access_token"))
        backend.setup()
        return jsonify({"model_version": backend.model_version})

    @app.post("/predict")
    def predict() -> Response:
        body = _json_object()
        tasks = body.get("tasks")
        if tasks is None:
            raise BadRequest("missing 'tasks'")
        if not isinstance(tasks, list):
            raise BadRequest(f"'tasks' must be a list, not {type(tasks).__name__}")
        if not tasks:
            raise BadRequest("'tasks' is empty")
        if len(tasks) > _MAX_TASKS:
            raise BadRequest(f"too many tasks ({len(tasks)} > {_MAX_TASKS}); send smaller batches", 413)
        raw_pid = body.get("project")
        if raw_pid is None:
            first = tasks[0] if isinstance(tasks[0], dict) else {}
            raw_pid = first.get("project")
        if raw_pid is None:
            raise BadRequest("missing 'project' (in the body or in the tasks)")
        pid = parse_project_id(raw_pid)
        backend = state.backend(pid)
        cfg = body.get("label_config")
        if cfg is not None:
            _use_label_config(backend, cfg)
        elif not backend.has_label_config:
            raise BadRequest("missing 'label_config' (and none known for this project yet)", 422)
        context = (body.get("params") or {}).get("context") if isinstance(body.get("params"), dict) else None
        try:
            results, issues = backend.predict_with_issues(tasks, context=context)
        except LabelConfigError as exc:
            raise BadRequest(f"label config: {exc}", 422) from None
        errors = [i.to_dict() for i in issues]
        if errors and len(errors) == len(tasks):
            raise BadRequest("no task in the request could be read", 422, errors=errors[:100])
        out: dict[str, Any] = {"results": results}
        if errors:
            out["errors"] = errors[:100]
        return jsonify(out)

    @app.post("/webhook")
    def webhook() -> Response:
        body = _json_object()
        action = body.get("action")
        if not isinstance(action, str) or not action:
            raise BadRequest("missing 'action'")
        if action == "START_TRAINING":
            if g.auth is not True:
                return _error("START_TRAINING needs valid credentials", 401)
            pid = _webhook_project(body)
            backend = state.backend(pid)
            project = body.get("project")
            cfg = project.get("label_config") if isinstance(project, dict) else None
            if isinstance(cfg, str):
                _use_label_config(backend, cfg)
            run = state.trainer.request(pid, "START_TRAINING", None)
            return _json({"status": "ok", "result": {"queued": True, "training": run}}, 201)
        if action in ANNOTATION_EVENTS:
            pid = _webhook_project(body)
            ids = _annotation_ids(action, body)
            try:
                n = state.verifier.submit(pid, action, ids)
            except queue.Full:
                return _error("too many webhook events waiting for confirmation; try later", 429)
            return _json({"status": "ok", "queued_for_confirmation": n}, 200)
        if action == "TASKS_CREATED":
            pid = _webhook_project(body)
            tasks = body.get("tasks")
            if not isinstance(tasks, list):
                raise BadRequest("TASKS_CREATED needs a 'tasks' list")
            ids = [t["id"] for t in tasks if isinstance(t, dict) and isinstance(t.get("id"), int) and not isinstance(t.get("id"), bool) and t["id"] > 0]
            try:
                n = state.verifier.submit_tasks(pid, ids[:100_000])
            except queue.Full:
                return _error("too many webhook events waiting; try later", 429)
            return _json({"status": "ok", "queued_for_scoring": n}, 200)
        if action in IGNORED_EVENTS:
            return _json({"status": "ignored", "action": action}, 200)
        return _json({"status": "Unknown event"}, 200)

    @app.get("/versions")
    def versions() -> Response:
        raw = request.args.get("project")
        if raw is None and request.content_length:
            try:
                body = json.loads(request.get_data(cache=True) or b"null")
            except (ValueError, UnicodeDecodeError, RecursionError):
                body = None
            raw = body.get("project") if isinstance(body, dict) else None
        if raw is not None:
            pid = parse_project_id(raw)
            return jsonify({"versions": list(reversed(state.store.list_versions(pid)))})
        per = {str(p): list(reversed(state.store.list_versions(p))) for p in state.known_projects()}
        merged = sorted({v for vs in per.values() for v in vs}, reverse=True)
        return jsonify({"versions": merged, "projects": per})

    @app.get("/metrics")
    def metrics() -> Response:
        projects = {}
        for pid in state.known_projects():
            # the trainer first: a run that it reports finished has also finished in the backend's numbers
            # read after it (read the other way round, a run ending in between showed its new version
            # with runs_ok not yet counted and the trainer already idle)
            trainer = state.trainer.status(pid)
            m = state.backend(pid).metrics()
            m["trainer"] = trainer
            m["webhooks"] = state.verifier.stats(pid)
            projects[str(pid)] = m
        return jsonify(
            {
                "status": "UP",
                "version": __version__,
                "uptime_s": round(time.time() - state.started, 1),
                "settings": settings.public_dict(),
                "projects": projects,
            }
        )

    return app


def _json(obj: Any, status: int) -> Response:
    resp = jsonify(obj)
    resp.status_code = status
    return resp


def _webhook_project(body: dict[str, Any]) -> int:
    project = body.get("project")
    if project is None:
        raise BadRequest("webhook payload has no 'project'")
    if isinstance(project, dict):
        if "id" not in project:
            raise BadRequest("webhook payload's 'project' has no 'id'")
        return parse_project_id(project["id"])
    return parse_project_id(project)


def _annotation_ids(action: str, body: dict[str, Any]) -> list[int]:
    def as_id(v: object) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v < 10**15:
            raise BadRequest("annotation id must be a positive integer")
        return v

    if action == "ANNOTATIONS_DELETED":
        anns = body.get("annotations")
        if not isinstance(anns, list) or not anns:
            raise BadRequest("ANNOTATIONS_DELETED needs a non-empty 'annotations' list")
        if len(anns) > 10_000:
            raise BadRequest("too many annotations in one event", 413)
        return [as_id(a.get("id") if isinstance(a, dict) else None) for a in anns]
    ann = body.get("annotation")
    if not isinstance(ann, dict):
        raise BadRequest(f"{action} needs an 'annotation' object")
    return [as_id(ann.get("id"))]


def check_device(settings: Settings) -> None:
    """LASL_DEVICE=cuda on a machine without a GPU stops the start with a clear message, instead of
    failing in the first training run or /predict."""
    from ..ner import resolve_device

    try:
        resolve_device(settings.device)
    except ValueError as exc:
        raise ConfigError(f"LASL_DEVICE: {exc}") from None


def serve(host: str = "0.0.0.0", port: int = 9090, threads: int = 8, log_level: str = "info") -> None:
    """Run the app under gunicorn in this process: 1 worker (models live in process memory; a
    second worker would hold a second, diverging copy), ``threads`` threads, no timeout (a /predict of
    a whole project may take long; Label Studio has its own 100 s limit)."""
    from gunicorn.app.base import BaseApplication

    settings = Settings.from_env()  # validate before forking anything
    check_device(settings)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for k, v in {
                "bind": f"{host}:{port}",
                "workers": 1,
                "threads": max(1, int(threads)),
                "worker_class": "gthread",
                "timeout": 0,
                "graceful_timeout": 30,
                "loglevel": log_level,
                "accesslog": "-" if log_level.lower() == "debug" else None,
            }.items():
                if v is not None:
                    self.cfg.set(k, v)

        def load(self) -> Flask:
            return init_app(LaslBackend, settings=settings)

    _App().run()


if __name__ == "__main__":  # pragma: no cover
    try:
        serve()
    except ConfigError as exc:
        raise SystemExit(f"configuration error: {exc}") from None
