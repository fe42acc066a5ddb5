"""Versioned model checkpoints per Label Studio project, safe against crashes and hostile names.

Layout under ``MODEL_DIR``::

    projects/<int id>/versions/<version>/   model/ (NerModel.save), normalizer.json, meta.json
    projects/<int id>/current               the serving version's name (replaced with os.replace)
    projects/<int id>/state.json            the version counter, so names never repeat after restarts
    projects/<int id>/tmp/                  versions being written (removed on failure / next start)

Why this shape:

* A version becomes visible only after a complete write: everything goes into ``tmp/``, every file
  and directory is fsynced, then one ``rename`` moves it under ``versions/``. ``meta.json`` (written
  last) marks it complete. A SIGKILL at any point leaves either no version or a whole one.
* Writing a version and serving it are separate steps: :meth:`set_current` flips the pointer only
  after the training run has also published its predictions, so a run that fails late never
  replaces the serving model.
* Names are ``lasl-v<counter>-<UTC time>`` (e.g. ``lasl-v0003-20261126T051200``): Label Studio only
  re-scores tasks when the version string changes, so every run gets a new, never reused name.
  :meth:`allocate_version` hands out the name together with its number (the persisted counter), so
  nothing outside the store reads numbers back out of names.
* Project ids must be ints and versions must match :data:`VERSION_RE`, and every path is checked to
  stay inside ``MODEL_DIR``: ``../``, absolute paths and NUL bytes cannot reach the file system.
* Retention deletes only local directories, only outside a run's critical section, never the current
  or previous version. Label Studio's stored predictions of old versions are never deleted by the
  backend (deleting one stalls LS for ~38 s at 10k tasks; docs/serving.md, "Label Studio facts"):
  that is an operator task (docs/serving.md, "Versions and the store").
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..atomic import fsync_dir, fsync_tree, write_text_atomic
from .project_ids import UnsafePathError, check_project_id

__all__ = ["ModelStore", "NewVersion", "StoreError", "UnsafePathError", "VERSION_RE", "check_project_id", "check_version"]

log = logging.getLogger(__name__)

VERSION_RE = re.compile(r"^lasl-v([0-9]{4,9})-([0-9]{8}T[0-9]{6})\Z")
META = "meta.json"
NORMALIZER = "normalizer.json"
MODEL_SUBDIR = "model"


class StoreError(RuntimeError):
    """A version that is missing, incomplete or cannot be written."""


def check_version(version: object) -> str:
    """The version name if it matches :data:`VERSION_RE`, else :class:`UnsafePathError`."""
    if not isinstance(version, str) or not VERSION_RE.match(version):
        shown = version if isinstance(version, str) and len(version) <= 64 and version.isprintable() else "<invalid>"
        raise UnsafePathError(f"not a model version name: {shown!r}")
    return version


@dataclass(frozen=True)
class NewVersion:
    """A version name handed out by :meth:`ModelStore.allocate_version`, with its number."""

    name: str
    #: the project's persisted counter: 1 for its first version, never reused (failed runs included)
    number: int


def _counter(version: str) -> int:
    m = VERSION_RE.match(version)
    return int(m.group(1)) if m else -1


class ModelStore:
    """Per-project model versions under one root directory. Thread-safe within one process."""

    def __init__(self, model_dir: str | Path) -> None:
        raw = str(model_dir)
        if "\x00" in raw:
            raise UnsafePathError("MODEL_DIR contains a NUL byte")
        self.root = Path(raw).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "projects").mkdir(exist_ok=True)
        self._lock = threading.RLock()

    # ---- paths ----------------------------------------------------------------------------------
    def _inside(self, path: Path) -> Path:
        resolved = path.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise UnsafePathError("path escapes MODEL_DIR")
        return path

    def project_dir(self, project_id: object) -> Path:
        pid = check_project_id(project_id)
        return self._inside(self.root / "projects" / str(pid))

    def version_path(self, project_id: object, version: object) -> Path:
        v = check_version(version)
        return self._inside(self.project_dir(project_id) / "versions" / v)

    def model_path(self, project_id: object, version: object) -> Path:
        return self.version_path(project_id, version) / MODEL_SUBDIR

    def normalizer_path(self, project_id: object, version: object) -> Path:
        return self.version_path(project_id, version) / NORMALIZER

    # ---- listing --------------------------------------------------------------------------------
    def projects(self) -> list[int]:
        out = []
        for p in (self.root / "projects").iterdir():
            if p.is_dir() and re.fullmatch(r"[0-9]{1,12}", p.name):
                out.append(int(p.name))
        return sorted(out)

    def is_complete(self, project_id: object, version: object) -> bool:
        try:
            meta = self.read_meta(project_id, version)
        except (StoreError, UnsafePathError):
            return False
        return bool(meta.get("complete"))

    def list_versions(self, project_id: object) -> list[str]:
        """Complete versions, oldest first (by counter)."""
        vdir = self.project_dir(project_id) / "versions"
        if not vdir.is_dir():
            return []
        names = [p.name for p in vdir.iterdir() if VERSION_RE.match(p.name)]
        return sorted((n for n in names if self.is_complete(project_id, n)), key=_counter)

    def read_meta(self, project_id: object, version: object) -> dict[str, Any]:
        path = self.version_path(project_id, version) / META
        try:
            with open(path, encoding="utf-8") as fh:
                meta = json.load(fh)
        except FileNotFoundError:
            raise StoreError(f"version {version} of project {check_project_id(project_id)} does not exist or is incomplete") from None
        except (OSError, ValueError) as exc:
            raise StoreError(f"version {version}: unreadable meta.json ({type(exc).__name__})") from None
        if not isinstance(meta, dict):
            raise StoreError(f"version {version}: meta.json is not an object")
        return meta

    def read_normalizer(self, project_id: object, version: object) -> dict[str, Any] | None:
        path = self.normalizer_path(project_id, version)
        if not path.is_file():
            return None
        with open(path, encoding="utf-8") as fh:
            d = json.load(fh)
        return d if isinstance(d, dict) else None

    # ---- the current pointer --------------------------------------------------------------------
    def current(self, project_id: object) -> str | None:
        """The version the pointer names, if it is complete; None otherwise."""
        ptr = self.project_dir(project_id) / "current"
        try:
            name = ptr.read_text(encoding="utf-8").strip()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        if not VERSION_RE.match(name) or not self.is_complete(project_id, name):
            return None
        return name

    def latest_good(self, project_id: object) -> str | None:
        """What a restart serves: the current pointer if it names a complete version, else the newest
        complete version (a pointer lost in a crash must not send the project back to cold start)."""
        with self._lock:
            cur = self.current(project_id)
            if cur is not None:
                return cur
            versions = self.list_versions(project_id)
            return versions[-1] if versions else None

    def previous(self, project_id: object) -> str | None:
        """The version served before the current one (from the pointer history), if still complete."""
        cur = self.latest_good(project_id)
        history = [v for v in self._read_state(project_id).get("history", []) if isinstance(v, str)]
        for v in reversed(history):
            if v != cur and VERSION_RE.match(v) and self.is_complete(project_id, v):
                return v
        return None

    def set_current(self, project_id: object, version: str) -> None:
        """Point the project at ``version`` (must be complete); atomic via ``os.replace``."""
        with self._lock:
            if not self.is_complete(project_id, version):
                raise StoreError(f"cannot serve incomplete or missing version {check_version(version)}")
            write_text_atomic(self.project_dir(project_id) / "current", version + "\n")
            state = self._read_state(project_id)
            history = [v for v in state.get("history", []) if isinstance(v, str) and v != version]
            state["history"] = (history + [version])[-50:]
            write_text_atomic(self._state_path(project_id), json.dumps(state))

    # ---- writing --------------------------------------------------------------------------------
    def _state_path(self, project_id: object) -> Path:
        return self.project_dir(project_id) / "state.json"

    def _read_state(self, project_id: object) -> dict[str, Any]:
        try:
            with open(self._state_path(project_id), encoding="utf-8") as fh:
                d = json.load(fh)
            return d if isinstance(d, dict) else {}
        except (FileNotFoundError, ValueError, UnicodeDecodeError):
            return {}

    def allocate_version(self, project_id: object, now: datetime | None = None) -> NewVersion:
        """The next never-used version; the counter is persisted before the name is handed out, and
        it also counts names already on disk (``versions/`` and ``tmp/``), so a lost ``state.json``
        cannot make a name repeat."""
        with self._lock:
            pdir = self.project_dir(project_id)
            (pdir / "versions").mkdir(parents=True, exist_ok=True)
            state = self._read_state(project_id)
            seen = [int(state.get("counter", 0) or 0)]
            for sub in ("versions", "tmp"):
                d = pdir / sub
                if d.is_dir():
                    for p in d.iterdir():
                        m = re.match(r"^lasl-v([0-9]{4,9})-", p.name)
                        if m:
                            seen.append(int(m.group(1)))
            counter = max(seen) + 1
            stamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S")
            name = check_version(f"lasl-v{counter:04d}-{stamp}")
            state["counter"] = counter
            write_text_atomic(self._state_path(project_id), json.dumps(state))
            return NewVersion(name, counter)

    def new_version_name(self, project_id: object, now: datetime | None = None) -> str:
        """The name of :meth:`allocate_version` alone."""
        return self.allocate_version(project_id, now).name

    def write_version(
        self,
        project_id: object,
        version: str,
        writer: Callable[[Path], None],
        meta: dict[str, Any] | None = None,
    ) -> Path:
        """Run ``writer(tmp_dir)`` (it saves the model and the normalizer there), add ``meta.json``,
        fsync everything and rename into ``versions/``. On any error nothing becomes visible."""
        check_version(version)
        pdir = self.project_dir(project_id)
        final = self.version_path(project_id, version)
        tmp_root = pdir / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        (pdir / "versions").mkdir(parents=True, exist_ok=True)
        if final.exists():
            raise StoreError(f"version {version} already exists")
        tmp = tmp_root / f"{version}.{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            writer(tmp)
            m = dict(meta or {})
            m.update(version=version, project=check_project_id(project_id), complete=True)
            m.setdefault("written_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
            with open(tmp / META, "w", encoding="utf-8") as fh:
                json.dump(m, fh, ensure_ascii=False, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            fsync_tree(tmp)
            with self._lock:
                os.rename(tmp, final)
                fsync_dir(final.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("project %s: wrote version %s", check_project_id(project_id), version)
        return final

    # ---- housekeeping ---------------------------------------------------------------------------
    def clean_tmp(self, project_id: object) -> int:
        """Remove leftovers of writes that a crash interrupted (call at start-up, not during a run)."""
        d = self.project_dir(project_id) / "tmp"
        n = 0
        if d.is_dir():
            for p in d.iterdir():
                shutil.rmtree(p, ignore_errors=True)
                n += 1
        return n

    def prune(self, project_id: object, keep: int) -> list[str]:
        """Delete local versions beyond the newest ``keep`` (min 2), never the current or previous one,
        plus incomplete version directories. Returns the deleted names."""
        keep = max(2, int(keep))
        with self._lock:
            cur = self.latest_good(project_id)
            prev = self.previous(project_id)
            complete = self.list_versions(project_id)
            protect = {v for v in (cur, prev) if v}
            doomed = [v for v in complete[:-keep] if v not in protect]
            vdir = self.project_dir(project_id) / "versions"
            if vdir.is_dir():
                doomed += [p.name for p in vdir.iterdir() if VERSION_RE.match(p.name) and p.name not in complete and p.name not in protect]
            for v in doomed:
                shutil.rmtree(self.version_path(project_id, v), ignore_errors=True)
            if doomed:
                fsync_dir(vdir)
                log.info("project %s: pruned %d old local version(s)", check_project_id(project_id), len(doomed))
            return doomed
