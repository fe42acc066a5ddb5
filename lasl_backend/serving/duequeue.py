"""A bounded, thread-safe queue of jobs that each have a due time, in lanes of different priority.

Why not ``queue.Queue``: a job that waits for its retry must not block the jobs behind it, so jobs are
kept in a heap by due time and a worker takes the earliest *due* one; and jobs of a trusted lane must be
served before a flood in an untrusted lane, so a worker names the lanes it serves, in priority order.

A job holds its lane's slot from :meth:`DueQueue.put` until :meth:`DueQueue.done`, through its retries:
``held`` (waiting + being worked on) never exceeds the lane's limit, and a retry always finds room.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Generic, Protocol, Sequence, TypeVar

__all__ = ["DueQueue", "Backoff", "serve_jobs"]

log = logging.getLogger(__name__)


class Retryable(Protocol):
    attempts: int


T = TypeVar("T")
J = TypeVar("J", bound=Retryable)


@dataclass
class _Lane(Generic[T]):
    name: str
    limit: int
    heap: list[tuple[float, int, T]] = field(default_factory=list)
    held: int = 0
    peak: int = 0


class DueQueue(Generic[T]):
    """Lanes of bounded heaps ordered by due time (module doc)."""

    def __init__(self, lanes: Sequence[tuple[str, int]], clock: Callable[[], float] = time.monotonic) -> None:
        self._lanes: list[_Lane[T]] = [_Lane(name, max(1, int(limit))) for name, limit in lanes]
        self._clock = clock
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._closed = False
        self._idle = threading.Event()
        self._idle.set()

    def put(self, lane: int, job: T, not_before: float = 0.0) -> bool:
        """Queue ``job``; False (and nothing queued) when the lane is full."""
        with self._cond:
            ln = self._lanes[lane]
            if ln.held >= ln.limit:
                return False
            ln.held += 1
            ln.peak = max(ln.peak, ln.held)
            heapq.heappush(ln.heap, (not_before, next(self._seq), job))
            self._idle.clear()
            self._cond.notify_all()
            return True

    def retry(self, lane: int, job: T, not_before: float) -> None:
        """Put back a job taken with :meth:`get`, due at ``not_before``; it keeps its slot."""
        with self._cond:
            heapq.heappush(self._lanes[lane].heap, (not_before, next(self._seq), job))
            self._cond.notify_all()

    def done(self, lane: int) -> None:
        """A job taken from ``lane`` is finished: free its slot."""
        with self._cond:
            ln = self._lanes[lane]
            ln.held = max(0, ln.held - 1)
            if not any(x.held for x in self._lanes):
                self._idle.set()

    def get(self, lanes: Sequence[int]) -> tuple[int, T] | None:
        """The earliest due job of the first of ``lanes`` that has one due; blocks until there is one.
        None once the queue is closed."""
        with self._cond:
            while not self._closed:
                now = self._clock()
                soonest: float | None = None
                for i in lanes:
                    heap = self._lanes[i].heap
                    if not heap:
                        continue
                    if heap[0][0] <= now:
                        return i, heapq.heappop(heap)[2]
                    soonest = heap[0][0] if soonest is None else min(soonest, heap[0][0])
                self._cond.wait(None if soonest is None else max(0.0, soonest - now))
            return None

    def now(self) -> float:
        """The queue's clock: due times are on it."""
        return self._clock()

    def close(self) -> None:
        """Wake every worker; :meth:`get` answers None from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """True once no job is waiting or being worked on."""
        return self._idle.wait(timeout)

    def not_yet_due(self) -> int:
        """Jobs waiting for a later due time (retries)."""
        now = self._clock()
        with self._cond:
            return sum(1 for ln in self._lanes for nb, _, _ in ln.heap if nb > now)

    def lane_stats(self, lane: int) -> dict[str, int]:
        """``backlog`` (held now), ``limit`` and ``peak`` (the most ever held) of one lane."""
        with self._cond:
            ln = self._lanes[lane]
            return {"backlog": ln.held, "limit": ln.limit, "peak": ln.peak}


@dataclass(frozen=True)
class Backoff:
    """How often and how late a job that could not be done yet is tried again."""

    max_attempts: int
    base_s: float
    max_s: float

    def delay(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (1, 2, ...): doubling from ``base_s`` up to ``max_s``."""
        return min(self.max_s, self.base_s * 2 ** (attempt - 1))


def serve_jobs(queue: DueQueue[J], lanes: Sequence[int], handle: Callable[[int, J], bool], finish: Callable[[int, J], None],
               backoff: Backoff, what: str) -> None:
    """A worker's loop until the queue closes: take the next due job of ``lanes``, ``handle`` it; a job
    whose handler answers True (try again later) goes back with its backoff while attempts remain, every
    other job is ``finish``-ed (which must call :meth:`DueQueue.done`). A failing handler never ends the loop."""
    while (got := queue.get(lanes)) is not None:
        lane, job = got
        try:
            retry = handle(lane, job)
        except Exception:  # noqa: BLE001 - a worker must survive anything
            log.exception("%s: unexpected error", what)
            retry = False
        if retry and job.attempts < backoff.max_attempts:
            job.attempts += 1
            queue.retry(lane, job, queue.now() + backoff.delay(job.attempts))
            continue
        finish(lane, job)
