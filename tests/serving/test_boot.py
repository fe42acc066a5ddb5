"""Process start-up: ``boot`` does everything process-wide, once; ``init_app`` only builds an app."""

from __future__ import annotations

import ast
import logging
import runpy
from pathlib import Path
from typing import Any

import pytest
import torch

from lasl_backend.config import ConfigError, Settings
from lasl_backend.serving import boot as boot_module
from lasl_backend.serving.boot import boot
from lasl_backend.serving.redaction import SecretRedactingFilter
from lasl_backend.serving.routes import init_app
from lasl_backend.serving.server import serve
from lasl_backend.serving.store import ModelStore

REPO = Path(__file__).resolve().parents[2]
SERVING = REPO / "lasl_backend" / "serving"
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")


@pytest.fixture()
def thread_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every torch.set_num_threads call, recorded instead of made."""
    calls: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    return calls


@pytest.fixture(autouse=True)
def freeze_calls(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """gc.freeze calls, recorded instead of made (the test process keeps collecting)."""
    calls: list[bool] = []
    monkeypatch.setattr(boot_module.gc, "freeze", lambda: calls.append(True))
    return calls


@pytest.fixture()
def lasl_logger_level() -> Any:
    lg = logging.getLogger("lasl_backend")
    level = lg.level
    yield lg
    lg.setLevel(level)


def leftover(model_dir: Path, pid: int = 3) -> Path:
    """A version write that a crash interrupted: a directory under the project's tmp/."""
    store = ModelStore(model_dir)
    d = store.project_dir(pid) / "tmp" / "half-written"
    d.mkdir(parents=True)
    (d / "weights.pt").write_bytes(b"partial")
    return d


@needs_no_cuda
def test_the_server_refuses_a_device_that_is_not_there(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, thread_calls: list[int],
                                                      freeze_calls: list[bool]) -> None:
    monkeypatch.setenv("LASL_DEVICE", "cuda")
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "models"))
    with pytest.raises(ConfigError, match="LASL_DEVICE.*sees no CUDA GPU"):
        serve(port=0)  # `lasl serve`: refused before gunicorn starts
    with pytest.raises(ConfigError, match="LASL_DEVICE.*sees no CUDA GPU"):
        runpy.run_path(str(REPO / "_wsgi.py"))  # gunicorn _wsgi:app
    assert thread_calls == []  # refused before anything process-wide was changed
    assert freeze_calls == []


def test_boot_sets_up_the_process(tmp_path: Path, thread_calls: list[int], lasl_logger_level: logging.Logger,
                                  freeze_calls: list[bool]) -> None:
    stale = leftover(tmp_path)
    s = Settings(model_dir=tmp_path, torch_threads=3, log_level="WARNING", basic_auth_user="u", basic_auth_pass="boot-secret-pass")
    boot(s)
    assert thread_calls == [3]
    assert freeze_calls == [True]  # what is loaded by now stays out of the collector's walks
    assert lasl_logger_level.level == logging.WARNING
    flt = [f for f in lasl_logger_level.filters if isinstance(f, SecretRedactingFilter)]
    assert flt  # the first boot of a process installs it with that process's secrets
    assert not stale.exists() and ModelStore(tmp_path).projects() == [3]


def test_zero_torch_threads_leave_torch_alone(tmp_path: Path, thread_calls: list[int], lasl_logger_level: logging.Logger) -> None:
    boot(Settings(model_dir=tmp_path, torch_threads=0))
    assert thread_calls == []


def test_boot_warns_when_the_crf_kernel_is_numpy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                                   thread_calls: list[int], lasl_logger_level: logging.Logger) -> None:
    monkeypatch.setattr(boot_module, "crf_kernel_name", lambda: "numpy")
    caplog.set_level(logging.WARNING, logger="lasl_backend")
    boot(Settings(model_dir=tmp_path))
    assert "CRF kernel: numpy" in caplog.text


def test_init_app_changes_nothing_process_wide(tmp_path: Path, thread_calls: list[int], lasl_logger_level: logging.Logger) -> None:
    stale = leftover(tmp_path)
    level = lasl_logger_level.level
    for _ in range(3):
        app = init_app(settings=Settings(model_dir=tmp_path, torch_threads=4, log_level="ERROR"))
        assert app.test_client().get("/health").status_code == 200
    assert thread_calls == [] and lasl_logger_level.level == level
    assert stale.exists()  # clean-up is boot's, at process start, never while another app may be writing


def _imported_modules(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            out.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_routes_talk_only_to_the_facade() -> None:
    imported = _imported_modules(SERVING / "routes.py")
    forbidden = {"..ner", "..crf", ".store", ".backend", ".scheduler", "torch", "..strategies", "..labelstudio"}
    assert not imported & forbidden, imported & forbidden
    assert ".service" in imported


def test_torch_threads_are_set_only_at_boot() -> None:
    setters = [p.name for p in sorted(SERVING.glob("*.py")) if "set_num_threads" in p.read_text(encoding="utf-8")]
    assert setters == ["boot.py"]


def test_boot_warns_when_torch_threads_and_worker_threads_would_nest(tmp_path: Path, thread_calls: list[int],
                                                                     lasl_logger_level: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="lasl_backend.serving.boot"):
        boot(Settings(model_dir=tmp_path, torch_threads=1))
        assert not [r for r in caplog.records if "LASL_TORCH_THREADS" in r.getMessage()]
        boot(Settings(model_dir=tmp_path, torch_threads=4, score_workers=2))
    assert [r for r in caplog.records if "LASL_TORCH_THREADS=4" in r.getMessage()]
