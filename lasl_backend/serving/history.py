"""What a project keeps besides its model versions, for the stopping signal and the project page:

    projects/<id>/signal.json      one entry per published version (held-back F1 and its interval, kappa, ...)
    projects/<id>/runs.json        every training run's outcome (ok, failed, waiting, cancelled)
    projects/<id>/stop_set.json    the unlabeled task ids versions are compared on, drawn once
    projects/<id>/stop_tags.npz    the latest version's character tags on them (kappa needs the previous ones)

Versions are pruned (``LASL_VERSIONS_KEPT``); these files are not, so the learning curve keeps every version.
Each file is replaced whole through a temporary sibling and a rename, so a restart reads the old file or the
new one; a file that cannot be read is reported in the log and read as empty, never a crash, and the next
append moves it aside (``<name>.unreadable-<time>``) rather than overwrite it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_file, write_text_atomic

__all__ = ["MAX_ENTRIES", "ProjectHistory"]

log = logging.getLogger(__name__)

#: entries kept per list (the oldest go first): a page of history, not an archive
MAX_ENTRIES = 2000


class ProjectHistory:
    """The files above for one project directory."""

    def __init__(self, project_dir: Path) -> None:
        self.dir = Path(project_dir)
        self._lock = threading.Lock()

    # ---- lists ----------------------------------------------------------------------------------
    def signals(self) -> list[dict[str, Any]]:
        return self._read_list("signal.json")

    def runs(self) -> list[dict[str, Any]]:
        return self._read_list("runs.json")

    def append_signal(self, entry: dict[str, Any]) -> None:
        self._append("signal.json", entry)

    def append_run(self, entry: dict[str, Any]) -> None:
        self._append("runs.json", entry)

    def _append(self, name: str, entry: dict[str, Any]) -> None:
        with self._lock:
            items = self._load(name)
            if items is None:  # keep what could not be read for a person to look at, then start afresh
                items = []
                aside = self.dir / f"{name}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}"
                (self.dir / name).replace(aside)
                log.warning("%s: unreadable; moved to %s, starting a new list", self.dir / name, aside.name)
            items.append(entry)
            self.dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.dir / name, json.dumps(_finite(items[-MAX_ENTRIES:]), ensure_ascii=False, allow_nan=False, default=_plain))

    def _read_list(self, name: str) -> list[dict[str, Any]]:
        items = self._load(name)
        return [] if items is None else items

    def _load(self, name: str) -> list[dict[str, Any]] | None:
        """The file's entries ([] when there is no file), or None when it exists but cannot be read."""
        path = self.dir / name
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable (%s); reading it as empty", path, exc)
            return None
        return [x for x in items if isinstance(x, dict)] if isinstance(items, list) else None

    # ---- the stop set ---------------------------------------------------------------------------
    def stop_set(self) -> list[int] | None:
        path = self.dir / "stop_set.json"
        try:
            ids = json.loads(path.read_text(encoding="utf-8")).get("task_ids")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("%s: unreadable (%s); drawing a new stop set", path, exc)
            return None
        return [int(i) for i in ids if isinstance(i, int) and not isinstance(i, bool)] if isinstance(ids, list) else None

    def set_stop_set(self, task_ids: list[int]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.dir / "stop_set.json", json.dumps({"task_ids": [int(i) for i in task_ids]}))

    def stop_tags(self) -> dict[str, np.ndarray] | None:
        path = self.dir / "stop_tags.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable (%s); the next version has no kappa", path, exc)
            return None

    def save_stop_tags(self, tags: dict[str, np.ndarray]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.dir / "stop_tags.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **tags)


def _finite(value: Any) -> Any:
    """NaN and infinities as None, all the way down (the files are strict JSON)."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (``json.dumps``' ``default``)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")
