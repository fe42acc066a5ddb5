"""The Label Studio connection: whose credentials, one client per (url, key), retries that a stop ends."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from lasl_backend.config import Settings
from lasl_backend.labelstudio import (
    LabelStudioAuthError,
    LabelStudioRequestError,
    LabelStudioServerError,
    LabelStudioUnreachable,
    LSClient,
)
from lasl_backend.ner import TrainingCancelled
from lasl_backend.serving.connection import LabelStudioConnection, NoConnectionError

from tests.fake_label_studio import FakeLabelStudio


class RecordingStop(threading.Event):
    """A stop event that records the waits asked of it and never waits."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(float(timeout or 0.0))
        return self.is_set()


class Credentials(LSClient):
    """An LSClient that shows which key it was built with (a real one never does)."""

    def __init__(self, url: str, api_key: str) -> None:
        super().__init__(url, api_key)
        self.key = api_key


def connection(tmp_path: Path, stop: threading.Event | None = None, **kw: Any) -> LabelStudioConnection:
    return LabelStudioConnection(1, Settings(model_dir=tmp_path, **kw), stop or RecordingStop(), Credentials)


def failing(*errors: Exception, then: Any = "ok") -> Any:
    calls: list[int] = []

    def call() -> Any:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return then

    call.calls = calls  # type: ignore[attr-defined]
    return call


def test_environment_credentials_come_before_setup_ones(tmp_path: Path) -> None:
    c = connection(tmp_path, label_studio_url="http://ls.example:8080", label_studio_api_key="env-key")
    c.remember_setup("http://other.example", "setup-token")
    client = c.client()
    assert (client.url, client.key) == ("http://ls.example:8080", "env-key")


def test_setup_credentials_are_used_when_the_environment_has_none(tmp_path: Path) -> None:
    c = connection(tmp_path)
    assert not c.available
    with pytest.raises(NoConnectionError, match="LABEL_STUDIO_URL"):
        c.client()
    for hostname, token in [("ftp://ls", "t"), ("http://user:pw@ls", "t"), ("http://ls", "  "), (None, "t"), ("http://ls", 5),
                            ("http://:8080", "t"), ("http://[::1", "t")]:
        c.remember_setup(hostname, token)
        assert not c.available, (hostname, token)
    c.remember_setup("http://ls.example:8080/", " tok ")
    assert c.available and (c.client().url, c.client().key) == ("http://ls.example:8080", "tok")


def test_one_client_per_url_and_key(tmp_path: Path) -> None:
    made: list[tuple[str, str]] = []

    def factory(url: str, key: str) -> LSClient:
        made.append((url, key))
        return LSClient(url, key)

    c = LabelStudioConnection(1, Settings(model_dir=tmp_path), RecordingStop(), factory)
    c.remember_setup("http://ls.example", "a")
    first = c.client()
    assert c.client() is first
    c.remember_setup("http://ls.example", "b")  # a new token from /setup: a new client
    second = c.client()
    assert second is not first and made == [("http://ls.example", "a"), ("http://ls.example", "b")]
    c.remember_setup("http://ls.example", "a")
    assert c.client() is first


def test_transient_errors_are_retried_with_doubling_waits(tmp_path: Path) -> None:
    stop = RecordingStop()
    c = connection(tmp_path, stop, train_retries=3, retry_backoff_s=0.5)
    call = failing(LabelStudioServerError("HTTP 500", 500), LabelStudioUnreachable("down"), LabelStudioAuthError("HTTP 401", 401))
    assert c.retry("fetch tasks", call) == "ok"
    assert len(call.calls) == 4 and stop.waits == [0.5, 1.0, 2.0]


def test_retries_give_up_with_the_last_error(tmp_path: Path) -> None:
    stop = RecordingStop()
    c = connection(tmp_path, stop, train_retries=2, retry_backoff_s=1.0)
    call = failing(*[LabelStudioServerError(f"HTTP 50{i}", 500 + i) for i in range(5)])
    with pytest.raises(LabelStudioServerError, match="HTTP 502"):
        c.retry("push predictions", call)
    assert len(call.calls) == 3 and stop.waits == [1.0, 2.0]


def test_a_refused_request_is_not_retried(tmp_path: Path) -> None:
    stop = RecordingStop()
    c = connection(tmp_path, stop, train_retries=3)
    call = failing(LabelStudioRequestError("HTTP 400", 400))
    with pytest.raises(LabelStudioRequestError):
        c.retry("set model_version", call)
    assert len(call.calls) == 1 and stop.waits == []
    other = failing(ValueError("our bug"))
    with pytest.raises(ValueError):
        c.retry("x", other)
    assert len(other.calls) == 1


def test_a_stop_request_ends_the_wait_between_retries(tmp_path: Path) -> None:
    stop = threading.Event()
    c = connection(tmp_path, stop, train_retries=3, retry_backoff_s=3600.0)
    call = failing(*[LabelStudioUnreachable("down")] * 4)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            c.retry("fetch tasks", call)
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    t = threading.Thread(target=run)
    t.start()
    while not call.calls:
        t.join(0.01)
    stop.set()
    t.join(30)  # an uninterrupted wait would take an hour
    assert not t.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], TrainingCancelled) and len(call.calls) == 1


def test_retries_against_label_studio_over_http(tmp_path: Path) -> None:
    with FakeLabelStudio() as fake:
        fake.add_project(1, "<View/>")
        fake.fail["/api/projects/1"] = [503, 500]
        s = Settings(model_dir=tmp_path, label_studio_url=fake.url, label_studio_api_key=fake.token, retry_backoff_s=0.0, train_retries=2)
        c = LabelStudioConnection(1, s, RecordingStop(), lambda url, key: LSClient(url, key, timeout=10, max_retries=0))
        client = c.client()
        assert c.retry("get project", lambda: client.get_project(1))["id"] == 1
        assert fake.count("/api/projects/1") == 3
