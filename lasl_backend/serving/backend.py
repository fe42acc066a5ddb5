"""``LaslBackend``: one Label Studio project's model, predictions and training runs.

The shape follows label-studio-ml 2.x (``setup``, ``predict(tasks, context=None, **kwargs)``,
``fit(event, data, **kwargs)``, ``model_version``), but it is our own class: the published
label-studio-ml is the old 1.x API (docs/serving.md, "The protocol"). Each part lives in its own module:

* :mod:`.model_slot`: the serving model, loaded lazily and swapped whole;
* :mod:`.connection`: credentials, one cached SDK client, retries with backoff;
* :mod:`.prediction` and :mod:`.scores`: task texts in, regions and queue scores out;
* :mod:`.training_run`: a run as named steps, and when a run gets a follow-up;
* :mod:`.run_state`: what /metrics says about the runs.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict
from typing import Any, Callable, Sequence

from ..config import Settings
from ..labelstudio import LabelConfigError, LSClient, NerConfig, parse_label_config
from ..ner import TrainConfig, TrainingCancelled, train_lasl
from .connection import LabelStudioConnection, NoConnectionError
from .model_slot import ModelSlot, ServedModel
from .prediction import Predictor, TaskIssue
from .history import ProjectHistory
from .stop_signal import recommendation, stop_rule
from .run_state import RunTracker
from .scores import COLD_START_VERSION, UNREADABLE_SCORE, cold_start_score, dbs_score
from .project_ids import check_project_id
from .store import ModelStore, StoreError
from .training_run import CONTINUE_REASON, FollowUpRule, NotEnoughLabeledError, RunContext, TrainFn, TrainingRun, train_config

__all__ = [
    "LaslBackend",
    "ServedModel",
    "TaskIssue",
    "NotEnoughLabeledError",
    "NoConnectionError",
    "CONTINUE_REASON",
    "COLD_START_VERSION",
    "UNREADABLE_SCORE",
    "cold_start_score",
    "dbs_score",
]

log = logging.getLogger(__name__)


class LaslBackend:
    """Per-project backend. Construct cheaply; nothing is loaded until the first ``predict``."""

    def __init__(
        self,
        project_id: object,
        label_config: str | None = None,
        settings: Settings | None = None,
        store: ModelStore | None = None,
        ls_factory: Callable[[str, str], LSClient] | None = None,
        train_fn: TrainFn | None = None,
    ) -> None:
        self.project_id = check_project_id(project_id)
        self.settings = settings or Settings.from_env()
        self.store = store or ModelStore(self.settings.model_dir)
        self._stop = threading.Event()
        self.slot = ModelSlot(self.store, self.project_id, device=self.settings.device)
        self.connection = LabelStudioConnection(self.project_id, self.settings, self._stop, ls_factory)
        self.predictor = Predictor(self.project_id, self.settings)
        self.runs = RunTracker()
        self.follow_up = FollowUpRule(self.settings.continue_runs)
        self.history = ProjectHistory(self.store.project_dir(self.project_id))
        self._run_context = RunContext(
            project_id=self.project_id, settings=self.settings, store=self.store, connection=self.connection, slot=self.slot,
            tracker=self.runs, follow_up=self.follow_up, stop=self._stop, train_fn=train_fn or train_lasl, history=self.history,
        )
        self._ner: NerConfig | None = None
        if label_config is not None:
            self.set_label_config(label_config)

    # ---- configuration --------------------------------------------------------------------------
    def set_label_config(self, label_config: object) -> NerConfig:
        """Parse and adopt ``label_config`` (raises :class:`LabelConfigError`, keeping the old one)."""
        self._ner = parse_label_config(label_config, self.settings.labels_name)
        return self._ner

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
        self.connection.remember_setup(hostname, access_token)

    @property
    def has_connection(self) -> bool:
        return self.connection.available

    def ls(self) -> LSClient:
        """The Label Studio client: environment credentials first, else what /setup sent."""
        return self.connection.client()

    def knows_annotation(self, annotation_id: int) -> bool:
        """Whether the last training run's fetch saw this annotation (webhook deletion checks)."""
        return self.runs.knows_annotation(annotation_id)

    # ---- label-studio-ml shape ------------------------------------------------------------------
    def setup(self) -> None:
        """Called on every /setup: cheap and idempotent; never loads or trains (docs/serving.md,
        "The protocol": Label Studio calls /setup often and waits for it)."""

    @property
    def model_version(self) -> str:
        """The serving version, without loading a model (a pointer-file read at most)."""
        served = self.slot.peek()
        if served is not None:
            return served.version
        try:
            version = self.store.latest_good(self.project_id)
        except (OSError, StoreError):
            version = None
        return version or COLD_START_VERSION

    def get(self, key: str) -> Any:
        """label-studio-ml compatibility: ``get("model_version")``."""
        return self.model_version if key == "model_version" else None

    def predict_with_issues(self, tasks: Sequence[Any], context: Any = None) -> tuple[list[dict[str, Any]], list[TaskIssue]]:
        """One result per task, in order, plus the tasks that could not be read (or predicted)."""
        ner = self.ner  # raises LabelConfigError when no config is known
        return self.predictor.predict(tasks, ner, self.slot.current())

    def predict(self, tasks: Sequence[Any], context: Any = None, **kwargs: Any) -> list[dict[str, Any]]:
        """label-studio-ml shape: one ``{"result", "score", "model_version"}`` per task, in order."""
        return self.predict_with_issues(tasks, context)[0]

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

    # ---- serving --------------------------------------------------------------------------------
    def current(self) -> ServedModel | None:
        """The serving model, loading it on first use."""
        return self.slot.current()

    def swap(self, served: ServedModel) -> None:
        self.slot.swap(served)

    def score_new_tasks(self, task_ids: Sequence[int]) -> int:
        """Push predictions of the serving version for tasks imported after the last run
        (:meth:`Predictor.push_for_new_tasks`). Returns the number pushed: 0 at cold start, where
        there is no version for them to match."""
        served = self.slot.current()
        if served is None or not task_ids:
            return 0
        return self.predictor.push_for_new_tasks(served, task_ids, self.ner, self.connection)

    # ---- training -------------------------------------------------------------------------------
    def train_config(self, first_run: bool = False) -> TrainConfig:
        return train_config(self.settings, first_run)

    def train(self, reason: str = "manual") -> dict[str, Any]:
        """One complete training run (:class:`TrainingRun`). Raises on failure; the old model keeps serving."""
        self.runs.started(reason)
        self.connection.take_retries()
        run = TrainingRun(self._run_context, reason, self._ner, self.set_label_config)
        try:
            summary = run.run()
        except NotEnoughLabeledError as exc:
            self.runs.waiting(str(exc))
            self._record_run("waiting", error=str(exc))
            raise
        except TrainingCancelled:
            self.runs.cancelled()
            self._record_run("cancelled")
            raise
        except Exception as exc:
            msg = f"{type(exc).__name__}: {exc}"
            self.runs.failed(msg)
            self._record_run("failed", error=msg[:2000], n_labeled=run.n_labeled)
            log.error("project %s: training run (%s) failed: %s", self.project_id, reason, msg)
            raise
        self.runs.succeeded(summary)
        self._record_run("ok", version=summary.get("version"), steps=summary.get("steps"), pushed=summary.get("pushed"),
                         n_labeled=summary.get("n_labeled"))
        return summary

    def _record_run(self, status: str, **fields: Any) -> None:
        """The run's outcome in the project's history (the page's table); a failing disk only logs."""
        st = self.runs.snapshot()
        entry = {"reason": st.reason, "status": status, "started_at": st.started_at, "finished_at": st.finished_at,
                 "duration_s": st.duration_s, "steps": None, "version": None, "error": None,
                 "retries": self.connection.take_retries()} | fields
        try:
            self.history.append_run(entry)
        except OSError as exc:
            log.warning("project %s: could not record the run: %s", self.project_id, exc)

    def request_stop(self) -> None:
        """Ask a running training loop, or a retry waiting in it, to stop at its next step (server shutdown)."""
        self._stop.set()

    # ---- reporting ------------------------------------------------------------------------------
    def _version_meta(self, served: ServedModel | None, current: str | None) -> dict[str, Any]:
        if served is not None:
            return dict(served.meta)
        if not current:
            return {}
        try:
            return self.store.read_meta(self.project_id, current)
        except StoreError:
            return {}

    def metrics(self) -> dict[str, Any]:
        """Everything /metrics shows for this project (cheap: no model load)."""
        state = self.runs.snapshot()
        stats = self.predictor.stats.as_dict()
        served = self.slot.peek()
        current = served.version if served is not None else self.store.latest_good(self.project_id)
        meta = self._version_meta(served, current)
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
                "status": state.status,
                "reason": state.reason,
                "started_at": state.started_at,
                "finished_at": state.finished_at,
                "duration_s": state.duration_s,
                "progress": state.progress,
                "runs_ok": state.runs_ok,
                "runs_failed": state.runs_failed,
                "last_error": state.last_error,
                "last_error_at": state.last_error_at,
            },
            "current_version_stats": _version_stats(meta),
            "predict": stats,
            "queue": self.queue_state(meta, current),
            "stopping": self.stopping(),
        }

    def queue_state(self, meta: dict[str, Any], current: str | None) -> dict[str, Any]:
        """What the queue is ranked by and how much of it is left (from the serving version's meta)."""
        last = self.runs.snapshot().last_run or next((r for r in reversed(self.history.runs()) if r.get("status") == "ok"), {})
        return {
            "model_version": current or COLD_START_VERSION,
            "labeled": meta.get("n_labeled"),
            "unlabeled": meta.get("n_unlabeled"),
            "last_push": meta.get("trained_at"),
            "pushed": last.get("pushed") if last.get("version") == current else None,
            "cost_unit": meta.get("cost_unit"),
            "cost_model": meta.get("cost_model"),
            "diversity": meta.get("diversity"),
            "entity_weight": meta.get("entity_weight"),
            "final": bool(meta.get("final")),
        }

    def stopping(self, signals: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The stopping signal: the recommendation over every published version, and the latest entry."""
        signals = self.history.signals() if signals is None else signals
        rule = stop_rule(self.settings)
        rec = recommendation(signals, rule).to_dict()
        rec["rule"] = asdict(rule)
        return {"recommendation": rec, "versions": len(signals), "latest": signals[-1] if signals else None}


def _version_stats(meta: dict[str, Any]) -> dict[str, Any]:
    """/metrics' ``current_version_stats`` from a version's meta."""
    return {
        "trained_at": meta.get("trained_at") or meta.get("written_at"),
        "train_duration_s": meta.get("train_seconds"),
        "labeled": meta.get("n_labeled"),
        "labeled_entities": meta.get("n_entities"),
        "unlabeled": meta.get("n_unlabeled"),
        "held_out": meta.get("n_held_out"),
        "lambda_t": meta.get("lambda_t"),
        "f1_held_out": meta.get("f1_held_out"),
        "dev_f1": meta.get("dev_f1"),
    }
