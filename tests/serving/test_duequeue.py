"""The webhook queue's pieces: due-time order, lane priority, bounds that hold through retries, and log
lines that a flood cannot multiply."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from dataclasses import dataclass

from lasl_backend.serving.duequeue import Backoff, DueQueue, serve_jobs
from lasl_backend.serving.logthrottle import ThrottledLog


def test_a_job_not_yet_due_lets_the_due_ones_pass() -> None:
    q: DueQueue[str] = DueQueue([("only", 10)])
    assert q.put(0, "retry later", not_before=time.monotonic() + 3600)
    assert q.put(0, "now")
    assert q.get((0,)) == (0, "now")
    assert q.not_yet_due() == 1


def test_a_worker_takes_its_lanes_in_the_order_it_names_them() -> None:
    q: DueQueue[str] = DueQueue([("trusted", 10), ("flood", 10)])
    for i in range(3):
        assert q.put(1, f"flood{i}")
    assert q.put(0, "real")
    assert q.get((0, 1)) == (0, "real")
    assert q.get((0, 1)) == (1, "flood0")
    assert q.put(1, "flood3")
    done = threading.Event()
    got: list[object] = []

    def trusted_only() -> None:
        got.append(q.get((0,)))  # never takes a flood job: waits until one of its own lanes has one
        done.set()

    threading.Thread(target=trusted_only, daemon=True).start()
    assert not done.wait(0.2)
    q.put(0, "real2")
    assert done.wait(5) and got == [(0, "real2")]


def test_a_lane_holds_its_bound_through_work_and_retries() -> None:
    q: DueQueue[str] = DueQueue([("lane", 2)])
    assert q.put(0, "a") and q.put(0, "b")
    assert not q.put(0, "c")
    lane, job = q.get((0,))  # type: ignore[misc]
    assert not q.put(0, "c")  # "a" is being worked on: it still holds its slot
    q.retry(lane, job, time.monotonic() + 3600)
    assert not q.put(0, "c")  # and waiting for its retry, too
    assert q.lane_stats(0) == {"backlog": 2, "limit": 2, "peak": 2}
    q.done(lane)
    assert q.put(0, "c")
    assert not q.wait_idle(0.01)


def test_closing_wakes_every_waiting_worker() -> None:
    q: DueQueue[str] = DueQueue([("lane", 1)])
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(q.get((0,))), daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    q.close()
    for t in threads:
        t.join(5)
    assert results == [None, None, None]


def test_idle_once_every_job_is_done() -> None:
    q: DueQueue[str] = DueQueue([("lane", 5)])
    assert q.wait_idle(0.01)
    q.put(0, "x")
    lane, _ = q.get((0,))  # type: ignore[misc]
    assert not q.wait_idle(0.01)
    q.done(lane)
    assert q.wait_idle(0.01)


def test_a_repeated_line_is_logged_once_per_interval_with_the_count_held_back(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    throttled = ThrottledLog(logging.getLogger("lasl_backend.test"), interval_s=10.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="lasl_backend.test")
    logged = [throttled.warning("shed", "shed event %d", i) for i in range(1000)]
    assert logged[0] and not any(logged[1:])
    assert throttled.warning("other", "another kind")  # kinds are throttled apart
    now[0] += 10.0
    assert throttled.warning("shed", "shed event %d", 1000)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["shed event 0", "another kind", "shed event 1000 (999 more like this in the last 10 s)"]


@dataclass
class _Job:
    name: str
    attempts: int = 0


def test_a_worker_retries_with_backoff_survives_a_failing_handler_and_frees_every_slot() -> None:
    q: DueQueue[_Job] = DueQueue([("only", 3)])
    for name in ("flaky", "broken", "fine"):
        assert q.put(0, _Job(name))
    handled: list[tuple[str, int]] = []
    finished: list[tuple[str, int]] = []

    def handle(lane: int, job: _Job) -> bool:
        handled.append((job.name, job.attempts))
        if job.name == "broken":
            raise RuntimeError("a bug in one job")
        return job.name == "flaky"  # asks to be tried again, every time

    def finish(lane: int, job: _Job) -> None:
        finished.append((job.name, job.attempts))
        q.done(lane)

    worker = threading.Thread(target=serve_jobs, args=(q, (0,), handle, finish, Backoff(2, 0.01, 0.02), "test"))
    worker.start()
    assert q.wait_idle(10.0)
    q.close()
    worker.join(10.0)
    assert not worker.is_alive()
    assert sorted(finished) == [("broken", 0), ("fine", 0), ("flaky", 2)]  # two retries, then given up
    assert [a for n, a in handled if n == "flaky"] == [0, 1, 2]
    assert q.lane_stats(0)["backlog"] == 0


def test_backoff_doubles_up_to_its_cap() -> None:
    b = Backoff(max_attempts=5, base_s=2.0, max_s=5.0)
    assert [b.delay(k) for k in (1, 2, 3, 4)] == [2.0, 4.0, 5.0, 5.0]
