"""When training runs: one background thread per project at a time; triggers during a run coalesce.

Training is single-flight per project: a trigger during a run sets one "pending" flag, so any number of
events during a run coalesce into exactly one follow-up run. A run that the backend reports as cut short
while still improving (``summary["follow_up"]``) gets one more run with :data:`CONTINUE_REASON`; one whose
stop rule calls for the final model (``summary["final_due"]``) gets the final run (:mod:`.final_run`).
Either waits behind a trigger that came during the run.

A run that fails on a transient Label Studio error (after its own per-call retries) is tried again by
itself after ``retry_later_s``, doubling per failure in a row up to ``retry_later_max_s``: an outage
longer than the per-call retries delays the annotations' effect, it does not drop it while nobody
triggers another run (docs/serving.md, "A training run").
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..labelstudio import LabelStudioError
from ..ner import TrainingCancelled
from .final_run import FINAL_REASON
from .training_run import CONTINUE_REASON, NotEnoughLabeledError

__all__ = ["RETRY_REASON", "TrainingManager"]

#: reason of a run that the trainer starts by itself after Label Studio failed the previous one
RETRY_REASON = "RETRY_AFTER_LABEL_STUDIO_ERROR"

log = logging.getLogger(__name__)


class Trainable(Protocol):
    def fit(self, event: str, data: Any = None) -> dict[str, Any]: ...

    def request_stop(self) -> None: ...


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


@dataclass(frozen=True)
class _Outcome:
    succeeded: bool = False
    transient_failure: bool = False
    #: the run the summary asks for next: a follow-up (still improving) or the final run (the rule said stop)
    next_reason: str | None = None


def _next_reason(summary: Any) -> str | None:
    """The run a successful run's summary asks for: a follow-up while the model still improved, else the
    final run where the stop rule called for one (:mod:`.final_run`)."""
    if not isinstance(summary, dict):
        return None
    if summary.get("follow_up"):
        return CONTINUE_REASON
    return FINAL_REASON if summary.get("final_due") else None


class TrainingManager:
    """Starts, coalesces and retries training runs (module doc); ``status`` is /metrics' ``trainer``."""

    def __init__(self, get_backend: Callable[[int], Trainable], retry_later_s: float = 60.0, retry_later_max_s: float = 1800.0) -> None:
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
        """Run, then the pending follow-up runs, until none is pending."""
        next_run: tuple[str, Any] | None = (reason, data)
        while next_run is not None:
            outcome = self._run_once(project_id, *next_run)
            next_run = self._after_run(project_id, outcome)

    def _run_once(self, project_id: int, reason: str, data: Any) -> _Outcome:
        try:
            summary = self._get_backend(project_id).fit(reason, data)
        except NotEnoughLabeledError as exc:
            log.info("project %s: not training yet: %s", project_id, exc)
        except LabelStudioError as exc:
            log.debug("project %s: run failed on Label Studio", project_id, exc_info=True)
            return _Outcome(transient_failure=exc.transient)
        except TrainingCancelled:
            log.info("project %s: training cancelled", project_id)
        except Exception:  # noqa: BLE001 - recorded by the backend; the thread must go on
            log.debug("project %s: run failed", project_id, exc_info=True)
        else:
            return _Outcome(succeeded=True, next_reason=_next_reason(summary))
        return _Outcome()

    def _after_run(self, project_id: int, outcome: _Outcome) -> tuple[str, Any] | None:
        """Book the run's outcome; the next run's (reason, data), or None when the thread ends."""
        with self._lock:
            st = self._runs[project_id]
            if outcome.succeeded:
                st.failures = 0
            elif outcome.transient_failure:
                st.failures += 1
            if outcome.next_reason and not st.pending:  # new annotations go first; the rule is asked again after them
                st.pending, st.pending_reason, st.pending_data = True, outcome.next_reason, None
            if st.pending and not self._stopping:
                nxt = (st.pending_reason or "coalesced", st.pending_data)
                st.pending, st.pending_reason, st.pending_data = False, None, None
                st.started += 1
                return nxt
            st.running, st.pending, st.thread = False, False, None
            if outcome.transient_failure and self._retry_later_s > 0 and not self._stopping:
                self._schedule_retry(project_id, st)
            return None

    def _schedule_retry(self, project_id: int, st: _ProjectRun) -> None:
        delay = min(self._retry_later_s * 2 ** (st.failures - 1), self._retry_later_max_s)
        log.warning("project %s: Label Studio failed the run; trying again in %.0f s", project_id, delay)
        timer = threading.Timer(delay, self.request, args=(project_id, RETRY_REASON))
        timer.daemon = True
        st.retry_timer = timer
        timer.start()

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

    def stop(self, backends: list[Trainable], timeout: float = 30.0) -> None:
        """No new runs; cancel scheduled retries; ask running ones to stop and wait for them."""
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
