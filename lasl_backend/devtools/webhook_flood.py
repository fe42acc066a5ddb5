"""A flood of forged webhooks against the real server: does it stall a real event, does the process grow?

``python -m lasl_backend.devtools.webhook_flood [--events 20000] [--clients 8]`` starts ``lasl serve`` of
this installation (``BackendProcess``, 8 threads) on a free port, with ``LABEL_STUDIO_URL`` pointing at a
closed port and basic auth on, and connects one real project (``/setup``). Then:

1. it sends ``--events`` anonymous ``ANNOTATION_CREATED`` events, each for a different made-up project,
   from ``--clients`` threads over keep-alive connections, and reports how fast they were accepted, the
   server's RSS before and after (``/proc/<pid>/status``), and the backlog and shed counts of /metrics;
2. it starts a small stand-in Label Studio on that port that knows one annotation of the real project,
   sends that annotation's event, and reports the seconds until /metrics shows it confirmed.

It prints numbers and asserts nothing (docs/operations.md, "Hardening").
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .backend_process import BackendProcess
from .clients import HttpClient
from .processes import free_port

__all__ = ["main", "run_flood"]

AUTH = ("flood-bench", "flood-bench-pass-0123")
TOKEN = "flood-bench-token-0123456789"
REAL_PROJECT, REAL_ANNOTATION, REAL_TASK = 1, 777, 4242
LABEL_CONFIG = '<View><Labels name="label" toName="text"><Label value="疾病和诊断"/></Labels><Text name="text" value="$text"/></View>'


def _call(backend: BackendProcess, method: str, path: str, body: Any = None, auth: bool = False) -> tuple[int, Any]:
    """One request on a connection of its own: (status, the decoded JSON answer or None)."""
    client = HttpClient(backend.url, auth=AUTH if auth else None, timeout=10.0)
    try:
        status, raw, _ = client.request(method, path, body)
    finally:
        client.close()
    return status, json.loads(raw) if raw else None


def _metrics(backend: BackendProcess) -> dict[str, Any]:
    return _call(backend, "GET", "/metrics", auth=True)[1]


def _rss_kb(pid: int) -> int | None:
    try:
        m = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (the gunicorn worker of the master we started)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _event(annotation_id: int, project_id: int) -> dict[str, Any]:
    return {"action": "ANNOTATION_CREATED", "project": {"id": project_id},
            "annotation": {"id": annotation_id, "task": REAL_TASK, "result": [], "updated_at": "2026-11-26T05:00:00Z"}}


def _server_env(ls_port: int) -> dict[str, str]:
    """Label Studio on ``ls_port`` (closed until the real event), basic auth on, a run after every confirmed
    annotation, and no run retried by itself after Label Studio failed it (``LASL_RETRY_LATER_S=0``)."""
    return {"LABEL_STUDIO_URL": f"http://127.0.0.1:{ls_port}", "LABEL_STUDIO_API_KEY": TOKEN, "BASIC_AUTH_USER": AUTH[0],
            "BASIC_AUTH_PASS": AUTH[1], "LASL_TRAIN_EVERY": "1", "LOG_LEVEL": "WARNING", "LASL_RETRY_LATER_S": "0"}


def _worker_pid(backend: BackendProcess) -> int | None:
    """The gunicorn worker of the server (the master's child)."""
    assert backend.proc is not None
    kids = _children(backend.proc.pid)
    return kids[0] if kids else None


def _rss(backend: BackendProcess, worker: int | None) -> dict[str, int | None]:
    assert backend.proc is not None
    return {"master": _rss_kb(backend.proc.pid), "worker": _rss_kb(worker) if worker else None}


def _flood(url: str, events: int, clients: int) -> dict[str, Any]:
    """Send ``events`` forged events from ``clients`` threads, each on a keep-alive connection; statuses
    and queued counts."""
    statuses: dict[int, int] = {}
    queued = [0]
    lock = threading.Lock()

    def client(k: int) -> None:
        conn = HttpClient(url, timeout=30)
        mine: dict[int, int] = {}
        n_queued = 0
        for i in range(k, events, clients):
            status, raw, _ = conn.request("POST", "/webhook", _event(5_000_000 + i, 1_000_000 + i))
            mine[status] = mine.get(status, 0) + 1
            if status == 200:
                n_queued += int(json.loads(raw).get("queued_for_confirmation", 0))
        conn.close()
        with lock:
            for s, n in mine.items():
                statuses[s] = statuses.get(s, 0) + n
            queued[0] += n_queued

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - t0
    return {"events": events, "seconds": round(seconds, 2), "accepted_per_s": round(statuses.get(200, 0) / seconds, 1),
            "statuses": {str(k): v for k, v in sorted(statuses.items())}, "queued": queued[0]}


class _FakeLabelStudio:
    """Knows one annotation of the real project; everything else is 404."""

    def __init__(self, port: int) -> None:
        self.asked: list[str] = []

        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                fake.asked.append(self.path)
                ok = self.headers.get("Authorization") == f"Token {TOKEN}"
                found = ok and self.path.rstrip("/") == f"/api/annotations/{REAL_ANNOTATION}"
                body = {"id": REAL_ANNOTATION, "project": REAL_PROJECT, "task": REAL_TASK, "result": [], "was_cancelled": False,
                        "ground_truth": False, "created_at": "2026-11-26T05:00:00Z", "updated_at": "2026-11-26T05:00:00Z"}
                data = json.dumps(body if found else {"detail": "Not found."}).encode()
                self.send_response(200 if found else 404 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _webhook_numbers(m: dict[str, Any]) -> dict[str, Any]:
    w = m.get("webhooks", {})
    return {"backlog": w.get("backlog"), "shed": w.get("shed"), "waiting_for_retry": w.get("waiting_for_retry"),
            "lanes": w.get("lanes"), "unknown_projects_tracked": w.get("unknown_projects_tracked"), "projects_in_metrics": len(m.get("projects", {}))}


def _until(cond: Callable[[], bool], timeout: float) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


def _confirmed(backend: BackendProcess) -> bool:
    return _metrics(backend)["projects"].get(str(REAL_PROJECT), {}).get("webhooks", {}).get("confirmed", 0) >= 1


def _real_event(backend: BackendProcess, ls_port: int, timeout: float) -> dict[str, Any]:
    ls = _FakeLabelStudio(ls_port)
    try:
        t0 = time.monotonic()
        status, body = _call(backend, "POST", "/webhook", _event(REAL_ANNOTATION, REAL_PROJECT))
        seconds = _until(lambda: _confirmed(backend), timeout)
        trainer = _metrics(backend)["projects"][str(REAL_PROJECT)]["trainer"]
        return {"status": status, "answer": body, "confirmed_after_s": None if seconds is None else round(time.monotonic() - t0, 2),
                "runs_started": trainer["runs_started"], "label_studio_requests": len(ls.asked)}
    finally:
        ls.close()


def _phases(backend: BackendProcess, ls_port: int, events: int, clients: int, confirm_timeout: float) -> Iterator[tuple[str, Any]]:
    status, _ = _call(backend, "POST", "/setup", {"project": REAL_PROJECT, "schema": LABEL_CONFIG}, auth=True)
    yield "setup_status", status
    if _until(lambda: _worker_pid(backend) is not None, 30.0) is None:
        raise RuntimeError("the server answers but has no worker process")
    worker = _worker_pid(backend)
    yield "rss_kb_at_start", _rss(backend, worker)
    # one forged event first: its confirmation imports the Label Studio SDK, a one-time cost of the
    # process, not a cost of the flood
    _call(backend, "POST", "/webhook", _event(4_999_999, 999_999))
    _until(lambda: (_metrics(backend).get("webhooks", {}).get("waiting_for_retry") or 0) >= 1, 10.0)
    yield "rss_kb_before", _rss(backend, worker)
    yield "flood", _flood(backend.url, events, clients)
    yield "rss_kb_after_flood", _rss(backend, worker)
    yield "metrics_after_flood", _webhook_numbers(_metrics(backend))
    yield "real_event", _real_event(backend, ls_port, confirm_timeout)
    yield "metrics_after_real_event", _webhook_numbers(_metrics(backend))
    yield "rss_kb_end", _rss(backend, worker)


def run_flood(events: int = 20_000, clients: int = 8, confirm_timeout: float = 60.0) -> dict[str, Any]:
    """The whole benchmark (module doc); returns the numbers it printed."""
    report: dict[str, Any] = {"events": events, "clients": clients}
    with tempfile.TemporaryDirectory(prefix="lasl-flood-") as tmp:
        ls_port = free_port()
        backend = BackendProcess(Path(tmp) / "models", Path(tmp) / "server.log", _server_env(ls_port), threads=8, log_level="warning")
        try:
            with backend:
                for name, value in _phases(backend, ls_port, events, clients, confirm_timeout):
                    report[name] = value
                    print(f"{name}: {json.dumps(value, ensure_ascii=False)}", flush=True)
        finally:
            log_tail = backend.log_text().splitlines()[-8:]
    before, after = report.get("rss_kb_before", {}).get("worker"), report.get("rss_kb_after_flood", {}).get("worker")
    if before and after:
        report["worker_rss_growth_mb"] = round((after - before) / 1024, 1)
        print(f"worker RSS growth during the flood: {report['worker_rss_growth_mb']} MB", flush=True)
    report["server_log_tail"] = log_tail
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--confirm-timeout", type=float, default=60.0, help="seconds to wait for the real event's confirmation")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    report = run_flood(args.events, args.clients, args.confirm_timeout)
    print("server log (last lines):\n  " + "\n  ".join(report["server_log_tail"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
