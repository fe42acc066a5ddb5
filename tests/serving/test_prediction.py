"""Prediction: one entry per task in order, a task that breaks the model isolated, new tasks pushed."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

from lasl_backend.config import Settings
from lasl_backend.labelstudio import LSClient, parse_label_config
from lasl_backend.ner import RecordScore, SpanPrediction
from lasl_backend.serving.connection import LabelStudioConnection
from lasl_backend.serving.model_slot import ServedModel
from lasl_backend.serving.prediction import Predictor
from lasl_backend.serving.scores import COLD_START_VERSION, UNREADABLE_SCORE, cold_start_score

from tests.fake_label_studio import FakeLabelStudio

CFG = '<View><Labels name="ner" toName="emr"><Label value="药物"/></Labels><Text name="emr" value="$note"/></View>'
NER = parse_label_config(CFG)
VERSION = "lasl-v0001-20261126T051200"


class Stub:
    """Tags every "二甲双胍" as 药物; a batch holding "BOOM" raises, as a broken record would."""

    labels = ["药物"]

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def predict(self, texts: list[str], **kw: Any) -> list[RecordScore]:
        self.batches.append(list(texts))
        if any("BOOM" in t for t in texts):
            raise RuntimeError("non-finite loss")
        out = []
        for t in texts:
            i = t.find("二甲双胍")
            ents = [SpanPrediction(i, i + 4, "药物", "二甲双胍", 0.7)] if i >= 0 else []
            out.append(RecordScore(ents, l_min=1.0, l_max=2.0, p_max=math.exp(-len(t) / 10), l_pred=None, n_chars=len(t)))
        return out


def task(tid: int, text: Any) -> dict[str, Any]:
    return {"id": tid, "data": {"note": text}}


def test_a_task_that_breaks_the_model_costs_only_its_own_prediction(tmp_path: Path) -> None:
    stub = Stub()
    p = Predictor(1, Settings(model_dir=tmp_path))
    tasks = [task(1, "服用二甲双胍。"), task(2, "BOOM"), {"id": 3}, task(4, "无")]
    results, issues = p.predict(tasks, NER, ServedModel(VERSION, stub, None))  # type: ignore[arg-type]
    assert stub.batches[0] == ["服用二甲双胍。", "BOOM", "无"] and len(stub.batches) == 4  # then one by one
    assert [r["model_version"] for r in results] == [VERSION] * 4
    assert results[0]["result"][0]["value"] == {"start": 2, "end": 6, "text": "二甲双胍", "labels": ["药物"]}
    assert [r["score"] for r in results] == [math.exp(-0.7), UNREADABLE_SCORE, UNREADABLE_SCORE, math.exp(-0.1)]
    assert [(i.index, i.task_id) for i in issues] == [(1, 2), (2, 3)]
    assert issues[0].error == "the model failed on this task" and "data" in issues[1].error
    assert p.stats.as_dict() == {"requests": 1, "tasks": 4, "unreadable": 2}


def test_cold_start_answers_every_task_without_a_model(tmp_path: Path) -> None:
    p = Predictor(1, Settings(model_dir=tmp_path, max_text_chars=5))
    results, issues = p.predict([task(1, "短"), task(2, "六个字的句子"), task(3, "四个字啊")], NER, None)
    assert [r["score"] for r in results] == [cold_start_score(1), UNREADABLE_SCORE, cold_start_score(4)]
    assert {r["model_version"] for r in results} == {COLD_START_VERSION} and all(r["result"] == [] for r in results)
    assert [i.index for i in issues] == [1] and "LASL_MAX_TEXT_CHARS" in issues[0].error


def test_new_tasks_are_read_from_label_studio_and_pushed(tmp_path: Path) -> None:
    with FakeLabelStudio() as fake:
        fake.add_project(1, CFG)
        fake.add_project(2, CFG)
        fake.add_task(1, 10, "新病人服用二甲双胍。", key="note")
        fake.add_task(1, 11, "已标注。", key="note")
        fake.annotate(11, [], from_name="ner", to_name="emr")
        fake.add_task(2, 12, "别的项目。", key="note")
        fake.add_task(1, 13, "没有文本字段", key="text")
        s = Settings(model_dir=tmp_path, label_studio_url=fake.url, label_studio_api_key=fake.token, retry_backoff_s=0.0)
        conn = LabelStudioConnection(1, s, threading.Event(), lambda u, k: LSClient(u, k, timeout=10, max_retries=0))
        p = Predictor(1, s)
        served = ServedModel(VERSION, Stub(), None)  # type: ignore[arg-type]
        assert p.push_for_new_tasks(served, [10, 10, 11, 12, 13, 999], NER, conn) == 1
        (pushed,) = fake.predictions
        direct = p.predict([fake.tasks[10]], NER, served)[0][0]
        assert pushed == {"task": 10, "model_version": VERSION, "score": direct["score"], "result": direct["result"]}
        assert fake.count("/api/tasks/") == 5  # each id once, the duplicate dropped
        assert p.push_for_new_tasks(served, [11, 12], NER, conn) == 0 and fake.count("/api/projects/1/import") == 1
