"""/predict and the predictions a backend pushes: task texts in, one prediction per task out.

Label Studio checks every /predict answer per batch: one entry per task, in order. So a task that
cannot be read (or that breaks the model) still gets an entry, ``result: []`` with the end-of-queue
score, and is reported next to it instead of failing the batch (docs/serving.md, "The protocol").
/predict, the pool push after a run and the push for new tasks all build their predictions with
:func:`predictions_for`, so one text gets one score however it reaches Label Studio.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Sequence

from ..config import Settings
from ..labelstudio import NerConfig, prediction_import, span_regions, task_prediction
from ..ner import RecordScore
from ..strategies.cost import CostModel
from .connection import LabelStudioConnection
from .model_slot import ServedModel
from .parsing import MAX_NEW_TASKS
from .scores import COLD_START_VERSION, UNREADABLE_SCORE, cold_start_score, queue_scores

__all__ = ["PredictStats", "Predictor", "TaskIssue", "predictions_for", "read_task_text"]

log = logging.getLogger(__name__)

@dataclass
class TaskIssue:
    """A task /predict could not read, reported next to the placeholder result."""

    index: int
    task_id: Any
    error: str

    def to_dict(self) -> dict[str, Any]:
        tid = self.task_id if isinstance(self.task_id, (int, str)) and not isinstance(self.task_id, bool) else None
        return {"index": self.index, "task_id": tid, "error": self.error}


def _task_id(task: object) -> Any:
    return task.get("id") if isinstance(task, dict) else None


def read_task_text(task: object, ner: NerConfig, max_text_chars: int) -> str:
    """The task's text (the exact string; offsets index it), or ValueError saying why not."""
    if not isinstance(task, dict):
        raise ValueError(f"task is a {type(task).__name__}, not an object")
    data = task.get("data")
    if not isinstance(data, dict):
        raise ValueError("task has no 'data' object")
    key = ner.value_key
    if key not in data:
        raise ValueError(f"task data has no field {key!r} (the label config's <Text value=\"${key}\">)")
    text = data[key]
    if not isinstance(text, str):
        raise ValueError(f"task data field {key!r} is a {type(text).__name__}, not a string")
    if len(text) > max_text_chars:
        raise ValueError(f"text has {len(text)} characters; the limit is {max_text_chars} (LASL_MAX_TEXT_CHARS)")
    return text


def predictions_for(
    served: ServedModel, texts: Sequence[str], records: Sequence[RecordScore], ner: NerConfig, project_id: int | None = None
) -> list[dict[str, Any]]:
    """One Label Studio prediction per text from the model's record scores."""
    stored = served.meta.get("cost_model")
    scores = queue_scores(records, served.normalizer, project_id, CostModel.from_dict(stored) if stored else None)
    return [task_prediction(span_regions(t, r.entities, ner), s, served.version) for t, r, s in zip(texts, records, scores)]


class PredictStats:
    """Counts of /predict requests, tasks and unreadable tasks since the process started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {"requests": 0, "tasks": 0, "unreadable": 0}

    def add(self, tasks: int, unreadable: int) -> None:
        with self._lock:
            self._counts["requests"] += 1
            self._counts["tasks"] += tasks
            self._counts["unreadable"] += unreadable

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class Predictor:
    """Runs a served model over task texts for one project."""

    def __init__(self, project_id: int, settings: Settings) -> None:
        self.project_id = project_id
        self.settings = settings
        self.stats = PredictStats()

    def run_model(self, served: ServedModel, texts: Sequence[str]) -> list[RecordScore]:
        # workers: a one-record request runs its Bi-LSTM directions on two threads; a larger one its batches
        return served.model.predict(list(texts), max_batch=self.settings.predict_batch, workers=self.settings.score_workers)

    def predictions(self, served: ServedModel, texts: Sequence[str], ner: NerConfig) -> list[dict[str, Any]]:
        return predictions_for(served, texts, self.run_model(served, texts), ner, self.project_id)

    def predict(self, tasks: Sequence[Any], ner: NerConfig, served: ServedModel | None) -> tuple[list[dict[str, Any]], list[TaskIssue]]:
        """One result per task, in order, plus the tasks that could not be read (or predicted)."""
        texts, issues = self._read_all(tasks, ner)
        version = served.version if served is not None else COLD_START_VERSION
        readable = {i: t for i, t in enumerate(texts) if t is not None}
        if served is None:
            results = {i: task_prediction([], cold_start_score(len(t)), version) for i, t in readable.items()}
        else:
            results = self._model_results(served, readable, ner, tasks, issues)
        out = [results[i] if i in results else task_prediction([], UNREADABLE_SCORE, version) for i in range(len(tasks))]
        issues.sort(key=lambda x: x.index)
        self.stats.add(len(tasks), len(issues))
        return out, issues

    def _read_all(self, tasks: Sequence[Any], ner: NerConfig) -> tuple[list[str | None], list[TaskIssue]]:
        texts: list[str | None] = []
        issues: list[TaskIssue] = []
        for i, task in enumerate(tasks):
            try:
                texts.append(read_task_text(task, ner, self.settings.max_text_chars))
            except ValueError as exc:
                texts.append(None)
                issues.append(TaskIssue(i, _task_id(task), str(exc)))
        return texts, issues

    def _model_results(
        self, served: ServedModel, readable: dict[int, str], ner: NerConfig, tasks: Sequence[Any], issues: list[TaskIssue]
    ) -> dict[int, dict[str, Any]]:
        """The readable tasks in one batch; if the batch fails, task by task, so one bad task
        costs only its own prediction (it is added to ``issues``)."""
        if not readable:
            return {}
        try:
            return dict(zip(readable, self.predictions(served, list(readable.values()), ner)))
        except Exception as exc:  # noqa: BLE001 - isolate the task that breaks the model
            log.warning("project %s: batch prediction failed (%s); predicting task by task", self.project_id, type(exc).__name__)
        results: dict[int, dict[str, Any]] = {}
        for i, text in readable.items():
            try:
                results[i] = self.predictions(served, [text], ner)[0]
            except Exception as exc2:  # noqa: BLE001
                log.error("project %s: prediction failed for task index %d: %s", self.project_id, i, type(exc2).__name__)
                issues.append(TaskIssue(i, _task_id(tasks[i]), "the model failed on this task"))
        return results

    def push_for_new_tasks(self, served: ServedModel, task_ids: Sequence[int], ner: NerConfig, connection: LabelStudioConnection) -> int:
        """Push predictions of the serving version for tasks imported after the last run.

        Why: once ``project.model_version`` names a static version, Label Studio stops live-predicting
        new tasks, and Uncertainty sampling serves only tasks holding a prediction of that version; new
        tasks would wait until every scored one is done (docs/serving.md, "The queue"). The tasks are
        read from Label Studio itself (the webhook's copy is not trusted), and scored with the same
        frozen normalizer as the pool. Returns the number pushed."""
        client = connection.client()
        tids, texts = [], []
        for tid in list(dict.fromkeys(task_ids))[:MAX_NEW_TASKS]:
            t = connection.retry("get task", lambda tid=tid: client.get_task(tid))
            if not t or t.get("project") not in (None, self.project_id) or t.get("annotations"):
                continue
            try:
                texts.append(read_task_text(t, ner, self.settings.max_text_chars))
            except ValueError:
                continue
            tids.append(tid)
        if not tids:
            return 0
        preds = [prediction_import(tid, p) for tid, p in zip(tids, self.predictions(served, texts, ner))]
        return int(connection.retry("push predictions", lambda: client.push_predictions(self.project_id, preds, chunk=len(preds))))
