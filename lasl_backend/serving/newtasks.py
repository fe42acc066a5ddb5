"""New tasks (``TASKS_CREATED``) get predictions of the serving version, on their own worker.

Why: with a static ``project.model_version`` Label Studio no longer live-predicts new tasks, and
Uncertainty sampling would skip them (docs/serving.md, "The queue"). The backend reads those tasks
from Label Studio itself and pushes its predictions, so a forged event can only make it score real,
unlabeled tasks again. Scoring runs a model, so it has its own thread and its own bounded backlog (in
events and in task ids): it never delays the confirmation of annotation webhooks, and a flood of it is
shed like one of annotation events (docs/serving.md, "Webhooks"). Only a project that already has a
backend can have its new tasks scored (it needs a label config and a model); for any other project the
event is answered and dropped, leaving no state.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from ..labelstudio import LabelStudioError
from .duequeue import DueQueue, serve_jobs
from .logthrottle import ThrottledLog
from .webhooks import BacklogFull, WebhookLimits

__all__ = ["NewTaskScorer"]

log = logging.getLogger(__name__)


class Scoring(Protocol):
    @property
    def has_connection(self) -> bool: ...

    @property
    def has_label_config(self) -> bool: ...

    def score_new_tasks(self, task_ids: Sequence[int]) -> int: ...


@dataclass
class _Job:
    project_id: int
    task_ids: tuple[int, ...]
    attempts: int = 0


class NewTaskScorer:
    def __init__(self, find_backend: Callable[[int], Scoring | None], limits: WebhookLimits | None = None) -> None:
        self._find = find_backend
        self._limits = limits = limits or WebhookLimits()
        self._queue: DueQueue[_Job] = DueQueue([("new_tasks", limits.task_backlog)])
        self._lock = threading.Lock()
        self._ids_held = 0
        self._shed = 0
        self._scored = 0
        self._thread: threading.Thread | None = None
        self._throttled = ThrottledLog(log, limits.log_interval_s)

    def submit(self, project_id: int, task_ids: list[int], credentialed: bool = False) -> int:
        """Queue the tasks of a known project; returns how many were queued (0: none, shed, or an
        unknown project). Raises :class:`BacklogFull` for a credentialed event that finds no room."""
        if not task_ids or self._find(project_id) is None:
            return 0
        job = _Job(project_id, tuple(task_ids))
        with self._lock:
            room = self._ids_held == 0 or self._ids_held + len(job.task_ids) <= self._limits.task_ids_backlog  # one event always fits
            if not room or not self._queue.put(0, job):
                if credentialed:
                    raise BacklogFull()
                self._shed += 1
                shed = True
            else:
                self._ids_held += len(job.task_ids)
                shed = False
            self._start_worker()
        if shed:
            self._throttled.warning("shed", "webhooks: the new-task backlog is full; shedding anonymous TASKS_CREATED events")
            return 0
        return len(job.task_ids)

    def _start_worker(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="lasl-new-tasks", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        serve_jobs(self._queue, (0,), lambda _lane, job: self._handle(job), self._finish, self._limits.backoff, "new-task scoring")

    def _finish(self, lane: int, job: _Job) -> None:
        with self._lock:
            self._ids_held -= len(job.task_ids)
            self._queue.done(lane)

    def _handle(self, job: _Job) -> bool:
        """Score one event's tasks; True = try again later (Label Studio did not answer)."""
        backend = self._find(job.project_id)
        if backend is None or not backend.has_connection or not backend.has_label_config:
            return False
        try:
            n = backend.score_new_tasks(list(job.task_ids))
        except LabelStudioError as exc:
            log.warning("project %s: scoring %d new task(s) failed: %s", job.project_id, len(job.task_ids), exc)
            return exc.transient
        if n:
            log.info("project %s: pushed predictions for %d new task(s)", job.project_id, n)
            with self._lock:
                self._scored += n
        return False

    def summary(self) -> dict[str, Any]:
        """/metrics' ``webhooks.new_tasks``."""
        with self._lock:
            ids, shed, scored = self._ids_held, self._shed, self._scored
        return dict(self._queue.lane_stats(0), task_ids=ids, task_ids_limit=self._limits.task_ids_backlog, shed=shed, pushed=scored)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        return self._queue.wait_idle(timeout)

    def stop(self) -> None:
        self._queue.close()
