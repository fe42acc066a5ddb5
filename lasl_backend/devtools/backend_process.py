"""The backend as a subprocess: ``lasl serve`` of the installation that runs this tool.

The command is this interpreter with ``-m lasl_backend.cli``, never a path into a checkout or a ``lasl`` found
on PATH: a tool run from an installed package then starts that same package, wherever it is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from .measure import logger
from .processes import free_port, start_process_group, stop_process_group, wait_http_ok

__all__ = ["BackendProcess", "bench_backend_env", "lasl_command", "parse_env"]


def lasl_command() -> list[str]:
    """``lasl`` of this installation: the running interpreter with the CLI module."""
    return [sys.executable, "-m", "lasl_backend.cli"]


_log = logger("backend", clock=True)


def bench_backend_env(ls_url: str, ls_token: str) -> dict[str, str]:
    """The settings every benchmark's backend starts from: talk to the Label Studio at ``ls_url``, start a
    run only when the benchmark asks (``LASL_TRAIN_EVERY=1000000``: never by the annotation count), and
    retry a failed Label Studio call after 1 s, not the default 5 s (``LASL_RETRY_BACKOFF_S``)."""
    return {"LABEL_STUDIO_URL": ls_url, "LABEL_STUDIO_API_KEY": ls_token, "LASL_TRAIN_EVERY": "1000000", "LASL_RETRY_BACKOFF_S": "1"}


def parse_env(spec: str) -> dict[str, str]:
    """Extra backend settings from the command line: ``NAME=VALUE,NAME=VALUE`` → a dict, spaces around
    names and values dropped, empty parts skipped. A part without ``=`` or a name is a ValueError naming it."""
    out = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{part.strip()!r} is not NAME=VALUE (expected comma-separated NAME=VALUE settings)")
        out[name.strip()] = value.strip()
    return out


class BackendProcess:
    """``lasl serve`` on 127.0.0.1 in its own process group, with ``MODEL_DIR`` in ``model_dir`` and one torch
    thread (``LASL_TORCH_THREADS=1``, as the backend runs by default); ``env`` adds or overrides settings,
    ``log_level`` is ``lasl serve --log-level`` (gunicorn's own log) if given."""

    def __init__(self, model_dir: Path, log_path: Path, env: Mapping[str, str], threads: int = 8, log_level: str | None = None) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.env = dict(os.environ)
        model_dir = Path(model_dir).absolute()
        self.env.update({"MODEL_DIR": str(model_dir), "LASL_TORCH_THREADS": "1", "LOG_LEVEL": "INFO"})
        self.env.update(env)
        self.threads = threads
        self.log_level = log_level
        #: the server's working directory: the model directory's parent, nothing of a checkout
        self.cwd = model_dir.parent
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        level = ["--log-level", self.log_level] if self.log_level else []
        return [*lasl_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port), "--threads", str(self.threads), *level]

    def __enter__(self) -> BackendProcess:
        argv = self.argv()
        _log(f"starting backend: {' '.join(argv)} (log {self.log_path})")
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.proc = start_process_group(argv, self.env, self.log_path, cwd=self.cwd)
        try:
            wait_http_ok(f"{self.url}/health", 120, self.proc, expect={"status": "UP"}, log_path=self.log_path)
        except BaseException:
            stop_process_group(self.proc)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.proc is not None:
            stop_process_group(self.proc, grace=30)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
