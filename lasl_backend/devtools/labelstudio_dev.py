"""Install and run a REAL Label Studio 1.23.2 for end-to-end tests, benchmarks and the demo.

Why a real server: the ML-backend protocol has traps that only the real server shows: legacy tokens are off
by default, an ML backend on 127.0.0.1 is blocked (SSRF protection), the webhook it needs is created only when
both ``ML_BLOCK_LOCAL_IP`` and ``SSRF_PROTECTION_ENABLED`` are off, and a busy port makes it move to the next
one silently (docs/serving.md, "Label Studio facts"). Label Studio lives in its own venv (~1 GB) because its
pins (Django, pandas, boto3, ...) must not leak into the backend's environment.

Where that venv is: ``$LASL_LS_VENV``; else, when the package runs from a source checkout, that checkout's
``.ls-venv`` (wherever the tool or pytest is started, so a subdirectory gets no second ~1 GB venv); else
``.ls-venv`` in the current directory (an installed package has no repository to point into).

Manual check (installs the venv on first use, ~90 s; then ~40 s for the first start)::

    python -m lasl_backend.devtools.labelstudio_dev check
    python -m lasl_backend.devtools.labelstudio_dev install [VENV_DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from .measure import logger
from .processes import free_port, http_json, port_is_free, start_process_group, stop_process_group, wait_http_ok

__all__ = [
    "LS_SDK_VERSION",
    "LS_VENV_ENV",
    "LS_VERSION",
    "LabelStudioServer",
    "connect_backend",
    "create_project",
    "default_ls_venv",
    "ensure_ls_venv",
    "free_port",
    "ner_label_config",
    "sdk_client",
    "source_checkout",
    "wait_http_ok",
]

LS_VERSION = "1.23.2"
LS_SDK_VERSION = "2.1.2"  # the pin label-studio 1.23.2 itself uses, and the backend's pin
#: the environment variable that names Label Studio's venv
LS_VENV_ENV = "LASL_LS_VENV"
_STAMP = ".lasl-installed"


_log = logger("labelstudio_dev")


# --------------------------------------------------------------------------------------------- install


def default_ls_venv() -> Path:
    """Label Studio's venv: ``$LASL_LS_VENV``, else the source checkout's ``.ls-venv``, else ``.ls-venv`` in
    the current directory (module doc)."""
    if os.environ.get(LS_VENV_ENV):
        return Path(os.environ[LS_VENV_ENV]).absolute()
    checkout = source_checkout()
    return checkout / ".ls-venv" if checkout is not None else Path(".ls-venv").absolute()


def source_checkout() -> Path | None:
    """The repository this package runs from (the directory above ``lasl_backend`` holds ``pyproject.toml``),
    or None for an installed package."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def ensure_ls_venv(path: Path | None = None, python: str | None = None) -> Path:
    """Return ``path`` (default :func:`default_ls_venv`) after making sure it is a venv with label-studio
    1.23.2, installing it if missing.

    A lock file inside the venv serialises concurrent callers (pytest-xdist workers, the demo and a test run),
    and a stamp written only after a successful install makes an interrupted install retry instead of passing.
    """
    path = Path(path).absolute() if path is not None else default_ls_venv()
    if _installed(path):
        return path
    # The lock lives inside the venv dir (ignored by git); `python -m venv` accepts an existing dir.
    path.mkdir(parents=True, exist_ok=True)
    lock_path = path / ".install.lock"
    with open(lock_path, "w") as lock:
        _log(f"waiting for the install lock {lock_path} ...")
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not _installed(path):  # another caller may have finished while we waited
                _install(path, python)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return path


def _installed(path: Path) -> bool:
    return (path / "bin" / "label-studio").exists() and (path / _STAMP).exists()


def _install(path: Path, python: str | None) -> None:
    """Create the venv with the base interpreter (so it does not depend on the backend's venv) and install
    label-studio into it; the stamp comes last."""
    t0 = time.monotonic()
    if not (path / "bin" / "python").exists():
        _log(f"creating venv {path}")
        base = python or getattr(sys, "_base_executable", None) or sys.executable
        subprocess.run([base, "-m", "venv", str(path)], check=True)
    pip = [str(path / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    _log(f"installing label-studio=={LS_VERSION} into {path} (~90 s, ~1 GB) ...")
    subprocess.run([*pip, "install", "-q", f"label-studio=={LS_VERSION}", f"label-studio-sdk=={LS_SDK_VERSION}"], check=True)
    exe = path / "bin" / "label-studio"
    if not exe.exists():
        raise RuntimeError(f"label-studio installed but {exe} is missing")
    (path / _STAMP).write_text(f"label-studio=={LS_VERSION}\n")
    _log(f"label-studio ready in {time.monotonic() - t0:.0f} s")


# ----------------------------------------------------------------------------------------- server


class LabelStudioServer:
    """A real Label Studio on 127.0.0.1, configured so a localhost ML backend and legacy tokens work.

    Use as a context manager; ``__enter__`` returns once ``GET /health`` says ``{"status": "UP"}``.
    The user, password and legacy token are set by environment on the first start of a data dir; for a reused
    data dir pass the same credentials again (LS does not change an existing user's token).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        ls_venv: Path | None = None,
        port: int | None = None,
        username: str = "admin@example.com",
        password: str | None = None,
        token: str | None = None,
        log_path: Path | None = None,
        startup_timeout: float = 300.0,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.ls_venv = Path(ls_venv).absolute() if ls_venv is not None else default_ls_venv()
        self.port = free_port(port)
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.token = token or secrets.token_hex(20)
        if len(self.token) <= 5:
            raise ValueError("Label Studio needs a legacy token longer than 5 characters")
        self.log_path = Path(log_path).absolute() if log_path else self.data_dir / "label-studio.log"
        self.startup_timeout = startup_timeout
        self.extra_env = dict(extra_env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """Environment for ``label-studio start``: offline, legacy tokens on, no SSRF block, so that an ML
        backend on 127.0.0.1 and its auto-created webhook work (docs/serving.md, "Label Studio facts")."""
        env = dict(os.environ)
        for key in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):  # keep the backend's venv out of LS
            env.pop(key, None)
        env["PATH"] = f"{self.ls_venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env.update(
            {
                "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
                "LABEL_STUDIO_USERNAME": self.username,
                "LABEL_STUDIO_PASSWORD": self.password,
                "LABEL_STUDIO_USER_TOKEN": self.token,
                "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
                "ML_BLOCK_LOCAL_IP": "false",
                "SSRF_PROTECTION_ENABLED": "false",
                "LABEL_STUDIO_HOST": self.url,
                "LATEST_VERSION_CHECK": "false",
                "COLLECT_ANALYTICS": "false",
                "SENTRY_DSN": "",
                "FRONTEND_SENTRY_DSN": "",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> LabelStudioServer:
        """Start the server and wait for health; raises with the log tail if it does not come up."""
        exe = self.ls_venv / "bin" / "label-studio"
        if not exe.exists():
            raise FileNotFoundError(f"{exe} missing: call ensure_ls_venv({str(self.ls_venv)!r}) first")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not port_is_free(self.port):
            self.port = free_port()
        argv = [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "-p", str(self.port)]
        _log(f"starting Label Studio on {self.url} (data {self.data_dir}, log {self.log_path})")
        t0 = time.monotonic()
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.proc = start_process_group(argv, self.env(), self.log_path, cwd=self.data_dir)
        try:
            wait_http_ok(
                f"{self.url}/health",
                self.startup_timeout,
                self.proc,
                expect={"status": "UP"},
                log_path=self.log_path,
                fail_fast=self._port_moved,
            )
            self._check_token()
        except BaseException:
            self.stop()
            raise
        _log(f"Label Studio up in {time.monotonic() - t0:.0f} s")
        return self

    def _port_moved(self) -> str | None:
        """Label Studio silently takes the next port if ours got busy in the meantime: detect it."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_offset)  # only this start's lines: the log is appended across restarts
                log = fh.read().decode("utf-8", errors="replace")
        except OSError:
            return None
        if f"Checking if host & port is available :: localhost:{self.port + 1}" in log:
            return f"port {self.port} became busy and Label Studio moved to another port; stopping it"
        return None

    def _check_token(self) -> None:
        """Fail now, not deep inside a test, if the legacy token does not work (e.g. a reused data dir)."""
        try:
            http_json(f"{self.url}/api/current-user/whoami", headers={"Authorization": f"Token {self.token}"})
        except urllib.error.HTTPError as exc:
            raise RuntimeError(
                f"Label Studio at {self.url} rejected the legacy token ({exc.code}); a reused data dir "
                f"({self.data_dir}) keeps the token of its first start"
            ) from None

    def stop(self) -> None:
        """Kill the server's process group (SIGTERM; LS stops at once)."""
        if self.proc is not None:
            stop_process_group(self.proc)
            self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> LabelStudioServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# -------------------------------------------------------------------------------------------- API


def sdk_client(url: str, token: str) -> Any:
    """``label_studio_sdk.LabelStudio`` for ``url``; imported lazily so this module imports without the SDK."""
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=url, api_key=token)


def ner_label_config(labels: Sequence[str], from_name: str = "label", to_name: str = "text") -> str:
    """The NER labeling config the backend expects: ``<Labels>`` over one ``<Text value="$text">``."""
    inner = "\n".join(f'    <Label value="{lab}"/>' for lab in labels)
    return (
        "<View>\n"
        f'  <Labels name="{from_name}" toName="{to_name}">\n{inner}\n  </Labels>\n'
        f'  <Text name="{to_name}" value="$text"/>\n'
        "</View>"
    )


def create_project(
    url: str, token: str, title: str, label_config: str, texts: Sequence[str], data_key: str = "text"
) -> int:
    """Create a project and import one task per text; returns the project id.

    Checks the task count afterwards, because an import that drops tasks still answers 201.
    """
    ls = sdk_client(url, token)
    project = ls.projects.create(title=title, label_config=label_config)
    pid = int(project.id)
    if texts:
        ls.projects.import_tasks(id=pid, request=[{data_key: t} for t in texts])
    n = sum(1 for _ in ls.tasks.list(project=pid, page_size=100))
    if n != len(texts):
        raise RuntimeError(f"project {pid}: imported {n} tasks, expected {len(texts)}")
    return pid


def connect_backend(url: str, token: str, project_id: int, backend_url: str, title: str) -> int:
    """Connect an ML backend to a project and verify its auto-created webhook; returns the ML backend id.

    Why verify: with only ``ML_BLOCK_LOCAL_IP=false`` LS saves the backend but silently creates no webhook
    (docs/serving.md, "Label Studio facts"), and the backend then never hears about annotations.
    """
    ls = sdk_client(url, token)
    backend_url = backend_url.rstrip("/")
    ml = ls.ml.create(project=project_id, url=backend_url, title=title)
    hooks = ls.webhooks.list(project=str(project_id))
    want = f"{backend_url}/webhook"
    if not any(str(h.url).rstrip("/") == want for h in hooks):
        raise RuntimeError(
            f"ML backend {ml.id} added to project {project_id}, but no webhook {want} exists "
            f"(found {[h.url for h in hooks]}); start Label Studio with SSRF_PROTECTION_ENABLED=false"
        )
    return int(ml.id)


# ------------------------------------------------------------------------------------ manual check


class _StubBackend(BaseHTTPRequestHandler):
    """Minimal ML backend (health/setup/predict/webhook) so ``check`` can test ``connect_backend`` alone."""

    events: ClassVar[list[dict[str, Any]]] = []

    def _reply(self, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._reply({"status": "UP", "model_class": "stub"})

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"{}")
        if self.path.rstrip("/") == "/setup":
            self._reply({"model_version": "stub-v0"})
        elif self.path.rstrip("/") == "/predict":
            self._reply({"results": [{"result": [], "score": 0.0, "model_version": "stub-v0"} for _ in body["tasks"]]})
        else:
            type(self).events.append(body)
            self._reply({"status": "ok"})

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: keep the check's output short."""


@contextlib.contextmanager
def _stub_backend() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", free_port()), _StubBackend)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def _check(venv: Path | None = None) -> int:
    """Install LS if needed, start it in a temp dir, create a project, connect a stub backend, annotate once."""
    venv = ensure_ls_venv(venv)
    with (
        tempfile.TemporaryDirectory(prefix="lasl-ls-check-") as tmp,
        LabelStudioServer(Path(tmp), ls_venv=venv) as ls,
        _stub_backend() as backend_url,
    ):
        config = ner_label_config(["疾病和诊断", "药物"])
        texts = ["😀患者诊断为肺腺癌，予顺铂化疗。", "𠀀否认高血压病史。"]
        pid = create_project(ls.url, ls.token, "labelstudio_dev check", config, texts)
        ml_id = connect_backend(ls.url, ls.token, pid, backend_url, "stub")
        _annotate_first_task(sdk_client(ls.url, ls.token), pid)
        actions = [e.get("action") for e in _StubBackend.events]
        print(json.dumps({"url": ls.url, "project": pid, "ml_backend": ml_id, "webhook_events": actions}))
        if "ANNOTATION_CREATED" not in actions:
            print("FAIL: the stub backend did not receive ANNOTATION_CREATED", file=sys.stderr)
            return 1
    print("OK: Label Studio started, project created, backend + webhook connected", file=sys.stderr)
    return 0


def _annotate_first_task(client: Any, pid: int) -> None:
    """Label 肺腺癌 in the first task: Label Studio then sends ANNOTATION_CREATED to the webhook."""
    task = next(iter(client.tasks.list(project=pid, page_size=10)))
    start = task.data["text"].index("肺腺癌")
    region = {"start": start, "end": start + 3, "text": "肺腺癌", "labels": ["疾病和诊断"]}
    client.annotations.create(id=task.id, result=[{"from_name": "label", "to_name": "text", "type": "labels", "value": region}])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lasl_backend.devtools.labelstudio_dev", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="start Label Studio in a temp dir and connect a stub backend to a project")
    c.add_argument("--ls-venv", type=Path, default=None, help=f"Label Studio's venv (default ${LS_VENV_ENV}, else the checkout's .ls-venv, else ./.ls-venv)")
    i = sub.add_parser("install", help="install label-studio into VENV_DIR and print its path")
    i.add_argument("venv", nargs="?", type=Path, default=None, metavar="VENV_DIR", help=f"default ${LS_VENV_ENV}, else the checkout's .ls-venv, else ./.ls-venv")
    args = p.parse_args(argv)
    if args.command == "check":
        return _check(args.ls_venv)
    print(ensure_ls_venv(args.venv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
