"""Run state: one snapshot per read, the four ways a run ends, annotations the last fetch saw."""

from __future__ import annotations

import threading

from lasl_backend.serving.run_state import RunState, RunTracker


def test_a_run_that_succeeds_then_one_that_fails() -> None:
    t = RunTracker()
    assert t.snapshot() == RunState()
    t.started("START_TRAINING")
    t.progress({"epoch": 1, "total_epochs": 2, "step": 5, "loss": 0.3, "lr": 0.1})
    running = t.snapshot()
    assert running.status == "running" and running.started_at and running.finished_at is None
    assert running.progress == {"epoch": 1, "total_epochs": 2, "step": 5, "loss": 0.3}  # only what /metrics shows
    t.succeeded({"version": "v1"})
    ok = t.snapshot()
    assert (ok.status, ok.runs_ok, ok.runs_failed, ok.progress, ok.last_run) == ("idle", 1, 0, None, {"version": "v1"})
    assert ok.duration_s is not None and ok.duration_s >= 0 and running.status == "running"  # snapshots do not change
    t.started("ANNOTATION_CREATED")
    t.failed("LabelStudioServerError: " + "x" * 5000)
    bad = t.snapshot()
    assert (bad.status, bad.reason, bad.runs_ok, bad.runs_failed) == ("failed", "ANNOTATION_CREATED", 1, 1)
    assert len(bad.last_error) == 2000 and bad.last_error_at and bad.last_run == {"version": "v1"}


def test_waiting_and_cancelled_count_as_neither() -> None:
    t = RunTracker()
    t.started("a")
    t.waiting("0 annotated task(s)")
    assert (t.snapshot().status, t.snapshot().last_error, t.snapshot().runs_failed) == ("waiting", "0 annotated task(s)", 0)
    t.started("b")
    t.cancelled()
    s = t.snapshot()
    assert (s.status, s.runs_ok, s.runs_failed) == ("cancelled", 0, 0) and s.finished_at


def test_known_annotations_are_replaced_by_each_fetch() -> None:
    t = RunTracker()
    assert not t.knows_annotation(1)
    t.saw_annotations({1, 2})
    assert t.knows_annotation(1) and t.knows_annotation(2)
    t.saw_annotations([2])
    assert not t.knows_annotation(1) and t.knows_annotation(2)


def test_readers_see_whole_states_while_runs_end() -> None:
    t = RunTracker()
    seen: list[RunState] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.append(t.snapshot())

    r = threading.Thread(target=reader)
    r.start()
    for i in range(200):
        t.started(str(i))
        (t.succeeded if i % 2 else t.failed)({"i": i} if i % 2 else "boom")  # type: ignore[operator]
    stop.set()
    r.join(10)
    final = t.snapshot()
    assert (final.runs_ok, final.runs_failed) == (100, 100)
    ended = [s.runs_ok + s.runs_failed for s in seen]
    assert ended == sorted(ended)  # a reader never sees a count go back
    assert all(s.last_error == "boom" for s in seen if s.status == "failed")
