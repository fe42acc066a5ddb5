"""The training scheduler through the app: single flight, coalescing, follow-up runs, retries after
Label Studio failed a run."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from lasl_backend.serving.backend import COLD_START_VERSION, CONTINUE_REASON, LaslBackend
from lasl_backend.serving.routes import init_app
from lasl_backend.serving.final_run import FINAL_REASON
from lasl_backend.serving.scheduler import RETRY_REASON
from lasl_backend.serving.store import VERSION_RE

from tests.fake_label_studio import FakeLabelStudio
from tests.serving.helpers import make_settings, populate, start_training, wait_idle


def test_a_run_label_studio_failed_runs_again_by_itself(tmp_path: Path) -> None:
    """LS answers 500 longer than the per-call retries: the run fails, and without any new trigger the
    trainer runs again after LASL_RETRY_LATER_S and publishes once LS is back."""
    with FakeLabelStudio() as fake:
        populate(fake)
        fake.fail["/api/tasks"] = [500] * 4  # the first run's fetch and its one retry (the SDK also retries once)
        app = init_app(LaslBackend, settings=make_settings(tmp_path, fake, retry_later_s=0.5))
        c = app.test_client()
        assert c.post("/webhook", json=start_training()).status_code == 201
        deadline = time.monotonic() + 120
        seen_failure = False
        while time.monotonic() < deadline:
            m = c.get("/metrics").get_json()["projects"]["1"]
            seen_failure |= m["training"]["runs_failed"] >= 1
            if m["model_version"] != COLD_START_VERSION and not m["trainer"]["running"]:
                break
            time.sleep(0.1)
        assert seen_failure and m["training"]["runs_failed"] == 1 and m["training"]["runs_ok"] == 1
        assert VERSION_RE.match(m["model_version"]) and fake.projects[1]["model_version"] == m["model_version"]
        assert m["training"]["reason"] == RETRY_REASON
        assert m["trainer"]["runs_started"] == 2 and m["trainer"]["failures_in_a_row"] == 0
        assert not m["trainer"]["retry_scheduled"]


def test_a_refused_request_is_not_retried_later(tmp_path: Path) -> None:
    """A failure that waiting cannot fix (LS refuses the request with a 400) schedules no retry."""
    with FakeLabelStudio() as fake:
        populate(fake)
        fake.fail["/api/tasks"] = [400] * 4
        app = init_app(LaslBackend, settings=make_settings(tmp_path, fake, retry_later_s=0.2))
        c = app.test_client()
        assert c.post("/webhook", json=start_training()).status_code == 201
        wait_idle(app)
        time.sleep(0.6)
        m = c.get("/metrics").get_json()["projects"]["1"]
        assert m["training"]["runs_failed"] == 1 and "400" in m["training"]["last_error"]
        assert m["trainer"]["runs_started"] == 1 and not m["trainer"]["retry_scheduled"]
        assert m["model_version"] == COLD_START_VERSION


def test_single_flight_and_coalescing(tmp_path: Path) -> None:
    gate = threading.Event()
    entered = threading.Event()

    class Slow(LaslBackend):
        calls = 0
        active = 0
        max_active = 0
        lock = threading.Lock()

        def fit(self, event: str, data: Any = None, **kw: Any) -> dict[str, Any]:
            with Slow.lock:
                Slow.calls += 1
                Slow.active += 1
                Slow.max_active = max(Slow.max_active, Slow.active)
            entered.set()
            gate.wait(30)
            with Slow.lock:
                Slow.active -= 1
            return {}

    app = init_app(Slow, settings=make_settings(tmp_path))
    c = app.test_client()
    r = c.post("/webhook", json=start_training())
    assert r.get_json()["result"]["training"] == "started"
    assert entered.wait(10)
    states = []
    for _ in range(5):
        t0 = time.perf_counter()
        r = c.post("/webhook", json=start_training())
        assert r.status_code == 201 and time.perf_counter() - t0 < 1.0
        states.append(r.get_json()["result"]["training"])
    assert states == ["queued"] + ["coalesced"] * 4
    gate.set()
    wait_idle(app)
    assert Slow.calls == 2 and Slow.max_active == 1
    assert app.extensions["lasl"].trainer.status(1) == {
        "running": False, "pending": False, "runs_started": 2, "coalesced": 4, "failures_in_a_row": 0, "retry_scheduled": False,
    }


def test_a_run_cut_short_while_improving_gets_a_follow_up_run(tmp_path: Path) -> None:
    """fit() reports follow_up=True (budget used, dev F1 still rising): the manager runs one more,
    with the continue reason, and stops when fit says so."""
    reasons: list[str] = []

    class Budgeted(LaslBackend):
        def fit(self, event: str, data: Any = None, **kw: Any) -> dict[str, Any]:
            reasons.append(event)
            return {"follow_up": len(reasons) < 3}

    app = init_app(Budgeted, settings=make_settings(tmp_path))
    c = app.test_client()
    assert c.post("/webhook", json=start_training()).get_json()["result"]["training"] == "started"
    wait_idle(app)
    assert reasons == ["START_TRAINING", CONTINUE_REASON, CONTINUE_REASON]
    assert app.extensions["lasl"].trainer.status(1)["runs_started"] == 3


def test_a_run_whose_rule_says_stop_gets_the_final_run_after_any_follow_up(tmp_path: Path) -> None:
    """fit() reports final_due: the manager runs the final run next; a follow-up still goes first."""
    reasons: list[str] = []
    summaries = [{"follow_up": True, "final_due": True}, {"final_due": True}, {"final_due": False}]

    class Stopping(LaslBackend):
        def fit(self, event: str, data: Any = None, **kw: Any) -> dict[str, Any]:
            reasons.append(event)
            return summaries[len(reasons) - 1]

    app = init_app(Stopping, settings=make_settings(tmp_path))
    assert app.test_client().post("/webhook", json=start_training()).get_json()["result"]["training"] == "started"
    wait_idle(app)
    assert reasons == ["START_TRAINING", CONTINUE_REASON, FINAL_REASON]
