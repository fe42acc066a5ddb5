"""Install and run a REAL Label Studio 1.23.2 for end-to-end tests and the demo.

Why a real server: the ML-backend protocol has traps that only the real server shows (legacy tokens off by
default, the SSRF block on 127.0.0.1, the auto-created webhook, silent port changes; PROTOCOL.md §0, §2, §8).
Label Studio lives in its own venv (``.ls-venv``, ~1 GB) because its pins (Django, pandas, boto3, ...) must
not leak into the backend's environment.

Manual check (installs ``.ls-venv`` on first use, ~90 s; then ~40 s for the first start)::

    .venv/bin/python -m lasl_backend.devtools.labelstudio_dev check
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

__all__ = [
    "DEFAULT_LS_VENV",
    "LS_SDK_VERSION",
    "LS_VERSION",
    "LabelStudioServer",
    "connect_backend",
    "create_project",
    "ensure_ls_venv",
    "free_port",
    "ner_label_config",
    "port_is_free",
    "sdk_client",
    "start_process_group",
    "stop_process_group",
    "wait_http_ok",
]

LS_VERSION = "1.23.2"
LS_SDK_VERSION = "2.1.2"  # the pin label-studio 1.23.2 itself uses, and the backend's pin
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LS_VENV = REPO_ROOT / ".ls-venv"
_STAMP = ".lasl-installed"


def _log(msg: str) -> None:
    print(f"[labelstudio_dev] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- install


def ensure_ls_venv(path: Path = DEFAULT_LS_VENV, python: str | None = None) -> Path:
    """Return ``path`` after making sure it is a venv with label-studio 1.23.2 (installs it if missing).

    A lock file beside the venv serialises concurrent callers (pytest-xdist workers, the demo and a test run),
    and a stamp written only after a successful install makes an interrupted install retry instead of passing.
    """
    path = Path(path).absolute()
    exe = path / "bin" / "label-studio"
    stamp = path / _STAMP
    if exe.exists() and stamp.exists():
        return path
    # The lock lives inside the venv dir (ignored by git); `python -m venv` accepts an existing dir.
    path.mkdir(parents=True, exist_ok=True)
    lock_path = path / ".install.lock"
    with open(lock_path, "w") as lock:
        _log(f"waiting for the install lock {lock_path} ...")
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if exe.exists() and stamp.exists():  # another caller finished while we waited
                return path
            t0 = time.monotonic()
            if not (path / "bin" / "python").exists():
                _log(f"creating venv {path}")
                # The base interpreter, so the LS venv does not depend on the backend's venv.
                base = python or getattr(sys, "_base_executable", None) or sys.executable
                subprocess.run([base, "-m", "venv", str(path)], check=True)
            pip = [str(path / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
            _log(f"installing label-studio=={LS_VERSION} into {path} (~90 s, ~1 GB) ...")
            subprocess.run(
                [*pip, "install", "-q", f"label-studio=={LS_VERSION}", f"label-studio-sdk=={LS_SDK_VERSION}"],
                check=True,
            )
            if not exe.exists():
                raise RuntimeError(f"label-studio installed but {exe} is missing")
            stamp.write_text(f"label-studio=={LS_VERSION}\n")
            _log(f"label-studio ready in {time.monotonic() - t0:.0f} s")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return path


# ---------------------------------------------------------------------------------------- processes


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on ``host:port`` and we could bind it (LS silently moves off busy ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # SO_REUSEADDR as servers use it: a port left in TIME_WAIT by a stopped server counts as free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def free_port(preferred: int | None = None, host: str = "127.0.0.1") -> int:
    """``preferred`` if it is free, else a port the kernel hands out."""
    if preferred is not None and port_is_free(preferred, host):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def http_json(url: str, timeout: float = 2.0, headers: Mapping[str, str] | None = None) -> Any:
    """GET ``url`` and decode JSON (stdlib only, so it works before the SDK is importable)."""
    req = urllib.request.Request(url, headers=dict(headers or {}))
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read().decode("utf-8"))


def wait_http_ok(
    url: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    expect: Mapping[str, Any] | None = None,
    log_path: Path | None = None,
    fail_fast: Callable[[], str | None] | None = None,
) -> Any:
    """Poll ``url`` until it answers JSON (containing ``expect`` if given).

    Fails early if ``proc`` dies or ``fail_fast()`` returns a reason, instead of waiting out the timeout.
    """
    deadline = time.monotonic() + timeout
    last_err: str = "no answer yet"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} was up{_tail(log_path)}")
        reason = fail_fast() if fail_fast else None
        if reason:
            raise RuntimeError(f"{reason}{_tail(log_path)}")
        try:
            body = http_json(url, timeout=2.0)
            if expect is None or (isinstance(body, dict) and all(body.get(k) == v for k, v in expect.items())):
                return body
            last_err = f"unexpected answer {body!r}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last_err = str(exc)
        time.sleep(0.5)
    raise TimeoutError(f"{url} not up after {timeout:.0f} s ({last_err}){_tail(log_path)}")


def _tail(log_path: Path | None, n: int = 40) -> str:
    if log_path is None or not Path(log_path).exists():
        return ""
    lines = Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines()[-n:]
    return f"\n--- last {len(lines)} lines of {log_path} ---\n" + "\n".join(lines)


def start_process_group(
    argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, logging to ``log_path``, so it and its children can be killed together."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        return subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=str(cwd) if cwd else None,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # pgid == pid: killpg reaches the real server, not a wrapper
        )


def stop_process_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group of ``proc``, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


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
        ls_venv: Path = DEFAULT_LS_VENV,
        port: int | None = None,
        username: str = "admin@example.com",
        password: str | None = None,
        token: str | None = None,
        log_path: Path | None = None,
        startup_timeout: float = 300.0,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.ls_venv = Path(ls_venv).absolute()
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
        """Environment for ``label-studio start`` (PROTOCOL.md §2): offline, legacy tokens, no SSRF block."""
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
        """LS silently takes the next port if ours got busy in the meantime (PROTOCOL.md §8.10): detect it."""
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
    (PROTOCOL.md §0), and the backend then never hears about annotations.
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


def _check() -> int:
    """Install LS if needed, start it in a temp dir, create a project, connect a stub backend, annotate once."""
    venv = ensure_ls_venv(DEFAULT_LS_VENV)
    with (
        tempfile.TemporaryDirectory(prefix="lasl-ls-check-") as tmp,
        LabelStudioServer(Path(tmp), ls_venv=venv) as ls,
        _stub_backend() as backend_url,
    ):
        config = ner_label_config(["疾病和诊断", "药物"])
        texts = ["😀患者诊断为肺腺癌，予顺铂化疗。", "𠀀否认高血压病史。"]
        pid = create_project(ls.url, ls.token, "labelstudio_dev check", config, texts)
        ml_id = connect_backend(ls.url, ls.token, pid, backend_url, "stub")
        client = sdk_client(ls.url, ls.token)
        task = next(iter(client.tasks.list(project=pid, page_size=10)))
        text = task.data["text"]
        start = text.index("肺腺癌")
        client.annotations.create(
            id=task.id,
            result=[
                {
                    "from_name": "label",
                    "to_name": "text",
                    "type": "labels",
                    "value": {"start": start, "end": start + 3, "text": "肺腺癌", "labels": ["疾病和诊断"]},
                }
            ],
        )
        actions = [e.get("action") for e in _StubBackend.events]
        print(json.dumps({"url": ls.url, "project": pid, "ml_backend": ml_id, "webhook_events": actions}))
        if "ANNOTATION_CREATED" not in actions:
            print("FAIL: the stub backend did not receive ANNOTATION_CREATED", file=sys.stderr)
            return 1
    print("OK: Label Studio started, project created, backend + webhook connected", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["check"]:
        raise SystemExit(_check())
    if sys.argv[1:2] == ["install"] and len(sys.argv) <= 3:
        print(ensure_ls_venv(Path(sys.argv[2]) if len(sys.argv) == 3 else DEFAULT_LS_VENV))
        raise SystemExit(0)
    print("usage: python -m lasl_backend.devtools.labelstudio_dev {check | install [VENV_DIR]}", file=sys.stderr)
    raise SystemExit(2)
