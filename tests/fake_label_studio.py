"""A tiny in-process stand-in for the Label Studio 1.23 REST endpoints the backend calls.

It speaks real HTTP on loopback, so the real ``label-studio-sdk`` client (paths, auth header, pager,
error classes) is exercised. Behaviour as Label Studio 1.23.2's (docs/serving.md, "Label Studio facts"):
``Authorization: Token <key>`` required, task pages past the end answer 404, ``PATCH model_version`` is
refused unless predictions of that version exist, ``import/predictions`` answers ``{"created": n}``.
Tasks come back whole (``include`` is not applied); an annotation carries ``lead_time`` when one was given.
Faults can be injected: statuses per path (``fail``), every connection dropped unanswered, as by an
unreachable server (``down``), and a delay before every answer (``latency_s``).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

#: ``annotate``'s default: the annotation has no ``lead_time`` field at all (``None`` sends a null)
NO_LEAD_TIME: Any = object()


class FakeLabelStudio:
    def __init__(self, token: str = "fake-legacy-token-0123456789abcdef") -> None:
        self.token = token
        self.projects: dict[int, dict[str, Any]] = {}
        self.tasks: dict[int, dict[str, Any]] = {}
        self.predictions: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.fail: dict[str, list[int]] = {}  # path prefix → statuses to answer next (one per request)
        self.drop_invalid = True  # like LS: predictions naming unknown tasks are dropped silently
        self.down = False  # True: close every connection without an answer (the client sees it unreachable)
        self.dropped = 0  # requests dropped while down
        self.latency_s = 0.0  # seconds to wait before answering any request
        self._next_ann = 1
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ---- data set-up ---------------------------------------------------------------------------
    def add_project(self, pid: int, label_config: str) -> None:
        self.projects[pid] = {"id": pid, "label_config": label_config, "model_version": "", "sampling": "Sequential sampling"}

    def add_task(self, pid: int, tid: int, text: str, key: str = "text") -> None:
        self.tasks[tid] = {"id": tid, "project": pid, "data": {key: text}, "annotations": [], "predictions": []}

    def annotate(self, tid: int, regions: list[tuple[int, int, str]], *, cancelled: bool = False, ground_truth: bool = False,
                 updated_at: str | None = None, from_name: str = "label", to_name: str = "text",
                 lead_time: Any = NO_LEAD_TIME) -> int:
        with self._lock:
            aid = self._next_ann
            self._next_ann += 1
        t = self.tasks[tid]
        text = next(v for v in t["data"].values() if isinstance(v, str))
        result = [
            {"from_name": from_name, "to_name": to_name, "type": "labels",
             "value": {"start": s, "end": e, "text": text[s:e], "labels": [lab]}}
            for s, e, lab in regions
        ]
        ts = updated_at or f"2026-11-26T05:{aid // 60:02d}:{aid % 60:02d}Z"
        ann = {"id": aid, "result": result, "was_cancelled": cancelled, "ground_truth": ground_truth,
               "created_at": ts, "updated_at": ts, "task": tid, "project": t["project"]}
        if lead_time is not NO_LEAD_TIME:
            ann["lead_time"] = lead_time  # any value, as a client may have sent it (TASK_INCLUDE lists the field)
        t["annotations"].append(ann)
        return aid

    def delete_annotation(self, aid: int) -> None:
        for t in self.tasks.values():
            t["annotations"] = [a for a in t["annotations"] if a["id"] != aid]

    def find_annotation(self, aid: int) -> dict[str, Any] | None:
        for t in self.tasks.values():
            for a in t["annotations"]:
                if a["id"] == aid:
                    return a
        return None

    def count(self, prefix: str) -> int:
        return sum(1 for _, p in self.requests if p.startswith(prefix))

    # ---- serving -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "FakeLabelStudio":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> Any:
                n = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(n) or b"null")

            def _handle(self, method: str) -> None:
                if fake.down:
                    with fake._lock:
                        fake.dropped += 1
                    self.close_connection = True
                    return
                if fake.latency_s:
                    time.sleep(fake.latency_s)
                u = urlparse(self.path)
                path = u.path
                with fake._lock:
                    fake.requests.append((method, path))
                    for prefix, statuses in fake.fail.items():
                        if path.startswith(prefix) and statuses:
                            status = statuses.pop(0)
                            self._send(status, {"detail": f"injected {status}"})
                            return
                if self.headers.get("Authorization") != f"Token {fake.token}":
                    self._send(401, {"detail": "Authentication credentials were not provided."})
                    return
                q = parse_qs(u.query)
                parts = [p for p in path.split("/") if p]
                try:
                    self._route(method, parts, q)
                except KeyError:
                    self._send(404, {"detail": "Not found."})

            def _route(self, method: str, parts: list[str], q: dict[str, list[str]]) -> None:
                if method == "GET" and parts == ["api", "tasks"]:
                    pid = int(q["project"][0])
                    page, size = int(q.get("page", ["1"])[0]), int(q.get("page_size", ["100"])[0])
                    tasks = [t for t in sorted(fake.tasks.values(), key=lambda t: t["id"]) if t["project"] == pid]
                    chunk = tasks[(page - 1) * size : page * size]
                    if page > 1 and not chunk:
                        self._send(404, {"detail": "Invalid page."})
                        return
                    self._send(200, {"tasks": chunk, "total": len(tasks)})
                elif method == "GET" and parts[:2] == ["api", "tasks"] and len(parts) == 3:
                    self._send(200, fake.tasks[int(parts[2])])
                elif parts[:2] == ["api", "projects"] and len(parts) == 3:
                    pid = int(parts[2])
                    proj = fake.projects[pid]
                    if method == "GET":
                        self._send(200, proj)
                    elif method == "PATCH":
                        body = self._body()
                        mv = body.get("model_version")
                        if mv is not None and not any(p["model_version"] == mv and fake.tasks[p["task"]]["project"] == pid for p in fake.predictions):
                            self._send(400, {"model_version": ["Model version doesn't exist either as live model or as static predictions."]})
                            return
                        proj.update(body)
                        self._send(200, proj)
                elif method == "POST" and parts[:2] == ["api", "projects"] and parts[3:] == ["import", "predictions"]:
                    pid = int(parts[2])
                    body = self._body()
                    # LS 1.23.2 drops (log only) predictions for unknown tasks and scores outside [0, 1]
                    ok = [p for p in body if p.get("task") in fake.tasks and fake.tasks[p["task"]]["project"] == pid
                          and (p.get("score") is None or 0.0 <= p["score"] <= 1.0)] if fake.drop_invalid else body
                    with fake._lock:
                        fake.predictions.extend(ok)
                    self._send(201, {"created": len(ok)})
                elif method == "GET" and parts[:2] == ["api", "annotations"] and len(parts) == 3:
                    ann = fake.find_annotation(int(parts[2]))
                    if ann is None:
                        self._send(404, {"detail": "Not found."})
                    else:
                        self._send(200, ann)
                else:
                    self._send(404, {"detail": "Not found."})

            def do_GET(self) -> None:  # noqa: N802
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

            def do_PATCH(self) -> None:  # noqa: N802
                self._handle("PATCH")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def latest_predictions(self, pid: int) -> dict[int, dict[str, Any]]:
        """Task id → the last prediction pushed for it."""
        out: dict[int, dict[str, Any]] = {}
        for p in self.predictions:
            if self.tasks[p["task"]]["project"] == pid:
                out[p["task"]] = p
        return out
