"""A thin, typed wrapper over ``label-studio-sdk==2.1.2`` for what a training run needs.

Only four things go to Label Studio (PROTOCOL.md §7, §9, §10): list a project's tasks with their
annotations, import one prediction per unlabeled task in one or two large requests, PATCH the
project's ``model_version`` (and ``sampling``), and GET one annotation to confirm a webhook.

Why a wrapper: the SDK raises ``ApiError`` whose ``str`` includes response headers and bodies, and
transport errors from httpx; the server and the trainer need to tell "retry later" (unreachable,
5xx, 401 during a token mix-up) from "our bug", and must never print a token. Every failure
becomes a :class:`LabelStudioError` subclass whose message names the call and the HTTP status, with
any secret scrubbed out.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence, TypeVar

from ..data import Entity, Record
from .labelconfig import NerConfig

__all__ = [
    "LabelStudioError",
    "LabelStudioUnreachable",
    "LabelStudioAuthError",
    "LabelStudioServerError",
    "LabelStudioRequestError",
    "PredictionImportError",
    "LSClient",
    "LabeledTask",
    "UnlabeledTask",
    "Dataset",
    "choose_annotation",
    "regions_to_entities",
    "split_tasks",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

UNCERTAINTY_SAMPLING = "Uncertainty sampling"


class LabelStudioError(RuntimeError):
    """A Label Studio call that failed. ``transient`` says whether retrying later may help."""

    transient = True

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LabelStudioUnreachable(LabelStudioError):
    """No connection, DNS failure or timeout."""


class LabelStudioAuthError(LabelStudioError):
    """401/403: the key is wrong, expired, or lacks rights. Retried: a PAT refresh can fix it."""


class LabelStudioServerError(LabelStudioError):
    """5xx (e.g. SQLite "database is locked" during a large import)."""


class LabelStudioRequestError(LabelStudioError):
    """Other 4xx: our request was refused; retrying the same request will not help."""

    transient = False


class PredictionImportError(LabelStudioError):
    """Label Studio created fewer predictions than were sent (it drops invalid ones silently)."""

    transient = False


@dataclass
class LabeledTask:
    task_id: int
    text: str
    entities: list[Entity]
    annotation_id: int | None
    warnings: list[str] = field(default_factory=list)

    def to_record(self) -> Record:
        return Record(id=str(self.task_id), text=self.text, entities=list(self.entities))


@dataclass
class UnlabeledTask:
    task_id: int
    text: str


@dataclass
class Dataset:
    """D_L (annotated tasks), D_U (the rest) and what was skipped, with reasons."""

    labeled: list[LabeledTask]
    unlabeled: list[UnlabeledTask]
    skipped: list[tuple[int | None, str]]
    warnings: list[str]
    annotation_ids: set[int] = field(default_factory=set)  # every annotation seen, cancelled ones too


# ---- pure helpers (no network) -------------------------------------------------------------------
def _ts(a: dict[str, Any]) -> tuple[str, str, int]:
    return (str(a.get("updated_at") or ""), str(a.get("created_at") or ""), int(a.get("id") or 0))


def choose_annotation(annotations: Iterable[Any]) -> dict[str, Any] | None:
    """The annotation a task trains on: skip cancelled ones; prefer ground truth, else the latest
    (by ``updated_at``, then ``created_at``, then id). None if nothing usable is left.

    An annotation without a ``result`` field is unusable, not empty: Label Studio 1.23 strips nested
    annotation fields that a task list's ``include`` does not name, and reading that as "no entities"
    once trained every model on blank labels."""
    usable = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled") and isinstance(a.get("result"), list)]
    if not usable:
        return None
    gt = [a for a in usable if a.get("ground_truth")]
    return max(gt or usable, key=_ts)


def regions_to_entities(text: str, result: Sequence[Any], ner: NerConfig) -> tuple[list[Entity], list[str]]:
    """Entities from an annotation's ``result``; bad regions are skipped with a reason, the rest kept.

    A region is skipped when it is not a ``labels`` region of our control, names no label of the
    config, has non-integer, reversed or out-of-range offsets, carries a ``text`` that differs from
    ``text[start:end]``, or overlaps an earlier kept region (BIO tags cannot hold overlaps).
    """
    warnings: list[str] = []
    cands: list[Entity] = []
    for i, r in enumerate(result):
        if not isinstance(r, dict):
            warnings.append(f"region {i}: not an object")
            continue
        if r.get("type") not in (None, "labels") or r.get("from_name") not in (None, ner.from_name):
            continue  # another control's region (e.g. a Choices next to the Labels): not ours, no warning
        if r.get("to_name") not in (None, ner.to_name):
            continue
        v = r.get("value")
        if not isinstance(v, dict):
            warnings.append(f"region {i}: no value")
            continue
        start, end = v.get("start"), v.get("end")
        if isinstance(start, bool) or isinstance(end, bool) or not isinstance(start, int) or not isinstance(end, int):
            warnings.append(f"region {i}: start/end are not integers")
            continue
        if not 0 <= start < end <= len(text):
            warnings.append(f"region {i}: offsets [{start}, {end}) are reversed, empty or outside the text (length {len(text)})")
            continue
        labels = v.get("labels")
        if not isinstance(labels, list) or not labels:
            warnings.append(f"region {i}: no labels")
            continue
        known = [lb for lb in labels if isinstance(lb, str) and ner.has_label(lb)]
        if not known:
            warnings.append(f"region {i}: label(s) {[str(x)[:40] for x in labels][:3]} not in the label config")
            continue
        if len(known) > 1:
            warnings.append(f"region {i}: several labels {known}; using {known[0]!r}")
        if "text" in v and v["text"] != text[start:end]:
            warnings.append(f"region {i}: text {str(v['text'])[:40]!r} differs from the task text at [{start}, {end})")
            continue
        cands.append(Entity(start, end, known[0]))
    kept: list[Entity] = []
    last_end = -1
    for e in sorted(set(cands)):
        if e.start < last_end:
            warnings.append(f"region [{e.start}, {e.end}) {e.label!r} overlaps an earlier region; skipped")
            continue
        kept.append(e)
        last_end = e.end
    return kept, warnings


def _task_text(task: dict[str, Any], key: str) -> str | None:
    data = task.get("data")
    if not isinstance(data, dict):
        return None
    text = data.get(key)
    return text if isinstance(text, str) else None


def split_tasks(tasks: Iterable[dict[str, Any]], ner: NerConfig, max_text_chars: int | None = None) -> Dataset:
    """Split raw task dicts into D_L and D_U. Tasks without a usable text are skipped (and reported)."""
    labeled: list[LabeledTask] = []
    unlabeled: list[UnlabeledTask] = []
    skipped: list[tuple[int | None, str]] = []
    warnings: list[str] = []
    ann_ids: set[int] = set()
    for t in tasks:
        tid = t.get("id") if isinstance(t, dict) else None
        if isinstance(t, dict) and isinstance(t.get("annotations"), list):
            ann_ids.update(a["id"] for a in t["annotations"] if isinstance(a, dict) and isinstance(a.get("id"), int))
        if not isinstance(tid, int) or isinstance(tid, bool):
            skipped.append((None, "task without an integer id"))
            continue
        text = _task_text(t, ner.value_key)
        if text is None:
            skipped.append((tid, f"task data has no string field {ner.value_key!r}"))
            continue
        if max_text_chars is not None and len(text) > max_text_chars:
            skipped.append((tid, f"text longer than {max_text_chars} characters"))
            continue
        ann = choose_annotation(t.get("annotations") or [])
        if ann is None:
            unlabeled.append(UnlabeledTask(tid, text))
            continue
        ents, warns = regions_to_entities(text, ann.get("result") or [], ner)
        for w in warns:
            warnings.append(f"task {tid}, annotation {ann.get('id')}: {w}")
        labeled.append(LabeledTask(tid, text, ents, ann.get("id") if isinstance(ann.get("id"), int) else None, warns))
    for w in warnings[:50]:
        log.warning("%s", w)
    if len(warnings) > 50:
        log.warning("... and %d more region warnings", len(warnings) - 50)
    return Dataset(labeled, unlabeled, skipped, warnings, ann_ids)


# ---- the client ----------------------------------------------------------------------------------
def _short(body: Any, limit: int = 300) -> str:
    try:
        s = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        s = repr(body)
    s = " ".join(s.split())
    return s[:limit] + ("..." if len(s) > limit else "")


#: ``include`` of the task list: the task fields and, because Label Studio applies it to the nested
#: annotations as well, the annotation fields training needs (see :meth:`LSClient.fetch_tasks`).
TASK_INCLUDE = "id,data,annotations,project,result,was_cancelled,ground_truth,updated_at,created_at"


class LSClient:
    """Label Studio at ``url`` with ``api_key`` (legacy token or PAT; the SDK tells them apart)."""

    def __init__(self, url: str, api_key: str, timeout: float = 300.0, max_retries: int = 1, sdk: Any = None) -> None:
        if not url or not api_key:
            raise LabelStudioRequestError("Label Studio URL and API key are both required")
        self.url = url.rstrip("/")
        self._secret = api_key
        self._timeout = timeout
        self._max_retries = max_retries
        self._sdk = sdk
        self._sdk_error: LabelStudioError | None = None

    def __repr__(self) -> str:
        return f"LSClient(url={self.url!r})"

    # The SDK client is built lazily: constructing it with a PAT refresh token decodes the JWT and
    # may raise (expired key); that must surface as a typed error inside a run, not at import.
    @property
    def sdk(self) -> Any:
        if self._sdk is None:
            try:
                from label_studio_sdk import LabelStudio

                self._sdk = LabelStudio(base_url=self.url, api_key=self._secret, timeout=self._timeout, max_retries=self._max_retries)
            except Exception as exc:  # noqa: BLE001
                raise self._translate("connect", exc) from None
        return self._sdk

    def _scrub(self, s: str) -> str:
        return s.replace(self._secret, "***") if self._secret else s

    def _translate(self, what: str, exc: BaseException) -> LabelStudioError:
        status = getattr(exc, "status_code", None)
        if isinstance(status, int):
            body = self._scrub(_short(getattr(exc, "body", "")))
            msg = f"{what}: Label Studio answered HTTP {status}: {body}"
            if status in (401, 403):
                return LabelStudioAuthError(msg + " (check LABEL_STUDIO_API_KEY; legacy tokens must be enabled to use one)", status)
            if status >= 500 or status in (408, 409, 429):
                return LabelStudioServerError(msg, status)
            return LabelStudioRequestError(msg, status)
        try:
            import httpx

            if isinstance(exc, (httpx.TransportError, httpx.TimeoutException)):
                return LabelStudioUnreachable(f"{what}: could not reach Label Studio at {self.url} ({type(exc).__name__})")
        except ImportError:  # pragma: no cover
            pass
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return LabelStudioUnreachable(f"{what}: could not reach Label Studio at {self.url} ({type(exc).__name__})")
        return LabelStudioError(f"{what}: {type(exc).__name__}: {self._scrub(_short(str(exc)))}")

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except LabelStudioError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated, never re-raised raw (it may hold headers)
            raise self._translate(what, exc) from None

    @staticmethod
    def _dump(obj: Any) -> dict[str, Any]:
        if isinstance(obj, dict):
            return obj
        dump = getattr(obj, "model_dump", None)
        if dump is None:
            raise LabelStudioError(f"unexpected SDK object {type(obj).__name__}")
        return dump(mode="json")

    # ---- reads ----------------------------------------------------------------------------------
    def get_project(self, project_id: int) -> dict[str, Any]:
        return self._call(f"GET project {project_id}", lambda: self._dump(self.sdk.projects.get(id=project_id)))

    def fetch_tasks(self, project_id: int, page_size: int = 1000) -> list[dict[str, Any]]:
        """Every task of the project with its annotations, as plain dicts.

        ``fields=all`` is needed for annotations, but it also serialises every stored prediction of
        every model version (about 14 MB per version at 10k tasks, PROTOCOL.md §9), so ``include``
        (Label Studio's flex-fields parameter) keeps only what training reads. ``include`` also filters
        the fields of the nested annotations (tested on 1.23.2: with only ``annotations`` listed, each
        annotation came back as ``{"id", "project"}`` with no ``result``), so the annotation fields
        that :func:`choose_annotation` and :func:`regions_to_entities` read are listed too."""

        def run() -> list[dict[str, Any]]:
            pager = self.sdk.tasks.list(project=project_id, fields="all", include=TASK_INCLUDE, page_size=page_size)
            return [self._dump(t) for t in pager]

        return self._call(f"list tasks of project {project_id}", run)

    def fetch_dataset(self, project_id: int, ner: NerConfig, max_text_chars: int | None = None) -> Dataset:
        return split_tasks(self.fetch_tasks(project_id), ner, max_text_chars)

    def get_annotation(self, annotation_id: int) -> dict[str, Any] | None:
        """The annotation, or None when Label Studio says it does not exist (404)."""
        try:
            return self._call(f"GET annotation {annotation_id}", lambda: self._dump(self.sdk.annotations.get(id=annotation_id)))
        except LabelStudioRequestError as exc:
            if exc.status == 404:
                return None
            raise

    def get_task(self, task_id: int) -> dict[str, Any] | None:
        """One task with its annotations, or None when Label Studio says it does not exist (404)."""
        try:
            return self._call(f"GET task {task_id}", lambda: self._dump(self.sdk.tasks.get(id=str(task_id))))
        except LabelStudioRequestError as exc:
            if exc.status == 404:
                return None
            raise

    # ---- writes ---------------------------------------------------------------------------------
    def push_predictions(self, project_id: int, predictions: Sequence[dict[str, Any]], chunk: int = 10_000) -> int:
        """Import predictions in chunks of ``chunk`` (large: LS recounts per request, PROTOCOL.md §9)
        and check that every one was created. Returns the number created."""
        total = 0
        chunk = max(1, int(chunk))
        for i in range(0, len(predictions), chunk):
            part = list(predictions[i : i + chunk])
            t0 = time.monotonic()
            resp = self._call(
                f"import {len(part)} predictions into project {project_id}",
                # no SDK-level retry: an import is not idempotent (a 500 after the insert would
                # duplicate predictions); the caller retries whole chunks with backoff instead
                lambda: self.sdk.projects.import_predictions(id=project_id, request=part, request_options={"max_retries": 0}),
            )
            created = getattr(resp, "created", None)
            if created is None and isinstance(resp, dict):
                created = resp.get("created")
            if created != len(part):
                raise PredictionImportError(
                    f"Label Studio created {created} of {len(part)} predictions in project {project_id} "
                    "(it drops invalid ones silently; see its log)"
                )
            total += int(created)
            log.info("project %s: imported %d predictions in %.1f s", project_id, created, time.monotonic() - t0)
        return total

    def set_model_version(self, project_id: int, version: str, uncertainty_sampling: bool = True) -> None:
        """PATCH ``model_version`` (LS accepts it only once predictions of it exist) and, optionally,
        ``sampling="Uncertainty sampling"``, so the queue serves the lowest score first."""
        kw: dict[str, Any] = {"model_version": version}
        if uncertainty_sampling:
            kw["sampling"] = UNCERTAINTY_SAMPLING
        self._call(f"PATCH project {project_id} model_version", lambda: self.sdk.projects.update(id=project_id, **kw))
