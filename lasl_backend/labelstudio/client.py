"""A thin, typed wrapper over ``label-studio-sdk==2.1.2`` for what the backend asks Label Studio.

A training run lists a project's tasks with their annotations, imports one prediction per unlabeled
task in one or two large requests and PATCHes the project's ``model_version`` (and ``sampling``); a
webhook check GETs one annotation, and new tasks are read one by one (docs/serving.md, "A training
run" and "Webhooks"). What the tasks mean is :mod:`.tasks`; the regions sent back are :mod:`.predictions`.

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
from typing import Any, Callable, Sequence, TypeVar

import httpx

from .labelconfig import NerConfig
from .tasks import Dataset, split_tasks

__all__ = [
    "LabelStudioError",
    "LabelStudioUnreachable",
    "LabelStudioAuthError",
    "LabelStudioServerError",
    "LabelStudioRequestError",
    "PredictionImportError",
    "LSClient",
    "TASK_INCLUDE",
    "UNCERTAINTY_SAMPLING",
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


def _short(body: Any, limit: int = 300) -> str:
    try:
        s = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        s = repr(body)
    s = " ".join(s.split())
    return s[:limit] + ("..." if len(s) > limit else "")


#: ``include`` of the task list: the task fields and, because Label Studio applies it to the nested
#: annotations as well, the annotation fields training needs (see :meth:`LSClient.fetch_tasks`).
TASK_INCLUDE = "id,data,annotations,project,result,was_cancelled,ground_truth,updated_at,created_at,lead_time"


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

    def __repr__(self) -> str:
        return f"LSClient(url={self.url!r})"

    # The SDK client is built lazily: constructing it with a PAT refresh token decodes the JWT and
    # may raise (expired key); that must surface as a typed error inside a run, not at import.
    @property
    def sdk(self) -> Any:
        if self._sdk is None:
            try:
                # imported here: the SDK's client takes ~0.5 s to import, and only runs and webhook checks need it
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
        if isinstance(exc, (httpx.TransportError, httpx.TimeoutException, ConnectionError, TimeoutError, OSError)):
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
        every model version (about 14 MB per version at 10k tasks; docs/serving.md, "Label Studio facts"), so ``include``
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
        """Import predictions in chunks of ``chunk`` (large: LS recounts the project per request)
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
