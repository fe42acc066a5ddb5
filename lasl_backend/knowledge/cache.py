"""Where extracted knowledge is cached: ``LASL_KNOWLEDGE_CACHE``, else ``$XDG_CACHE_HOME/lasl-backend``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root(cache: Path | str | None = None) -> Path:
    """The given directory, else the user's cache directory; created on first write, not here."""
    if cache:
        return Path(cache).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lasl-backend"
