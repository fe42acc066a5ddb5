"""The serving model of one project: loaded lazily, swapped whole.

* What /predict uses is one immutable :class:`ServedModel` (model, frozen DBS normalizer, version,
  meta). A caller takes the reference and computes with it outside any lock; a training run builds
  and saves the new one completely, then swaps the reference. A /predict therefore sees the old
  model or the new one, never a mix, and never waits for training.
* Nothing is loaded until the first caller asks: /setup must stay cheap and never load a model
  (docs/serving.md, "The protocol"). The first load reads ``ModelStore.latest_good``; a newest
  version that cannot be loaded (a corrupt checkpoint) falls back to the next older complete one, so
  one bad write never sends a project back to cold start (docs/serving.md, "Versions and the store").
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from ..ner import NerModel
from ..strategies import DBSNormalizer
from .store import ModelStore

__all__ = ["ModelSlot", "ServedModel", "load_served"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """What /predict uses; never mutated after construction (swapped as a whole)."""

    version: str
    model: NerModel
    normalizer: DBSNormalizer | None
    meta: dict[str, Any] = field(default_factory=dict)


def load_served(store: ModelStore, project_id: int, version: str, device: str = "cpu") -> ServedModel:
    """One stored version as a :class:`ServedModel` (raises whatever a broken checkpoint raises)."""
    model = NerModel.load(store.model_path(project_id, version), device=device)
    stored = store.read_normalizer(project_id, version)
    normalizer = DBSNormalizer.from_dict(stored) if stored else None
    return ServedModel(version, model, normalizer, store.read_meta(project_id, version))


class ModelSlot:
    """Holds the serving :class:`ServedModel` of one project (None: cold start)."""

    def __init__(
        self,
        store: ModelStore,
        project_id: int,
        device: str = "cpu",
        loader: Callable[[str], ServedModel] | None = None,
    ) -> None:
        self._store = store
        self._project_id = project_id
        self._load = loader or (lambda version: load_served(store, project_id, version, device))
        self._lock = threading.Lock()
        self._served: ServedModel | None = None
        self._loaded = False  # a load ran or a model was swapped in (None afterwards means cold start)

    @property
    def loaded(self) -> bool:
        return self._loaded

    def peek(self) -> ServedModel | None:
        """The serving model if one is in memory; never loads."""
        return self._served

    def current(self) -> ServedModel | None:
        """The serving model, loading it on first use: one caller loads, concurrent callers wait."""
        if self._loaded:  # read before _served: both are set in the other order
            return self._served
        with self._lock:
            if not self._loaded:
                self._served = self._load_latest()
                self._loaded = True
            return self._served

    def swap(self, served: ServedModel) -> None:
        """Serve ``served`` from now on (waits for a first load in progress, then replaces its result)."""
        with self._lock:
            self._served = served
            self._loaded = True

    def _load_latest(self) -> ServedModel | None:
        latest = self._store.latest_good(self._project_id)
        if latest is None:
            return None
        older = [v for v in reversed(self._store.list_versions(self._project_id)) if v != latest]
        for version in [latest] + older:
            try:
                served = self._load(version)
            except Exception as exc:  # noqa: BLE001 - a corrupt checkpoint must not stop serving
                log.error("project %s: cannot load version %s (%s: %s); trying an older one", self._project_id, version, type(exc).__name__, exc)
                continue
            log.info("project %s: serving version %s", self._project_id, version)
            return served
        return None
