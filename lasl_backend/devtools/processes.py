"""Local servers for the development tools: free ports, health polling, process groups that stop together.

Label Studio and the backend each start in a session of their own, so that one ``killpg`` stops a server
together with its children (gunicorn's worker, Label Studio's helpers).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["free_port", "http_json", "port_is_free", "start_process_group", "stop_process_group", "wait_http_ok"]


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
