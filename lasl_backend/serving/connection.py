"""How one project's backend reaches Label Studio: whose credentials, which client, how to retry.

* Credentials: ``LABEL_STUDIO_URL``/``LABEL_STUDIO_API_KEY`` from the environment first, else the
  ``hostname``/``access_token`` that /setup sent (Label Studio sends them when the backend is
  connected in its UI; docs/serving.md, "The protocol").
* One :class:`LSClient` per (url, key): the SDK client keeps its HTTP connection pool, and a new
  token from /setup gets a new client.
* Label Studio errors that may pass (unreachable, 5xx, 401 during a token refresh) are retried with
  exponential backoff, ``LASL_RETRY_BACKOFF_S`` doubling per retry, ``LASL_TRAIN_RETRIES`` times; a
  stop request (server shutdown) ends the wait at once.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, TypeVar

from ..config import Settings, is_http_url
from ..labelstudio import LabelStudioError, LabelStudioRequestError, LSClient
from ..ner import TrainingCancelled

__all__ = ["LabelStudioConnection", "NoConnectionError"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class NoConnectionError(LabelStudioRequestError):
    """Neither LABEL_STUDIO_URL/LABEL_STUDIO_API_KEY nor a /setup hostname/token is known."""


class LabelStudioConnection:
    """The Label Studio side of one project: credentials, cached clients, retries."""

    def __init__(
        self,
        project_id: int,
        settings: Settings,
        stop: threading.Event,
        factory: Callable[[str, str], LSClient] | None = None,
    ) -> None:
        self._project_id = project_id
        self._settings = settings
        self._stop = stop
        self._factory = factory or (lambda url, key: LSClient(url, key, timeout=settings.ls_timeout))
        self._setup_url: str | None = None
        self._setup_token: str | None = None
        self._retries = 0  # calls retried since the last take_retries (one training thread per project)
        self._clients: dict[tuple[str, str], LSClient] = {}
        self._lock = threading.Lock()

    def remember_setup(self, hostname: object, access_token: object) -> None:
        """Keep what /setup sent (used only when the environment names no Label Studio). Values
        that are not an http(s) URL without credentials and a non-empty token are ignored."""
        if not isinstance(hostname, str) or not isinstance(access_token, str) or not access_token.strip():
            return
        if not is_http_url(hostname):
            return
        self._setup_url, self._setup_token = hostname.rstrip("/"), access_token.strip()

    def _credentials(self) -> tuple[str, str] | None:
        s = self._settings
        if s.label_studio_url and s.label_studio_api_key:
            return s.label_studio_url, s.label_studio_api_key
        if self._setup_url and self._setup_token:
            return self._setup_url, self._setup_token
        return None

    @property
    def available(self) -> bool:
        return self._credentials() is not None

    def client(self) -> LSClient:
        """The client for the credentials in force (raises :class:`NoConnectionError` without any)."""
        creds = self._credentials()
        if creds is None:
            raise NoConnectionError(
                "no Label Studio connection: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY "
                "(or connect the backend in Label Studio so that /setup sends a token)"
            )
        with self._lock:
            client = self._clients.get(creds)
            if client is None:
                client = self._clients[creds] = self._factory(*creds)
            return client

    def take_retries(self) -> int:
        """Label Studio calls retried since the last call (a run's count, for its history entry)."""
        n, self._retries = self._retries, 0
        return n

    def retry(self, what: str, call: Callable[[], T]) -> T:
        """``call()``; a transient :class:`LabelStudioError` is retried after a growing wait.

        Raises the last error once the retries are used up, at once for a permanent one, and
        :class:`TrainingCancelled` when a stop request ends a wait."""
        attempts = 1 + self._settings.train_retries
        for k in range(attempts):
            try:
                return call()
            except LabelStudioError as exc:
                if not exc.transient or k == attempts - 1:
                    raise
                delay = self._settings.retry_backoff_s * (2**k)
                self._retries += 1
                log.warning("project %s: %s failed (%s); retry %d/%d in %.0f s", self._project_id, what, exc, k + 1, attempts - 1, delay)
                if self._stop.wait(delay):
                    raise TrainingCancelled("stop requested while waiting to retry")
        raise AssertionError("unreachable")  # pragma: no cover
