"""Reading what a request carries: the JSON body, project ids, the fields of /setup, /predict and webhook
payloads. Every problem becomes a :class:`BadRequest` with the message and status the client sees
(docs/serving.md, "The protocol"); nothing here touches per-project state."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .project_ids import UnsafePathError, check_project_id

__all__ = [
    "ANNOTATION_EVENTS",
    "IGNORED_EVENTS",
    "MAX_NEW_TASKS",
    "MAX_TASKS",
    "BadRequest",
    "PredictRequest",
    "SetupRequest",
    "annotation_ids",
    "new_task_ids",
    "parse_predict",
    "parse_project_id",
    "parse_setup",
    "read_json_object",
    "training_label_config",
    "versions_project",
    "webhook_action",
    "webhook_project",
]

ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")
IGNORED_EVENTS = ("TASKS_DELETED", "PROJECT_UPDATED", "PROJECT_CREATED", "ANNOTATIONS_CREATED", "LABEL_LINK_CREATED")
MAX_TASKS = 100_000
#: the most task ids one TASKS_CREATED event gets predictions for (more are dropped at intake)
MAX_NEW_TASKS = 5000
MAX_DELETED = 10_000
_PROJECT_RE = re.compile(r"^([0-9]{1,12})(?:\.[0-9]{1,20})?\Z")
_PROJECT_MSG = "project must be an integer id or '<id>.<timestamp>'"


class BadRequest(Exception):
    """A 4xx answer with a message (raised inside views, rendered as JSON)."""

    def __init__(self, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


def parse_project_id(value: object) -> int:
    """``1``, ``"1"`` or Label Studio's ``"<id>.<created_ts>"`` → 1; anything else → BadRequest."""
    if isinstance(value, bool):
        raise BadRequest(_PROJECT_MSG)
    if isinstance(value, int):
        try:
            return check_project_id(value)
        except UnsafePathError as exc:
            raise BadRequest(str(exc)) from None
    if isinstance(value, str):
        m = _PROJECT_RE.match(value)
        if m:
            return int(m.group(1))
    raise BadRequest(_PROJECT_MSG)


def read_json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or BadRequest saying what is wrong with it."""
    if not raw:
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise BadRequest("request body is not UTF-8") from None
    except RecursionError:
        raise BadRequest("request body is nested too deeply") from None
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON ({exc.__class__.__name__}: {str(exc)[:100]})") from None
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object, not {type(body).__name__}")
    return body


# ---- /setup and /predict -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SetupRequest:
    project: int
    schema: object  # None: keep the project's label config
    hostname: object
    access_token: object


def parse_setup(body: dict[str, Any]) -> SetupRequest:
    if "project" not in body:
        raise BadRequest("missing 'project'")
    pid = parse_project_id(body.get("project"))
    return SetupRequest(pid, body.get("schema"), body.get("hostname"), body.get("access_token"))


@dataclass(frozen=True)
class PredictRequest:
    project: int
    tasks: list[Any]
    label_config: object  # None: use the one the project already has
    context: object


def _tasks(body: dict[str, Any]) -> list[Any]:
    tasks = body.get("tasks")
    if tasks is None:
        raise BadRequest("missing 'tasks'")
    if not isinstance(tasks, list):
        raise BadRequest(f"'tasks' must be a list, not {type(tasks).__name__}")
    if not tasks:
        raise BadRequest("'tasks' is empty")
    if len(tasks) > MAX_TASKS:
        raise BadRequest(f"too many tasks ({len(tasks)} > {MAX_TASKS}); send smaller batches", 413)
    return tasks


def parse_predict(body: dict[str, Any]) -> PredictRequest:
    """The tasks first, then the project (in the body, else in the first task), as Label Studio sends them."""
    tasks = _tasks(body)
    raw_pid = body.get("project")
    if raw_pid is None:
        first = tasks[0] if isinstance(tasks[0], dict) else {}
        raw_pid = first.get("project")
    if raw_pid is None:
        raise BadRequest("missing 'project' (in the body or in the tasks)")
    pid = parse_project_id(raw_pid)
    params = body.get("params")
    context = params.get("context") if isinstance(params, dict) else None
    return PredictRequest(pid, tasks, body.get("label_config"), context)


def versions_project(query_value: str | None, raw_body: bytes) -> int | None:
    """/versions' project: the query's ``project``, else a JSON body's; None lists every project."""
    raw: object = query_value
    if raw is None and raw_body:
        try:
            body = json.loads(raw_body or b"null")
        except (ValueError, UnicodeDecodeError, RecursionError):
            body = None
        raw = body.get("project") if isinstance(body, dict) else None
    return None if raw is None else parse_project_id(raw)


# ---- webhooks -----------------------------------------------------------------------------------------
def webhook_action(body: dict[str, Any]) -> str:
    action = body.get("action")
    if not isinstance(action, str) or not action:
        raise BadRequest("missing 'action'")
    return action


def webhook_project(body: dict[str, Any]) -> int:
    """The project of a webhook payload: ``project`` is an object with an ``id`` (or, rarely, the id)."""
    project = body.get("project")
    if project is None:
        raise BadRequest("webhook payload has no 'project'")
    if isinstance(project, dict):
        if "id" not in project:
            raise BadRequest("webhook payload's 'project' has no 'id'")
        return parse_project_id(project["id"])
    return parse_project_id(project)


def training_label_config(body: dict[str, Any]) -> str | None:
    """START_TRAINING's ``project.label_config``, when it carries one."""
    project = body.get("project")
    cfg = project.get("label_config") if isinstance(project, dict) else None
    return cfg if isinstance(cfg, str) else None


def _annotation_id(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 < v < 10**15:
        raise BadRequest("annotation id must be a positive integer")
    return v


def annotation_ids(action: str, body: dict[str, Any]) -> list[int]:
    """The annotation ids an ANNOTATION_* event names (a list only for ANNOTATIONS_DELETED)."""
    if action == "ANNOTATIONS_DELETED":
        anns = body.get("annotations")
        if not isinstance(anns, list) or not anns:
            raise BadRequest("ANNOTATIONS_DELETED needs a non-empty 'annotations' list")
        if len(anns) > MAX_DELETED:
            raise BadRequest("too many annotations in one event", 413)
        return [_annotation_id(a.get("id") if isinstance(a, dict) else None) for a in anns]
    ann = body.get("annotation")
    if not isinstance(ann, dict):
        raise BadRequest(f"{action} needs an 'annotation' object")
    return [_annotation_id(ann.get("id"))]


def new_task_ids(body: dict[str, Any]) -> list[int]:
    """TASKS_CREATED's task ids: positive integers, each once, the first :data:`MAX_NEW_TASKS` (anything
    else in the list is skipped), so one forged event cannot take the new-task backlog's whole id budget."""
    tasks = body.get("tasks")
    if not isinstance(tasks, list):
        raise BadRequest("TASKS_CREATED needs a 'tasks' list")
    ids = [t.get("id") for t in tasks if isinstance(t, dict)]
    good = (i for i in ids if isinstance(i, int) and not isinstance(i, bool) and i > 0)
    return list(dict.fromkeys(good))[:MAX_NEW_TASKS]
