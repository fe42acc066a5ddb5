"""The Flask 3 app that Label Studio 1.23 talks to (docs/serving.md, "The protocol").

Routes: ``GET /`` and ``/health`` (cheap), ``POST /setup`` (< 3 s, never loads a model), ``POST
/predict``, ``POST /webhook``, ``GET /versions``, ``GET /metrics``, ``GET /dashboard`` (the project page,
HTML from stored numbers, never a model load). Every error is JSON
``{"error": "..."}`` with a 4xx status for bad input; a 5xx means a bug in this code.

Bad input policy for /predict: a request that is not a JSON object, has no non-empty ``tasks`` list,
an unusable ``label_config`` or project id, or is too large (413) gets a 4xx. A task that cannot be
read (no ``data``, no text field, a non-string or over-long text) does not fail its batch, because
Label Studio drops the whole batch when the count of results differs from the count of tasks: it gets a
placeholder ``{"result": [], "score": 1.0}`` (served last) and an entry in the response's ``errors``
list. Only when *no* task of the request is readable is the answer 422 with those errors.

Basic auth guards every route but /health; /webhook decides per action (``webhooks`` module doc).
Each view only reads the request and hands it to the :class:`~.service.BackendService`.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..config import Settings
from .auth import credentials
from .parsing import (
    ANNOTATION_EVENTS,
    IGNORED_EVENTS,
    BadRequest,
    annotation_ids,
    new_task_ids,
    parse_predict,
    parse_project_id,
    parse_setup,
    read_json_object,
    training_label_config,
    versions_project,
    webhook_action,
    webhook_project,
)
from .service import BackendService
from .webhooks import WebhookLimits

__all__ = ["init_app"]

log = logging.getLogger(__name__)


def _json(obj: Any, status: int = 200) -> Response:
    resp = jsonify(obj)
    resp.status_code = status
    return resp


def _error(message: str, status: int, **extra: Any) -> Response:
    resp = _json(dict({"error": message}, **extra), status)
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Basic realm="lasl-backend"'
    return resp


def _body() -> dict[str, Any]:
    return read_json_object(request.get_data(cache=True))  # raises RequestEntityTooLarge past MAX_CONTENT_LENGTH


def _error_page(message: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>lasl-backend</title></head>'
            f'<body><h1>lasl-backend</h1><p>{html.escape(message)}</p><p><a href="dashboard">All projects</a></p></body></html>')


def _install_auth(app: Flask, settings: Settings) -> None:
    @app.before_request
    def _auth() -> Response | None:
        g.auth = credentials(settings, request.headers, request.authorization)
        if request.endpoint in ("health",):
            return None
        if g.auth is False:
            return _error("invalid credentials", 401)
        if g.auth is None and request.endpoint != "webhook":
            return _error("authentication required", 401)
        return None  # /webhook decides per action


def _install_error_handlers(app: Flask, settings: Settings) -> None:
    @app.errorhandler(BadRequest)
    def _bad(exc: BadRequest) -> Response:
        return _error(str(exc), exc.status, **exc.extra)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge) -> Response:
        return _error(f"request body is larger than {settings.max_request_bytes} bytes (LASL_MAX_REQUEST_MB)", 413)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        return _error(exc.description or exc.name, exc.code or 500)

    @app.errorhandler(Exception)
    def _crash(exc: Exception) -> Response:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return _error("internal error; see the backend log", 500)


def _webhook(service: BackendService, settings: Settings) -> Response:
    body = _body()
    action = webhook_action(body)
    credentialed = settings.auth_enabled and g.auth is True
    if action == "START_TRAINING":
        if g.auth is not True:
            return _error("START_TRAINING needs valid credentials", 401)
        return _json(service.start_training(webhook_project(body), training_label_config(body)), 201)
    if action in ANNOTATION_EVENTS:
        pid = webhook_project(body)
        return _json(service.annotation_event(pid, action, annotation_ids(action, body), credentialed))
    if action == "TASKS_CREATED":
        pid = webhook_project(body)
        return _json(service.tasks_created(pid, new_task_ids(body), credentialed))
    if action in IGNORED_EVENTS:
        return _json({"status": "ignored", "action": action})
    return _json({"status": "Unknown event"})


def _install_routes(app: Flask, service: BackendService, settings: Settings) -> None:
    @app.get("/", endpoint="index")
    @app.get("/health", endpoint="health")
    def health() -> Response:
        return jsonify(service.health())

    @app.post("/setup")
    def setup() -> Response:
        return jsonify(service.setup(parse_setup(_body())))

    @app.post("/predict")
    def predict() -> Response:
        return jsonify(service.predict(parse_predict(_body())))

    @app.post("/webhook")
    def webhook() -> Response:
        return _webhook(service, settings)

    @app.get("/versions")
    def versions() -> Response:
        query = request.args.get("project")
        raw = request.get_data(cache=True) if query is None and request.content_length else b""
        return jsonify(service.versions(versions_project(query, raw)))

    @app.get("/metrics")
    def metrics() -> Response:
        return jsonify(service.metrics())

    @app.get("/dashboard")
    def dashboard() -> Response:
        try:
            query = request.args.get("project")
            page = service.dashboard(None if query is None or query == "" else parse_project_id(query))
        except BadRequest as exc:  # a person reads this page: the error as a page too
            return Response(_error_page(str(exc)), status=exc.status, mimetype="text/html")
        return Response(page, mimetype="text/html")


def init_app(
    model_class: Any = None,
    settings: Settings | None = None,
    store: Any = None,
    *,
    webhook_limits: WebhookLimits | None = None,
    **backend_kwargs: Any,
) -> Flask:
    """The Flask app, and nothing process-wide (that is :func:`~.boot.boot`'s job). ``model_class``
    defaults to ``LaslBackend``; ``settings`` default to the environment (validated: a bad variable
    raises :class:`ConfigError` here; the device is checked by ``boot``, which the server runs first);
    ``backend_kwargs`` go to every ``model_class(...)``."""
    settings = settings or Settings.from_env()
    service = BackendService(settings, store=store, model_class=model_class, limits=webhook_limits, backend_kwargs=backend_kwargs)
    app = Flask("lasl_backend")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["lasl"] = service
    _install_auth(app, settings)
    _install_error_handlers(app, settings)
    _install_routes(app, service, settings)
    return app
