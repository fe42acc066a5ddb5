"""End to end against a REAL Label Studio 1.23.2 and the backend under gunicorn.

Label Studio is installed into ``.ls-venv`` on first use and started on loopback with SQLite; the
backend runs as ``lasl_backend.serving.serve`` in a subprocess, exactly as ``lasl serve`` runs it.
Training is tiny (2 optimizer steps): this checks the protocol, not the model's quality; a barely
trained tagger still predicts many spans, which exercises the offsets after astral characters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from lasl_backend.devtools.labelstudio_dev import (
    LabelStudioServer,
    connect_backend,
    create_project,
    ensure_ls_venv,
    free_port,
    ner_label_config,
    wait_http_ok,
)
from lasl_backend.devtools.synthetic import LABELS, make_records

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EMOJI_TEXTS = [
    "患者😀因𠀀2型糖尿病入院，\r\n予二甲双胍　口服，复查血糖。",
    "𠀀𠀁胸部CT示右肺结节，拟行肺叶切除术。😀😀",
    "😀😀😀术后病理：胃癌，腹部B超未见肝转移。\r\n",
]
N_ANNOTATE = 6
TRAIN_TIMEOUT = 300.0


class LS:
    """The few Label Studio REST calls the test makes, with the legacy token."""

    def __init__(self, url: str, token: str) -> None:
        import requests

        self.url = url
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Token {token}"

    def get(self, path: str, **kw: Any) -> Any:
        r = self.s.get(self.url + path, timeout=120, **kw)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: Any) -> Any:
        r = self.s.post(self.url + path, json=body, timeout=120)
        assert r.status_code < 300, (path, r.status_code, r.text[:500])
        return r.json() if r.content else None

    def tasks(self, pid: int) -> list[dict[str, Any]]:
        return self.get("/api/tasks", params={"project": pid, "fields": "all", "page_size": 1000})["tasks"]

    def predictions(self, pid: int) -> list[dict[str, Any]]:
        return self.get("/api/predictions", params={"project": pid})

    def annotate(self, task: dict[str, Any], spans: list[tuple[int, int, str]]) -> None:
        text = task["data"]["text"]
        result = [{"from_name": "label", "to_name": "text", "type": "labels",
                   "value": {"start": s, "end": e, "text": text[s:e], "labels": [lab]}} for s, e, lab in spans]
        self.post(f"/api/tasks/{task['id']}/annotations", {"result": result, "lead_time": 1.0})


def check_prediction(pred: dict[str, Any], text: str) -> int:
    """The region invariants; returns the number of regions."""
    for r in pred["result"]:
        v = r["value"]
        assert r["from_name"] == "label" and r["to_name"] == "text" and r["type"] == "labels"
        assert 0 <= v["start"] < v["end"] <= len(text) and v["text"] == text[v["start"] : v["end"]], (v, text)
        assert v["labels"][0] in LABELS
    return len(pred["result"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("e2e")
    venv = ensure_ls_venv()
    with LabelStudioServer(tmp / "ls", ls_venv=venv) as ls:
        port = free_port()
        env = dict(os.environ)
        env.update({
            "LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": ls.token, "MODEL_DIR": str(tmp / "models"),
            # a short run of the default model (LAC's vectors): enough steps that its first version finds entities,
            # whose regions the offset checks below read
            "LASL_EPOCHS": "1", "LASL_MIN_STEPS": "40", "LASL_MAX_STEPS": "40", "LASL_TORCH_THREADS": "1",
            "LASL_TRAIN_EVERY": "1000", "LASL_RETRY_BACKOFF_S": "1", "LOG_LEVEL": "INFO",
        })
        log = open(tmp / "backend.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-c", f"from lasl_backend.serving import serve; serve('127.0.0.1', {port}, threads=4)"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        backend_url = f"http://127.0.0.1:{port}"
        try:
            wait_http_ok(f"{backend_url}/health", 120, proc, expect={"status": "UP"}, log_path=tmp / "backend.log")
            yield {"ls": ls, "api": LS(ls.url, ls.token), "backend": backend_url, "log": tmp / "backend.log", "proc": proc}
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


def test_label_studio_round_trip(stack: dict[str, Any]) -> None:
    ls, api = stack["ls"], stack["api"]
    syn = make_records(14, seed=11, mean_chars=50)
    texts = EMOJI_TEXTS + [r.text for r in syn]
    pid = create_project(ls.url, ls.token, "lasl e2e", ner_label_config(LABELS), texts)

    # 1. connect: the backend's webhook is created (connect_backend checks it)
    ml_id = connect_backend(ls.url, ls.token, pid, stack["backend"], "lasl")
    tasks = {t["data"]["text"]: t for t in api.tasks(pid)}

    # 2. opening a task asks the backend (cold start: valid, empty, longer-first score)
    emoji_task = tasks[EMOJI_TEXTS[0]]
    api.get(f"/api/tasks/{emoji_task['id']}")
    preds = [p for p in api.predictions(pid) if p["task"] == emoji_task["id"]]
    assert preds and preds[0]["model_version"] == "lasl-cold-start"
    assert preds[0]["score"] == pytest.approx(1 / (1 + len(EMOJI_TEXTS[0])))

    # 3. annotate N tasks through the API, then "Start training"
    for r in syn[:N_ANNOTATE]:
        api.annotate(tasks[r.text], [(e.start, e.end, e.label) for e in r.entities])
    t0 = time.monotonic()
    api.post(f"/api/ml/{ml_id}/train", {})
    version = None
    while time.monotonic() - t0 < TRAIN_TIMEOUT:
        mv = api.get(f"/api/projects/{pid}")["model_version"]
        if mv.startswith("lasl-v"):
            version = mv
            break
        err = json.loads(_get(stack["backend"] + "/metrics"))["projects"].get(str(pid), {}).get("training", {}).get("last_error")
        assert err is None, f"training failed: {err}"
        time.sleep(1)
    assert version, f"no new model_version within {TRAIN_TIMEOUT} s; backend log:\n" + stack["log"].read_text()[-3000:]
    print(f"START_TRAINING -> project.model_version {version} in {time.monotonic() - t0:.1f} s")

    # 4./5. every unlabeled task holds a prediction of that version; the project points at it
    project = api.get(f"/api/projects/{pid}")
    assert project["model_version"] == version and project["sampling"] == "Uncertainty sampling"
    all_tasks = api.tasks(pid)
    unlabeled = {t["id"]: t for t in all_tasks if not t["annotations"]}
    by_task = {p["task"]: p for p in api.predictions(pid) if p["model_version"] == version}
    assert set(unlabeled) <= set(by_task)
    n_regions = sum(check_prediction(by_task[tid], t["data"]["text"]) for tid, t in unlabeled.items())
    assert n_regions > 0  # offsets were really checked, astral texts included
    metrics = json.loads(_get(stack["backend"] + "/metrics"))["projects"][str(pid)]
    assert metrics["model_version"] == version and metrics["training"]["last_error"] is None
    assert metrics["current_version_stats"]["labeled"] == N_ANNOTATE
    # the run really saw the annotated regions (LS strips nested fields that `include` does not name)
    assert metrics["current_version_stats"]["labeled_entities"] > 0
    assert metrics["current_version_stats"]["unlabeled"] == len(texts) - N_ANNOTATE
    from lasl_backend.labelstudio import LSClient

    fetched = LSClient(ls.url, ls.token).fetch_tasks(pid)  # the training fetch: annotations, no predictions
    assert len(fetched) == len(texts) and sum(1 for t in fetched if t.get("annotations")) == N_ANNOTATE
    assert not any(t.get("predictions") for t in fetched)

    # 4'. the project page, from the version this real project trained
    _check_dashboard(stack["backend"], pid, version)

    # 2'. a task imported now is opened: the live model answers with valid code-point offsets
    api.post(f"/api/projects/{pid}/import", [{"text": "😀𠀀😀患者诊断为肺腺癌，予顺铂化疗，复查胸部CT。"}])
    new = [t for t in api.tasks(pid) if t["id"] not in {x["id"] for x in all_tasks}][0]
    api.get(f"/api/tasks/{new['id']}")
    new_preds = [p for p in api.predictions(pid) if p["task"] == new["id"]]
    if not new_preds:  # a static project.model_version may stop live predictions: ask through the DM action
        api.post(f"/api/dm/actions?id=retrieve_tasks_predictions&project={pid}", {"selectedItems": {"all": False, "included": [new["id"]]}})
        new_preds = [p for p in api.predictions(pid) if p["task"] == new["id"]]
    assert new_preds and new_preds[-1]["model_version"] == version
    check_prediction(new_preds[-1], new["data"]["text"])

    # 6. uncertainty sampling serves the lowest score, three times, annotating in between
    for _ in range(3):
        current = {t["id"]: t for t in api.tasks(pid) if not t["annotations"]}
        scores = {p["task"]: p["score"] for p in api.predictions(pid) if p["model_version"] == version and p["task"] in current}
        expected = min(scores, key=scores.get)
        served = api.get(f"/api/projects/{pid}/next")
        assert served["id"] == expected, (served["id"], expected, sorted(scores.items(), key=lambda kv: kv[1])[:3])
        api.annotate(served, [])


def _check_dashboard(backend: str, pid: int, version: str) -> None:
    """The page lists the project, shows its version, and says "not enough data yet" below the minimum
    annotations; ids it cannot serve are 400/404 pages; in Chromium, where there is one, it renders."""
    import requests

    index = requests.get(f"{backend}/dashboard", timeout=30)
    assert index.status_code == 200 and f"project={pid}" in index.text
    page = requests.get(f"{backend}/dashboard", params={"project": pid}, timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html"), page.text[:300]
    assert version in page.text and "not enough data yet" in page.text and "<svg" in page.text
    assert "<script" not in page.text.lower()
    assert requests.get(f"{backend}/dashboard", params={"project": "x1"}, timeout=30).status_code == 400
    assert requests.get(f"{backend}/dashboard", params={"project": pid + 999}, timeout=30).status_code == 404
    from lasl_backend.devtools.browser import BrowserUnavailable, dump_dom, find_chromium

    try:
        chromium = find_chromium(install=False)
    except BrowserUnavailable:
        return  # the browser test (test_dashboard_browser) installs one or says why it cannot
    dom = dump_dom(chromium, f"{backend}/dashboard?project={pid}")
    assert version in dom and "not enough data yet" in dom


def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - loopback test server
        return r.read().decode()


def test_next_serves_the_order_the_simulator_replays(stack: dict[str, Any]) -> None:
    """For the same pushed scores, Label Studio's /next (uncertainty sampling, one annotator) serves tasks in
    the order the simulator's queue (``sim.ls_queue.serve``) takes them, near-copies spread apart by the
    backend's diversity permutation included."""
    from lasl_backend.labelstudio import LSClient
    from lasl_backend.serving.ranking import diversify
    from lasl_backend.sim.ls_queue import PushedVersion, serve
    import numpy as np

    ls, api = stack["ls"], stack["api"]
    base = [r.text for r in make_records(10, seed=23, mean_chars=80)]
    texts = base + [base[0] + "。", base[0] + "！", base[1] + "。"]  # near-copies of the two most uncertain
    pid = create_project(ls.url, ls.token, "lasl queue order", ner_label_config(LABELS), texts)
    ids = {t["data"]["text"]: t["id"] for t in api.tasks(pid)}
    # DBS-like scores: the copies right behind their originals at the head of the queue
    raw = {base[0]: 0.50, texts[10]: 0.501, texts[11]: 0.502, base[1]: 0.51, texts[12]: 0.511}
    preds = [{"result": [], "score": raw.get(t, 0.6 + 0.01 * i), "model_version": "lasl-v0001-20261201T000000"} for i, t in enumerate(texts)]
    info = diversify(preds, texts, window=3)
    assert info["moved"] > 0
    client = LSClient(ls.url, ls.token)
    client.push_predictions(pid, [{"task": ids[t], **p} for t, p in zip(texts, preds)])
    client.set_model_version(pid, "lasl-v0001-20261201T000000", True)
    order = [ids[t] for t, _ in sorted(zip(texts, preds), key=lambda tp: tp[1]["score"])]
    expected = [i for i, _ in serve([PushedVersion(order)], set(), 8, lag=0, annotators=1, rng=np.random.default_rng(0))]
    served = []
    for _ in range(8):
        task = api.get(f"/api/projects/{pid}/next")
        served.append(task["id"])
        api.annotate(task, [])
    assert served == expected
    copies = {ids[base[0]], ids[texts[10]], ids[texts[11]]}
    pos = [served.index(i) for i in copies if i in served]
    assert all(abs(a - b) >= 3 for a in pos for b in pos if a != b)


@pytest.mark.parametrize("export_type", ["JSON", "JSON_MIN"])
def test_a_label_studio_export_reads_as_its_annotations(stack: dict[str, Any], tmp_path: Path, export_type: str) -> None:
    """``lasl convert``'s reading of what Label Studio 1.23.2 itself exports: the latest annotation of each
    task (JSON-MIN writes a row per annotation, not in time order), an empty one as a record without
    entities, a cancelled one left out, offsets as Label Studio counts them after astral characters and CRLF."""
    from lasl_backend.data import Entity
    from lasl_backend.formats import read_records

    ls, api = stack["ls"], stack["api"]
    pid = create_project(ls.url, ls.token, f"lasl export {export_type}", ner_label_config(LABELS), EMOJI_TEXTS + ["无特殊。"])
    tasks = {t["data"]["text"]: t for t in api.tasks(pid)}
    first, second, third = (tasks[t] for t in EMOJI_TEXTS)
    def span(text: str, mention: str, label: str) -> tuple[int, int, str]:
        return (text.index(mention), text.index(mention) + len(mention), label)

    gold = {first["id"]: [span(EMOJI_TEXTS[0], "2型糖尿病", LABELS[0]), span(EMOJI_TEXTS[0], "二甲双胍", LABELS[1])],
            third["id"]: [span(EMOJI_TEXTS[2], "胃癌", LABELS[0])]}
    assert gold[first["id"]][0][:2] == (5, 10)  # after an emoji and an Ext-B character: code points
    api.annotate(first, gold[first["id"]][:1])
    time.sleep(1.1)  # updated_at has second resolution in places: the second annotation is the later one
    api.annotate(first, gold[first["id"]])
    api.annotate(third, gold[third["id"]])
    api.annotate(tasks["无特殊。"], [])
    api.post(f"/api/tasks/{second['id']}/annotations", {"result": [], "was_cancelled": True})
    import requests

    r = requests.get(f"{ls.url}/api/projects/{pid}/export", params={"exportType": export_type},
                     headers={"Authorization": f"Token {ls.token}"}, timeout=120)
    r.raise_for_status()
    path = tmp_path / "export.json"
    path.write_bytes(r.content)
    loaded = read_records(path)
    assert loaded.format == "label-studio", loaded.notes
    got = {int(rec.id): rec for rec in loaded.records}
    by_text = {t: tasks[t]["id"] for t in tasks}
    assert second["id"] not in got  # JSON marks the cancelled annotation, JSON-MIN leaves it out
    assert got[by_text["无特殊。"]].entities == []
    for tid, spans in gold.items():
        text = next(t for t, i in by_text.items() if i == tid)
        assert got[tid].text == text
        assert got[tid].entities == [Entity(s, e, lab) for s, e, lab in spans], (export_type, got[tid].entities)
