"""Annotation webhooks: confirmed with Label Studio before they count toward the next training run.

The design (docs/serving.md, "Webhooks"; Label Studio sends webhooks WITHOUT basic auth, but sends
START_TRAINING through its ML backend connection WITH it, docs/serving.md, "Label Studio facts"):

* ``START_TRAINING`` starts an expensive run, so when ``BASIC_AUTH_USER``/``BASIC_AUTH_PASS`` are set it
  must carry valid credentials; an anonymous one gets 401 (Label Studio's real one always has them).
  Any request that carries an ``Authorization`` header with wrong credentials gets 401. (Both are the
  routes' job; this module starts no run by itself except at the every-N trigger.)
* ``ANNOTATION_CREATED`` / ``ANNOTATION_UPDATED`` / ``ANNOTATIONS_DELETED`` are accepted anonymously
  (otherwise every real one would be lost), answered at once (Label Studio waits at most 1 s), and only
  *counted* toward the every-N-annotations trigger (``LASL_TRAIN_EVERY``) once Label Studio confirms
  them with the backend's own credentials: ``GET /api/annotations/{id}`` must return an annotation of
  that project; for a deletion it must answer 404 *and* the annotation must have been seen to exist
  (confirmed earlier, or read by the last training run), because any made-up id is 404. Each confirmed
  change counts once, keyed by (annotation id, its ``updated_at`` as Label Studio reports it), so a
  replayed or forged webhook never counts twice and never counts something that did not happen.
  Nothing from an anonymous payload is trusted: not its label config, not its results. A training run
  re-reads every annotation from Label Studio, so no event's effect is lost even if its webhook was
  dropped; the counter only decides *when* the next run starts.
* Without configured basic auth there is nothing to protect: events are still confirmed when a Label
  Studio connection is known (that dedups replays), and counted directly when none is (for a known
  project: one that nothing can confirm gets no counter; and with auth off no event is credentialed).

A flood of forged events must not stall the real ones or grow the process:

* Events wait in a :class:`DueQueue` with three lanes, served in this order: events that carried valid
  credentials, events for projects this backend knows (a backend from /setup, /predict or
  START_TRAINING, versions in the store, or an annotation Label Studio confirmed), and anonymous events
  for any other project id. One worker serves only the first two lanes, so a flood of the third never
  holds every worker. Confirming GETs use the environment's credentials with a short timeout and no
  retry inside the call, so a Label Studio that hangs holds a worker for seconds, not minutes.
* An event that Label Studio could not answer (unreachable, 5xx) waits for its retry in the heap
  (``retry_base_s``, doubling, ``max_attempts`` times); the events behind it are served meanwhile.
* Each lane is bounded. When one is full, an anonymous event is shed: answered 200 like any other (a
  forger learns nothing, Label Studio's webhook sender is not failed), counted in /metrics
  (``webhooks.shed``) and logged at most once per interval. An event that carried valid credentials is
  refused with 429 instead: its sender is a configured client that can see the answer and send again.
* A project id that Label Studio has not confirmed gets no per-project state: its events are confirmed
  with the environment's Label Studio connection, not through a ``LaslBackend``, and what is counted
  for it (rejected, unverifiable, shed) lives in a small LRU. Only an annotation that Label Studio
  returns *for that project* makes it known; credentials give an event priority, not a project.
* Forged events naming a *known* project share its lane (the bound holds; a full lane delays that
  project's trigger, it loses no data). The cheapest such forgery, a long ``ANNOTATIONS_DELETED`` list
  of made-up ids, is refused at intake: a deletion counts only for an annotation seen to exist, so ids
  never seen are counted as rejected without a slot and without asking Label Studio.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ..config import Settings
from ..labelstudio import LabelStudioError
from .duequeue import Backoff, DueQueue, serve_jobs
from .logthrottle import ThrottledLog

__all__ = ["BacklogFull", "WebhookLimits", "WebhookVerifier"]

log = logging.getLogger(__name__)

CREDENTIALED, KNOWN, STRANGER = 0, 1, 2
LANE_NAMES = ("credentialed", "known_projects", "unknown_projects")
DELETED = "ANNOTATIONS_DELETED"
_UNVERIFIABLE = object()


class BacklogFull(Exception):
    """The lane of an event that carried valid credentials is full (answered 429)."""


@dataclass(frozen=True)
class WebhookLimits:
    """Bounds and timings of webhook handling (fixed; tests shrink them)."""

    workers: int = 3  # confirming threads; the first serves only credentialed and known-project events
    backlog: int = 10_000  # per lane, credentialed and known-project events (waiting + in work)
    stranger_backlog: int = 1_000  # anonymous events for unknown projects
    max_attempts: int = 4  # retries of an event Label Studio could not answer
    retry_base_s: float = 2.0
    retry_max_s: float = 60.0
    strangers_tracked: int = 1_024  # unknown projects whose counts are kept (LRU)
    seen_per_project: int = 200_000  # dedup keys and confirmed annotation ids kept per known project
    confirm_timeout_s: float = 10.0  # one confirming GET for an unknown project
    task_backlog: int = 1_000  # TASKS_CREATED events waiting to be scored
    task_ids_backlog: int = 100_000  # task ids in those events
    log_interval_s: float = 10.0

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.max_attempts, self.retry_base_s, self.retry_max_s)


class ProjectBackend(Protocol):
    """What the verifier needs of a known project's backend."""

    @property
    def has_connection(self) -> bool: ...

    def ls(self) -> Any: ...

    def knows_annotation(self, annotation_id: int) -> bool: ...


@dataclass
class _Event:
    project_id: int
    action: str
    annotation_id: int
    attempts: int = 0

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.project_id, self.action, self.annotation_id)


@dataclass
class _Counter:
    """A known project's webhook counts."""

    count: int = 0
    confirmed: int = 0
    rejected: int = 0
    unverifiable: int = 0
    shed: int = 0
    seen: "OrderedDict[tuple[int, str], None]" = field(default_factory=OrderedDict)
    known_ids: "OrderedDict[int, None]" = field(default_factory=OrderedDict)  # annotations confirmed to exist


@dataclass
class _Stranger:
    """An unknown project's counts (kept in a bounded LRU)."""

    rejected: int = 0
    unverifiable: int = 0
    shed: int = 0


class WebhookVerifier:
    """Queues annotation events, confirms them with Label Studio, counts them, triggers runs (module doc)."""

    def __init__(
        self,
        get_backend: Callable[[int], ProjectBackend],
        known_elsewhere: Callable[[int], bool],
        confirming_client: Callable[[], Any],
        trigger: Callable[[int, str], str],
        settings: Settings,
        limits: WebhookLimits | None = None,
    ) -> None:
        self._get_backend = get_backend
        self._known_elsewhere = known_elsewhere
        self._confirming_client = confirming_client
        self._trigger = trigger
        self._settings = settings
        self._limits = limits = limits or WebhookLimits()
        self._queue: DueQueue[_Event] = DueQueue(
            [(LANE_NAMES[CREDENTIALED], limits.backlog), (LANE_NAMES[KNOWN], limits.backlog), (LANE_NAMES[STRANGER], limits.stranger_backlog)]
        )
        self._lock = threading.Lock()
        self._queued: set[tuple[int, str, int]] = set()
        self._counters: dict[int, _Counter] = {}
        self._strangers: OrderedDict[int, _Stranger] = OrderedDict()
        self._shed = [0, 0, 0]
        self._threads: list[threading.Thread] = []
        self._throttled = ThrottledLog(log, limits.log_interval_s)

    # ---- intake (request threads) -------------------------------------------------------------------
    def knows(self, project_id: int) -> bool:
        """Whether the project counts as known (module doc)."""
        with self._lock:
            if project_id in self._counters:
                return True
        return self._known_elsewhere(project_id)

    def submit(self, project_id: int, action: str, annotation_ids: list[int], credentialed: bool = False) -> int:
        """Queue events for confirmation; returns how many were queued (duplicates of queued ones and
        shed ones are not). Raises :class:`BacklogFull` for a credentialed event that finds its lane full."""
        known = self.knows(project_id)
        lane = CREDENTIALED if credentialed else KNOWN if known else STRANGER
        if action == DELETED:
            annotation_ids = self._deletions_that_could_count(project_id, annotation_ids, known)
        self._start_workers()
        n = shed = 0
        for aid in annotation_ids:
            ev = _Event(project_id, action, aid)
            with self._lock:
                if ev.key in self._queued:
                    continue
                if not self._queue.put(lane, ev):
                    if credentialed:
                        raise BacklogFull()
                    self._note_shed(project_id, lane)
                    shed += 1
                    continue
                self._queued.add(ev.key)
            n += 1
        if shed:
            limit = self._queue.lane_stats(lane)["limit"]
            self._throttled.warning(f"shed-{lane}", "webhooks: the %s backlog is full (%d); shedding anonymous events", LANE_NAMES[lane], limit)
        return n

    def _deletions_that_could_count(self, project_id: int, annotation_ids: list[int], known: bool) -> list[int]:
        """A deletion counts only for an annotation seen to exist (module doc); the others are counted
        as rejected here, without a queue slot or a GET, so a forged list of made-up ids for a known
        project cannot fill its lane. An annotation whose creation still waits for confirmation counts
        as seen."""
        with self._lock:
            c = self._counters.get(project_id)
            keep = [a for a in annotation_ids if known and (
                (c is not None and a in c.known_ids)
                or (project_id, "ANNOTATION_CREATED", a) in self._queued or (project_id, "ANNOTATION_UPDATED", a) in self._queued)]
        if known and len(keep) < len(annotation_ids):
            backend = self._get_backend(project_id)
            kept = set(keep)
            keep = [a for a in annotation_ids if a in kept or backend.knows_annotation(a)]
        for _ in range(len(annotation_ids) - len(keep)):
            self._bump(project_id, known, "rejected")
        return keep

    def _note_shed(self, project_id: int, lane: int) -> None:
        """Count one shed event (caller holds the lock)."""
        self._shed[lane] += 1
        if lane == STRANGER:
            self._stranger(project_id).shed += 1
        else:
            self._counter(project_id).shed += 1

    def _start_workers(self) -> None:
        """Threads start with the first event, so an app that never gets one (tests) starts none."""
        with self._lock:
            if self._threads:
                return
            for i in range(max(1, self._limits.workers)):
                lanes = (CREDENTIALED, KNOWN) if i == 0 and self._limits.workers > 1 else (CREDENTIALED, KNOWN, STRANGER)
                t = threading.Thread(target=self._work, args=(lanes,), name=f"lasl-webhook-{i}", daemon=True)
                self._threads.append(t)
                t.start()

    # ---- state ------------------------------------------------------------------------------------------
    def _counter(self, pid: int) -> _Counter:
        """A known project's counter, made on first use (caller holds the lock)."""
        c = self._counters.get(pid)
        if c is None:
            c = self._counters[pid] = _Counter()
            self._strangers.pop(pid, None)
        return c

    def _stranger(self, pid: int) -> _Stranger:
        """An unknown project's counts, most recently used last (caller holds the lock)."""
        s = self._strangers.get(pid)
        if s is None:
            s = self._strangers[pid] = _Stranger()
            while len(self._strangers) > self._limits.strangers_tracked:
                self._strangers.popitem(last=False)
        else:
            self._strangers.move_to_end(pid)
        return s

    def _bump(self, pid: int, known: bool, what: str) -> None:
        with self._lock:
            target: Any = self._counter(pid) if known else self._stranger(pid)
            setattr(target, what, getattr(target, what) + 1)

    # ---- workers ----------------------------------------------------------------------------------------
    def _work(self, lanes: tuple[int, ...]) -> None:
        serve_jobs(self._queue, lanes, self._handle, self._finish, self._limits.backoff, "webhook verifier")

    def _finish(self, lane: int, ev: _Event) -> None:
        with self._lock:
            self._queued.discard(ev.key)
            self._queue.done(lane)

    def _handle(self, lane: int, ev: _Event) -> bool:
        """Confirm and count one event; True = try again later (Label Studio did not answer)."""
        known = self.knows(ev.project_id)  # the lane sets priority only: credentials make no project known
        try:
            verdict = self._verdict(ev, known)
        except LabelStudioError as exc:
            if exc.transient:
                self._throttled.warning(f"unanswered-{lane}", "project %s: cannot confirm %s %s yet: %s", ev.project_id, ev.action, ev.annotation_id, exc)
                return True
            verdict = None
        if verdict is _UNVERIFIABLE:
            self._bump(ev.project_id, known, "unverifiable")
            self._throttled.warning(f"unverifiable-{lane}", "project %s: no Label Studio connection to confirm an anonymous %s; not counted", ev.project_id, ev.action)
        elif verdict is None:
            self._bump(ev.project_id, known, "rejected")
            self._throttled.warning(f"rejected-{lane}", "project %s: %s for annotation %s not confirmed by Label Studio; ignored", ev.project_id, ev.action, ev.annotation_id)
        else:
            self._count(ev, str(verdict))
        return False

    def _verdict(self, ev: _Event, known: bool) -> object:
        """The dedup key of a confirmed change, None if Label Studio does not confirm it, or
        ``_UNVERIFIABLE`` when there is no way to ask and auth is on."""
        backend = self._get_backend(ev.project_id) if known else None
        client = self._confirming_client()  # the environment's credentials, short timeout, no retry inside
        if client is None and backend is not None and backend.has_connection:
            client = backend.ls()  # only what /setup sent: the project's own connection
        if client is None:
            if self._settings.auth_enabled or backend is None:  # an unknown project gets no counter unasked
                return _UNVERIFIABLE
            return f"{ev.action}:{time.monotonic_ns()}"  # no auth and no connection: trust, count each
        return self._confirm(client, ev, backend)

    def _confirm(self, client: Any, ev: _Event, backend: ProjectBackend | None) -> str | None:
        ann = client.get_annotation(ev.annotation_id)
        if ev.action == DELETED:
            if ann is not None:
                return None
            with self._lock:
                c = self._counters.get(ev.project_id)
                seen_before = c is not None and ev.annotation_id in c.known_ids
            return "deleted" if seen_before or (backend is not None and backend.knows_annotation(ev.annotation_id)) else None
        if ann is None:
            return None
        proj = ann.get("project")
        if proj != ev.project_id and (backend is None or proj is not None):
            return None  # an unknown project becomes known only by Label Studio naming it
        return f"updated:{ann.get('updated_at') or ann.get('created_at') or ''}"

    def _count(self, ev: _Event, key: str) -> None:
        """Count a confirmed change once; trigger a run every ``train_every``."""
        every = self._settings.train_every
        keep = self._limits.seen_per_project
        with self._lock:
            c = self._counter(ev.project_id)
            seen_key = (ev.annotation_id, key)
            if seen_key in c.seen:
                return
            c.seen[seen_key] = None
            while len(c.seen) > keep:
                c.seen.popitem(last=False)
            if ev.action != DELETED:
                c.known_ids[ev.annotation_id] = None
                while len(c.known_ids) > keep:
                    c.known_ids.popitem(last=False)
            c.confirmed += 1
            c.count += 1
            trigger = c.count >= every
            if trigger:
                c.count = 0
        if trigger:
            state = self._trigger(ev.project_id, f"{every} annotation changes")
            log.info("project %s: %d confirmed annotation changes; training %s", ev.project_id, every, state)

    # ---- reporting and control ----------------------------------------------------------------------------
    def stats(self, project_id: int) -> dict[str, Any]:
        """/metrics' per-project ``webhooks``."""
        with self._lock:
            c = self._counters.get(project_id)
            s = self._strangers.get(project_id) if c is None else None
            base = c or s or _Stranger()
            return {
                "since_last_trigger": c.count if c else 0,
                "train_every": self._settings.train_every,
                "confirmed": c.confirmed if c else 0,
                "rejected": base.rejected,
                "unverifiable": base.unverifiable,
                "shed": base.shed,
            }

    def summary(self) -> dict[str, Any]:
        """/metrics' top-level ``webhooks``: backlogs, their bounds and peaks, what was shed."""
        with self._lock:
            shed = list(self._shed)
            tracked = len(self._strangers)
            counted = len(self._counters)
        lanes = {name: dict(self._queue.lane_stats(i), shed=shed[i]) for i, name in enumerate(LANE_NAMES)}
        return {
            "shed": sum(shed),
            "backlog": sum(v["backlog"] for v in lanes.values()),
            "waiting_for_retry": self._queue.not_yet_due(),
            "lanes": lanes,
            "projects_counted": counted,
            "unknown_projects_tracked": tracked,
        }

    def known_projects(self) -> list[int]:
        """Projects with webhook counts (every one known)."""
        with self._lock:
            return sorted(self._counters)

    def is_queued(self, project_id: int, action: str, annotation_id: int) -> bool:
        """Whether that event waits or is being worked on (tests: a retry that has not happened yet)."""
        with self._lock:
            return (project_id, action, annotation_id) in self._queued

    def wait_idle(self, timeout: float = 10.0) -> bool:
        return self._queue.wait_idle(timeout)

    def stop(self) -> None:
        self._queue.close()
