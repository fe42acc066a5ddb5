"""What the server tests share: Label Studio 1.23 payload shapes with our own texts, real settings for
a tiny training run, the fake Label Studio's project, and the invariants every prediction must keep."""

from __future__ import annotations

from pathlib import Path
from typing import Any


from lasl_backend.config import Settings
from lasl_backend.devtools.synthetic import LABELS, make_records
from lasl_backend.serving.backend import LaslBackend
from lasl_backend.serving.routes import init_app

from tests.fake_label_studio import FakeLabelStudio

# Control and object names and the data key differ from Label Studio's defaults on purpose:
# nothing in the backend may assume "label", "text" or "$text".
LABEL_CONFIG = (
    '<View>\n  <Labels name="ner" toName="emr">\n'
    + "".join(f'    <Label value="{lab}"/>\n' for lab in LABELS)
    + '  </Labels>\n  <Text name="emr" value="$note"/>\n</View>'
)
KEY = "note"


# Our own texts: astral characters (emoji, CJK Ext-B) before entities, CRLF, full-width spaces.
HAND = [
    "患者😀因𠀀2型糖尿病入院，\r\n予二甲双胍　口服，复查血糖。",
    "𠀀𠀁胸部CT示右肺结节，拟行肺叶切除术。😀😀",
    "主诉：头痛3天。\r\n查体：神志清，　双肺呼吸音清，头颅MRI未见异常。",
]
HAND_GOLD = [
    [("2型糖尿病", "疾病和诊断"), ("二甲双胍", "药物"), ("血糖", "实验室检验")],
    [("胸部CT", "影像检查"), ("右肺", "解剖部位"), ("肺叶切除术", "手术")],
    [("头颅MRI", "影像检查")],
]
AUTH = ("annotator-bot", "pa55-SECRET-basic-auth-pass")


def gold_spans(text: str, gold: list[tuple[str, str]]) -> list[tuple[int, int, str]]:
    out = []
    for surface, label in gold:
        s = text.index(surface)
        out.append((s, s + len(surface), label))
    return out


def make_settings(model_dir: Path, fake: FakeLabelStudio | None = None, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(
        model_dir=model_dir,
        label_studio_url=fake.url if fake else None,
        label_studio_api_key=fake.token if fake else None,
        retry_backoff_s=0.0,
        train_retries=1,
        holdout_fraction=0.3,
        holdout_min_labeled=6,
        epochs=1,  # a tiny real run: 2 optimizer steps
        min_steps=1,
        max_steps=2,
        log_level="DEBUG",
        retry_later_s=0.0,  # no self-scheduled retries outliving a test (one test turns them on)
    )
    base.update(kw)
    return Settings(**base)


def populate(fake: FakeLabelStudio, pid: int = 1, n_syn: int = 13, annotate_syn: int = 5) -> dict[int, str]:
    """3 hand-written + ``n_syn`` synthetic tasks; the hand ones and ``annotate_syn`` synthetic annotated."""
    fake.add_project(pid, LABEL_CONFIG)
    texts: dict[int, str] = {}
    tid = pid * 1000
    for text, gold in zip(HAND, HAND_GOLD):
        tid += 1
        fake.add_task(pid, tid, text, key=KEY)
        fake.annotate(tid, gold_spans(text, gold), from_name="ner", to_name="emr")
        texts[tid] = text
    for i, r in enumerate(make_records(n_syn, seed=7, mean_chars=45)):
        tid += 1
        fake.add_task(pid, tid, r.text, key=KEY)
        if i < annotate_syn:
            fake.annotate(tid, [(e.start, e.end, e.label) for e in r.entities], from_name="ner", to_name="emr")
        texts[tid] = r.text
    return texts


def task(tid: int, text: Any, pid: int = 1) -> dict[str, Any]:
    """A task in the shape Label Studio sends (TaskSimpleSerializer, trimmed)."""
    return {"id": tid, "data": {KEY: text}, "meta": {}, "is_labeled": False, "overlap": 1, "inner_id": tid,
            "total_annotations": 0, "cancelled_annotations": 0, "total_predictions": 0, "project": pid,
            "annotations": [], "predictions": []}


def predict_body(tasks: list[Any], pid: int = 1, cfg: Any = LABEL_CONFIG) -> dict[str, Any]:
    return {"tasks": tasks, "project": f"{pid}.1795659941", "label_config": cfg,
            "params": {"login": None, "password": None, "context": None}}


def project_obj(pid: int = 1) -> dict[str, Any]:
    return {"id": pid, "title": "EMR", "label_config": LABEL_CONFIG, "model_version": "lasl", "token": "<invite>",
            "sampling": "Sequential sampling", "min_annotations_to_start_training": 0}


def start_training(pid: int = 1) -> dict[str, Any]:
    return {"action": "START_TRAINING", "project": project_obj(pid)}


def annotation_event(action: str, aid: int, tid: int, pid: int = 1) -> dict[str, Any]:
    return {"action": action,
            "annotation": {"id": aid, "result": [], "was_cancelled": False, "ground_truth": False, "task": tid, "project": pid,
                           "completed_by": 1, "updated_at": "2026-11-26T05:00:00Z"},
            "task": {"id": tid, "data": {KEY: "伪造的文本"}, "project": pid},
            "project": project_obj(pid)}


def check_results(body: dict[str, Any], tasks: list[dict[str, Any]]) -> None:
    """The invariants Label Studio needs of every result (docs/serving.md, "The protocol")."""
    results = body["results"]
    assert isinstance(results, list) and len(results) == len(tasks)
    for t, r in zip(tasks, results):
        assert set(r) >= {"result", "score", "model_version"}
        assert isinstance(r["score"], float) and 0.0 <= r["score"] <= 1.0  # LS 1.23.2 drops scores outside [0, 1]
        assert isinstance(r["model_version"], str) and r["model_version"]
        text = t["data"][KEY] if isinstance(t, dict) and isinstance(t.get("data"), dict) else None
        for region in r["result"]:
            v = region["value"]
            assert region["from_name"] == "ner" and region["to_name"] == "emr" and region["type"] == "labels"
            assert isinstance(text, str) and 0 <= v["start"] < v["end"] <= len(text)
            assert v["text"] == text[v["start"] : v["end"]]
            assert len(v["labels"]) == 1 and v["labels"][0] in LABELS
            assert 0.0 <= region["score"] <= 1.0


def wait_idle(app: Any, timeout: float = 300.0) -> None:
    st_ = app.extensions["lasl"]
    assert st_.wait_idle(timeout)  # webhook confirmations and new-task scoring
    assert st_.trainer.wait_idle(timeout)


GOOD_TASK = task(1, HAND[0])


def counting_backend() -> type[LaslBackend]:
    class Counting(LaslBackend):
        calls: list[str] = []

        def fit(self, event: str, data: Any = None, **kw: Any) -> dict[str, Any]:
            Counting.calls.append(event)
            return {}

    return Counting


def cold_client(model_dir: Path, **kw: Any) -> Any:
    """A test client of an app with no model and no Label Studio connection."""
    return init_app(LaslBackend, settings=make_settings(model_dir, **kw)).test_client()


def authed_client(model_dir: Path, **kw: Any) -> Any:
    """As :func:`cold_client`, with basic auth on."""
    return cold_client(model_dir, basic_auth_user=AUTH[0], basic_auth_pass=AUTH[1], **kw)
