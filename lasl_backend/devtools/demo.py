"""``python -m lasl_backend.devtools.demo``: a real Label Studio + the LASL backend + a synthetic EMR project.

Why: one command shows the whole loop a person would use (connect backend, annotate, train, prelabels and
uncertainty-ordered tasks) without any research-only data: the texts come from ``lasl_backend.devtools.synthetic``.

Steps: install Label Studio's venv if missing (``--ls-venv``, default ``$LASL_LS_VENV``, else the checkout's ``.ls-venv``, else ``./.ls-venv``),
start Label Studio on 127.0.0.1 (8080 if free), start ``lasl serve`` of this installation on 127.0.0.1:9090, create the project "EMR NER demo" with the six CCKS labels, import the demo
texts, connect the backend (and check its webhook), annotate a few tasks through the API with the synthetic
gold entities, ask the backend to train, then wait for Ctrl-C and stop both servers.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

from ..data import Record
from .backend_process import lasl_command
from .labelstudio_dev import LS_VENV_ENV, LabelStudioServer, connect_backend, create_project, ensure_ls_venv, ner_label_config, sdk_client
from .processes import free_port, start_process_group, stop_process_group, wait_http_ok
from .synthetic import LABELS, demo_records

PROJECT_TITLE = "EMR NER demo"
BACKEND_TITLE = "lasl"


def _say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def _credentials(data_dir: Path) -> dict[str, str]:
    """Credentials kept beside the LS data: LS applies the env user/token only on the data dir's first start."""
    path = data_dir / "demo-credentials.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    creds = {
        "username": "demo@example.com",
        "password": secrets.token_urlsafe(9),
        "token": secrets.token_hex(20),
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(creds, indent=2))
    path.chmod(0o600)
    return creds


def gold_result(record: Record, from_name: str = "label", to_name: str = "text") -> list[dict[str, Any]]:
    """Label Studio NER regions for the record's gold entities; offsets count code points, as Python's ``str``
    and Label Studio's Text tag do (docs/serving.md, "Label Studio facts")."""
    return [
        {
            "id": f"g{i}",
            "from_name": from_name,
            "to_name": to_name,
            "type": "labels",
            "origin": "manual",
            "value": {
                "start": e.start,
                "end": e.end,
                "text": record.text[e.start : e.end],
                "labels": [e.label],
            },
        }
        for i, e in enumerate(record.entities)
    ]


def _post(url: str, token: str, body: dict[str, Any] | None = None, method: str = "POST") -> int:
    """A bare API call that returns the status code, so the demo can show what Label Studio answered."""
    data = json.dumps(body or {}).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Authorization": f"Token {token}", "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        _say(f"{method} {url} -> {exc.code}: {exc.read()[:300]!r}")
        return int(exc.code)


def run_demo(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).absolute()
    model_dir = Path(args.model_dir).absolute()
    if args.fresh:
        for d in (data_dir, model_dir):
            if d.exists():
                _say(f"--fresh: removing {d}")
                shutil.rmtree(d)
    creds = _credentials(data_dir)
    venv = ensure_ls_venv(Path(args.ls_venv) if args.ls_venv else None)
    ls_port = free_port(args.ls_port)
    if ls_port != args.ls_port:
        _say(f"port {args.ls_port} is busy, Label Studio gets {ls_port}")
    records = demo_records(args.tasks)
    with LabelStudioServer(data_dir, ls_venv=venv, port=ls_port, username=creds["username"], password=creds["password"], token=creds["token"]) as ls:
        backend_url, backend_log, backend = _start_backend(args, ls, data_dir, model_dir)
        try:
            pid = _set_up_project(args, ls, records, backend_url)
            _print_banner(ls, pid, backend_url, backend_log, creds)
            return _wait_until_interrupted(ls, backend, backend_log)
        finally:
            _say("stopping the backend")
            stop_process_group(backend)
            _say("stopping Label Studio")


def _start_backend(args: argparse.Namespace, ls: LabelStudioServer, data_dir: Path, model_dir: Path) -> tuple[str, Path, subprocess.Popen[bytes]]:
    """``lasl serve`` (or ``--backend-cmd``) on 127.0.0.1, talking to ``ls``; returns once /health answers."""
    backend_port = free_port(args.backend_port)
    backend_url = f"http://127.0.0.1:{backend_port}"
    backend_log = data_dir / "backend.log"
    env = dict(os.environ, LABEL_STUDIO_URL=ls.url, LABEL_STUDIO_API_KEY=ls.token, MODEL_DIR=str(model_dir))
    model_dir.mkdir(parents=True, exist_ok=True)
    base = shlex.split(args.backend_cmd) if args.backend_cmd else lasl_command()
    argv = [*base, "serve", "--host", "127.0.0.1", "--port", str(backend_port)]
    _say(f"starting the backend: {' '.join(argv)} (log {backend_log})")
    backend = start_process_group(argv, env, backend_log)
    try:
        wait_http_ok(f"{backend_url}/health", args.backend_timeout, backend, log_path=backend_log)
    except BaseException:
        stop_process_group(backend)
        raise
    _say(f"backend up at {backend_url}")
    return backend_url, backend_log, backend


def _set_up_project(args: argparse.Namespace, ls: LabelStudioServer, records: list[Record], backend_url: str) -> int:
    """Create the project, connect the backend, annotate the first tasks, turn on uncertainty sampling and
    (unless ``--no-train``) ask the backend to train; returns the project id."""
    pid = create_project(ls.url, ls.token, PROJECT_TITLE, ner_label_config(LABELS), [r.text for r in records])
    _say(f"project {pid} created with {len(records)} tasks")
    ml_id = connect_backend(ls.url, ls.token, pid, backend_url, BACKEND_TITLE)
    _say(f"backend connected to project {pid} (ML backend id {ml_id}, webhook checked)")
    client = sdk_client(ls.url, ls.token)
    by_text = {r.text: r for r in records}
    tasks = sorted(client.tasks.list(project=pid, page_size=100), key=lambda t: int(t.id))
    for task in tasks[: args.annotate]:
        client.annotations.create(id=int(task.id), result=gold_result(by_text[task.data["text"]]), lead_time=1.0)
    _say(f"annotated {min(args.annotate, len(tasks))} tasks with the synthetic gold entities")
    # Lowest prediction score first, once the backend has pushed scored predictions (docs/serving.md, "The queue").
    client.projects.update(id=pid, sampling="Uncertainty sampling")
    if args.train:
        status = _post(f"{ls.url}/api/ml/{ml_id}/train", ls.token, {"use_ground_truth": False})
        _say(f"POST /api/ml/{ml_id}/train -> {status} (training runs in the backend; see its log)")
    return pid


def _print_banner(ls: LabelStudioServer, pid: int, backend_url: str, backend_log: Path, creds: dict[str, str]) -> None:
    print(
        f"""
================================================================================
 Label Studio   {ls.url}/projects/{pid}/data
 login          {creds['username']}  /  {creds['password']}
 API token      {creds['token']}
 ML backend     {backend_url}   (log: {backend_log})
 LS log         {ls.log_path}

 What to look at:
  * Settings > Model: the backend "{BACKEND_TITLE}" is Connected.
  * Data Manager: the first tasks are annotated with synthetic gold entities; after training, the
    backend pushes predictions: add the "Prediction score" column (lowest = most informative).
  * "Label All Tasks": tasks come in uncertainty order with the model's prelabels to correct.
    Each submitted annotation reaches the backend's /webhook; "Start Training" (Settings > Model) retrains.
  * Texts contain emoji and CJK Ext-B characters before entities: regions must sit on the right characters.

 Ctrl-C stops Label Studio and the backend.
================================================================================""",
        flush=True,
    )


def _wait_until_interrupted(ls: LabelStudioServer, backend: Any, backend_log: Path) -> int:
    """Block until Ctrl-C/SIGTERM; report if either server dies on its own."""
    try:
        while True:
            if not ls.alive():
                _say(f"Label Studio exited; see {ls.log_path}")
                return 1
            if backend.poll() is not None:
                _say(f"the backend exited with {backend.returncode}; see {backend_log}")
                return 1
            time.sleep(1.0)
    except KeyboardInterrupt:
        print()
        return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM behaves like Ctrl-C, so `with`/`finally` blocks stop both servers whatever the demo is doing."""
    raise KeyboardInterrupt


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lasl_backend.devtools.demo", description=__doc__.splitlines()[0])
    p.add_argument("--ls-port", type=int, default=8080, help="Label Studio port (another free one if busy)")
    p.add_argument("--backend-port", type=int, default=9090, help="backend port (another free one if busy)")
    p.add_argument("--data-dir", default="runs/demo-ls", help="Label Studio data dir (kept between runs)")
    p.add_argument("--model-dir", default="runs/demo-models", help="MODEL_DIR for the backend")
    p.add_argument("--ls-venv", default=None, help=f"venv holding label-studio 1.23.2 (default ${LS_VENV_ENV}, else the checkout's .ls-venv, else ./.ls-venv)")
    p.add_argument("--tasks", type=int, default=40, help="number of synthetic tasks to import")
    p.add_argument("--annotate", type=int, default=8, help="tasks to annotate with gold entities")
    p.add_argument("--no-train", dest="train", action="store_false", help="skip POST /api/ml/{id}/train")
    p.add_argument("--backend-timeout", type=float, default=120.0, help="seconds to wait for backend /health")
    p.add_argument(
        "--backend-cmd",
        default=None,
        help="command to use instead of this installation's lasl; it gets 'serve --host H --port P' appended",
    )
    p.add_argument("--fresh", action="store_true", help="delete the data and model dirs first")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Explicit handlers: a shell's background job starts with SIGINT ignored, and SIGTERM would skip cleanup.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run_demo(args)
    except KeyboardInterrupt:
        _say("interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
