"""What /metrics reports about a project's training runs, behind one lock.

The trainer thread writes (a run starts, reports progress, ends one of four ways); request threads
read a consistent snapshot. The annotation ids the last run's fetch saw live here too: a webhook
that reports an annotation deleted counts only if a run had seen it (docs/serving.md, "Webhooks").
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Iterable

__all__ = ["RunState", "RunTracker", "utc_now"]

#: the progress fields a training loop reports that /metrics shows
PROGRESS_KEYS = ("epoch", "total_epochs", "step", "loss", "dev_f1")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class RunState:
    """The latest run's status and the counts since the process started."""

    status: str = "idle"  # idle | running | waiting (too few annotations) | cancelled | failed
    reason: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    progress: dict[str, Any] | None = None
    runs_ok: int = 0
    runs_failed: int = 0
    last_error: str | None = None
    last_error_at: str | None = None
    last_run: dict[str, Any] | None = None


class RunTracker:
    """The :class:`RunState` of one project and the annotations its last fetch saw."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = RunState()
        self._t0 = 0.0
        self._annotations: frozenset[int] = frozenset()

    def snapshot(self) -> RunState:
        with self._lock:
            return self._state

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._state = replace(self._state, **changes)

    def _ended(self, status: str, count: str | None = None, **changes: Any) -> None:
        """The run ended with ``status``; ``count`` names the counter (runs_ok, runs_failed) it adds to."""
        with self._lock:
            if count is not None:
                changes[count] = getattr(self._state, count) + 1
            duration = round(time.monotonic() - self._t0, 3)
            self._state = replace(self._state, status=status, finished_at=utc_now(), duration_s=duration, **changes)

    def started(self, reason: str) -> None:
        self._t0 = time.monotonic()
        self._update(status="running", reason=reason, started_at=utc_now(), finished_at=None, duration_s=None, progress=None)

    def progress(self, row: dict[str, Any]) -> None:
        """The training loop's progress callback."""
        self._update(progress={k: row[k] for k in PROGRESS_KEYS if k in row})

    def succeeded(self, summary: dict[str, Any]) -> None:
        self._ended("idle", "runs_ok", last_run=summary, progress=None)

    def failed(self, message: str) -> None:
        self._ended("failed", "runs_failed", last_error=message[:2000], last_error_at=utc_now())

    def waiting(self, message: str) -> None:
        """Too few annotations to train on: not a failure, but /metrics says why nothing happened."""
        self._ended("waiting", last_error=message, last_error_at=utc_now())

    def cancelled(self) -> None:
        self._ended("cancelled")

    def saw_annotations(self, annotation_ids: Iterable[int]) -> None:
        with self._lock:
            self._annotations = frozenset(annotation_ids)

    def knows_annotation(self, annotation_id: int) -> bool:
        with self._lock:
            return annotation_id in self._annotations
