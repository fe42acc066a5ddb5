"""``BackendService``: what the routes talk to. It holds the settings, the model store, one
``LaslBackend`` per project, the training scheduler, the webhook verifier and the new-task scorer, and
answers each route with a plain dict (docs/serving.md, "The protocol").

A project gets a backend from a request that may create one (/setup, /predict, START_TRAINING, all
behind basic auth when it is on), and only when that request is valid: a request with a bad label
config leaves no backend behind. Projects with versions in the store, and projects Label Studio has
confirmed an annotation for, get one when they are used (/metrics, a triggered run). A webhook, with
or without credentials, never creates one for a project Label Studio has not confirmed (``webhooks``
module doc).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .. import __version__
from ..config import Settings
from ..labelstudio import LabelConfigError, LSClient
from ..ner import crf_kernel_name
from .backend import LaslBackend
from .dashboard import DashboardView, render_dashboard, render_index
from .newtasks import NewTaskScorer
from .parsing import BadRequest, PredictRequest, SetupRequest
from .run_state import utc_now
from .scheduler import TrainingManager
from .store import ModelStore
from .webhooks import BacklogFull, WebhookLimits, WebhookVerifier

__all__ = ["BackendService"]


def _use_label_config(backend: LaslBackend, label_config: object) -> None:
    """Give the backend the label config a request carried, or answer 422 saying what is wrong."""
    try:
        backend.set_label_config(label_config)
    except LabelConfigError as exc:
        raise BadRequest(f"label config: {exc}", 422) from None


class BackendService:
    """The routes' facade (module doc); kept on ``app.extensions["lasl"]``."""

    def __init__(
        self,
        settings: Settings,
        store: ModelStore | None = None,
        model_class: type[LaslBackend] | None = None,
        limits: WebhookLimits | None = None,
        backend_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or ModelStore(settings.model_dir)
        self.model_class = model_class or LaslBackend
        self.backend_kwargs = dict(backend_kwargs or {})
        self.limits = limits or WebhookLimits()
        self.backends: dict[int, LaslBackend] = {}
        self.lock = threading.Lock()
        self.started = time.time()
        self._stored = self._stored_projects()
        self._confirming_ls: LSClient | None = None
        self.trainer = TrainingManager(self.backend, retry_later_s=settings.retry_later_s)
        self.verifier = WebhookVerifier(self.backend, self.known_elsewhere, self.confirming_client, self.trainer.request, settings, self.limits)
        self.scorer = NewTaskScorer(self.existing_backend, self.limits)

    # ---- projects -------------------------------------------------------------------------------------
    def _stored_projects(self) -> frozenset[int]:
        """Projects with a directory in the store at start (new ones get their versions through a
        backend of this process, so they are known through that)."""
        try:
            return frozenset(self.store.projects())
        except OSError:
            return frozenset()

    def backend(self, project_id: int) -> LaslBackend:
        """The project's backend, made on first use."""
        with self.lock:
            b = self.backends.get(project_id)
            if b is None:
                b = self.backends[project_id] = self._make_backend(project_id)
            return b

    def existing_backend(self, project_id: int) -> LaslBackend | None:
        with self.lock:
            return self.backends.get(project_id)

    def known_elsewhere(self, project_id: int) -> bool:
        """A backend exists, or the store holds the project (the verifier adds what it confirmed)."""
        return project_id in self._stored or self.existing_backend(project_id) is not None

    def known_projects(self) -> list[int]:
        with self.lock:
            ids = set(self.backends)
        try:
            ids |= set(self.store.projects())
        except OSError:
            pass
        return sorted(ids | set(self.verifier.known_projects()))

    def _make_backend(self, project_id: int) -> LaslBackend:
        return self.model_class(project_id, None, settings=self.settings, store=self.store, **self.backend_kwargs)

    def _backend_for(self, project_id: int, label_config: object, need_config: bool = False) -> LaslBackend:
        """The project's backend with the request's label config; a new one is kept only when the
        request is valid (a flood of bad requests for made-up ids leaves nothing behind)."""
        backend = self.existing_backend(project_id)
        fresh = backend is None
        if backend is None:
            backend = self._make_backend(project_id)
        if label_config is not None:
            _use_label_config(backend, label_config)
        elif need_config and not backend.has_label_config:
            raise BadRequest("missing 'label_config' (and none known for this project yet)", 422)
        if not fresh:
            return backend
        with self.lock:
            winner = self.backends.setdefault(project_id, backend)
        if winner is not backend and label_config is not None:  # another request made it meanwhile
            _use_label_config(winner, label_config)
        return winner

    def confirming_client(self) -> LSClient | None:
        """The environment's Label Studio connection for confirming webhook events: a short timeout and
        no retry inside the call (a confirming GET must not hold a worker while Label Studio hangs; the
        verifier schedules its own retries). None without environment credentials."""
        s = self.settings
        if not (s.label_studio_url and s.label_studio_api_key):
            return None
        with self.lock:
            if self._confirming_ls is None:
                url, key = s.label_studio_url, s.label_studio_api_key
                factory = self.backend_kwargs.get("ls_factory")  # the backends' client factory (tests), if any
                timeout = min(s.ls_timeout, self.limits.confirm_timeout_s)
                self._confirming_ls = factory(url, key) if factory else LSClient(url, key, timeout=timeout, max_retries=0)
            return self._confirming_ls

    # ---- routes ---------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return {"status": "UP", "model_class": self.model_class.__name__, "version": __version__, "crf_kernel": crf_kernel_name()}

    def setup(self, req: SetupRequest) -> dict[str, Any]:
        """Cheap and model-free (Label Studio waits 3 s): remember the config and the connection."""
        backend = self._backend_for(req.project, req.schema)
        backend.set_connection(req.hostname, req.access_token)
        backend.setup()
        return {"model_version": backend.model_version}

    def predict(self, req: PredictRequest) -> dict[str, Any]:
        """One result per task; unreadable tasks get placeholders and an ``errors`` entry (422 if all are)."""
        backend = self._backend_for(req.project, req.label_config, need_config=True)
        try:
            results, issues = backend.predict_with_issues(req.tasks, context=req.context)
        except LabelConfigError as exc:
            raise BadRequest(f"label config: {exc}", 422) from None
        errors = [i.to_dict() for i in issues]
        if errors and len(errors) == len(req.tasks):
            raise BadRequest("no task in the request could be read", 422, errors=errors[:100])
        out: dict[str, Any] = {"results": results}
        if errors:
            out["errors"] = errors[:100]
        return out

    def start_training(self, project_id: int, label_config: str | None) -> dict[str, Any]:
        self._backend_for(project_id, label_config)
        run = self.trainer.request(project_id, "START_TRAINING", None)
        return {"status": "ok", "result": {"queued": True, "training": run}}

    def annotation_event(self, project_id: int, action: str, annotation_ids: list[int], credentialed: bool) -> dict[str, Any]:
        try:
            n = self.verifier.submit(project_id, action, annotation_ids, credentialed)
        except BacklogFull:
            raise BadRequest("too many webhook events waiting for confirmation; try later", 429) from None
        return {"status": "ok", "queued_for_confirmation": n}

    def tasks_created(self, project_id: int, task_ids: list[int], credentialed: bool) -> dict[str, Any]:
        try:
            n = self.scorer.submit(project_id, task_ids, credentialed)
        except BacklogFull:
            raise BadRequest("too many webhook events waiting; try later", 429) from None
        return {"status": "ok", "queued_for_scoring": n}

    def versions(self, project_id: int | None) -> dict[str, Any]:
        """Newest first; without a project, every known project's and all of them merged."""
        if project_id is not None:
            return {"versions": list(reversed(self.store.list_versions(project_id)))}
        per = {str(p): list(reversed(self.store.list_versions(p))) for p in self.known_projects()}
        merged = sorted({v for vs in per.values() for v in vs}, reverse=True)
        return {"versions": merged, "projects": per}

    def metrics(self) -> dict[str, Any]:
        projects = {}
        for pid in self.known_projects():
            # the trainer first: a run that it reports finished has also finished in the backend's numbers
            # read after it (read the other way round, a run ending in between showed its new version
            # with runs_ok not yet counted and the trainer already idle)
            trainer = self.trainer.status(pid)
            m = self.backend(pid).metrics()
            m["trainer"] = trainer
            m["webhooks"] = self.verifier.stats(pid)
            projects[str(pid)] = m
        return {
            "status": "UP",
            "version": __version__,
            "uptime_s": round(time.time() - self.started, 1),
            "settings": self.settings.public_dict(),
            "projects": projects,
            "webhooks": dict(self.verifier.summary(), new_tasks=self.scorer.summary()),
        }

    def dashboard(self, project_id: int | None) -> str:
        """The project page (HTML), from stored numbers only; without a project, the one project or a list.
        An unknown project is a 404 (:class:`BadRequest`)."""
        projects = self.known_projects()
        if project_id is None:
            if len(projects) != 1:
                return render_index(projects)
            project_id = projects[0]
        if project_id not in projects:
            raise BadRequest(f"project {project_id} is not known to this backend", 404)
        b = self.backend(project_id)
        m = b.metrics()  # its recommendation is the rule over the same stored signals
        queue = m["queue"]
        view = DashboardView(
            project_id=project_id, projects=projects, signals=b.history.signals(), recommendation=m["stopping"]["recommendation"],
            runs=b.history.runs(), queue=queue, cost_model=queue.get("cost_model"), generated_at=utc_now(),
        )
        return render_dashboard(view)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """True once no webhook event waits or is worked on (tests)."""
        return self.verifier.wait_idle(timeout) and self.scorer.wait_idle(timeout)

    def shutdown(self) -> None:
        self.verifier.stop()
        self.scorer.stop()
        with self.lock:
            backends = list(self.backends.values())
        self.trainer.stop(backends)
