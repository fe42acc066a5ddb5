"""HTTP clients of the benchmarks: a keep-alive loopback client (low overhead for timing) and the Label
Studio REST calls they make."""

from __future__ import annotations

import base64
import http.client
import json
import re
import time
from typing import Any

import requests

__all__ = ["HttpClient", "LSApi", "project_metrics"]


class HttpClient:
    """A keep-alive ``http.client`` connection to one loopback server (low client overhead)."""

    def __init__(self, base_url: str, auth: tuple[str, str] | None = None, timeout: float = 300.0) -> None:
        m = re.match(r"^http://([^:/]+):(\d+)/?$", base_url)
        if not m:
            raise ValueError(f"expected http://host:port, got {base_url!r}")
        self.host, self.port = m.group(1), int(m.group(2))
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json"}
        if auth:
            self.headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self.conn

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes, float]:
        """(status, body bytes, seconds). Raises OSError / http.client errors on transport failures
        (after closing the connection, so the next call reconnects)."""
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode())
        conn = self._connect()
        t = time.perf_counter()
        try:
            conn.request(method, path, body=data, headers=self.headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        dt = time.perf_counter() - t
        if resp.getheader("Connection", "").lower() == "close":
            self.close()
        return resp.status, raw, dt

    def json(self, method: str, path: str, body: Any = None) -> Any:
        status, raw, _ = self.request(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {raw[:300]!r}")
        return json.loads(raw) if raw else None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class LSApi:
    """The Label Studio REST calls the benchmarks make (legacy token)."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Token {token}"

    def _check(self, r: Any, what: str) -> Any:
        if r.status_code >= 300:
            raise RuntimeError(f"Label Studio {what}: HTTP {r.status_code}: {r.text[:300]}")
        return r.json() if r.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self._check(self.s.get(self.url + path, params=params or None, timeout=300), f"GET {path}")

    def post(self, path: str, body: Any) -> Any:
        return self._check(self.s.post(self.url + path, json=body, timeout=600), f"POST {path}")

    def create_project(self, title: str, label_config: str) -> int:
        return int(self.post("/api/projects", {"title": title, "label_config": label_config})["id"])

    def import_tasks(self, pid: int, tasks: list[dict[str, Any]]) -> int:
        """One import request; checks the project's task count afterwards (a short import still says 201)."""
        self.post(f"/api/projects/{pid}/import", tasks)
        n = int(self.get(f"/api/projects/{pid}")["task_number"])
        if n != len(tasks):
            raise RuntimeError(f"project {pid}: {n} tasks after importing {len(tasks)}")
        return n

    def project(self, pid: int) -> dict[str, Any]:
        return self.get(f"/api/projects/{pid}")

    def predictions(self, pid: int) -> list[dict[str, Any]]:
        return self.get("/api/predictions", project=pid)


def project_metrics(backend_url: str, pid: int, auth: tuple[str, str] | None = None) -> dict[str, Any]:
    """The project's part of the backend's ``GET /metrics`` ({} before the backend has seen the project)."""
    c = HttpClient(backend_url, auth=auth, timeout=30)
    try:
        return c.json("GET", "/metrics")["projects"].get(str(pid), {})
    finally:
        c.close()
